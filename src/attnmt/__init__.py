"""attnmt — sequence-to-sequence learning built around the attention mechanism.

The Python API is one call away::

    import attnmt
    m = attnmt.load("runs/m30k-tsmall")            # any trained run
    m.translate(["Ein Hund läuft."], beam=5)        # -> ["A dog is running."]
    m.attention("Ein Hund läuft.")                  # tokens and weights (T, S)
    m.score(["Ein Hund läuft."], ["A dog runs."])   # log p(target | source)
    m.evaluate("test")                              # sacreBLEU, chrF, by length

These are the objects the command line and the server use.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def load(run_dir: str | Path, checkpoint: str = "best", *, precision: str = "fp32",
         engine: str = "attnmt"):
    """A trained run, ready to use: a ``TranslationModel`` (translate, attention, score,
    evaluate), a ``Classifier`` or a ``LanguageModel``, by the run's task.
    ``engine="ctranslate2"`` loads a folder made by ``attnmt export ctranslate2``."""
    from .api import load_predictor

    return load_predictor(run_dir, checkpoint, precision, engine)
