"""CTranslate2 export: the exported float32 model decodes exactly like attnmt (greedy)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attnmt.errors import UserError

pytest.importorskip("ctranslate2")


def test_exported_model_matches_attnmt_greedy(trained, task, tmp_path):
    from attnmt.export import CT2Translator, export_ctranslate2
    from attnmt.translator import Translator

    out = export_ctranslate2(trained, tmp_path / "ct2")
    assert (out / "model.bin").is_file() and (out / "vocab/joint.json").is_file()
    src = (task / "test.src").read_text().splitlines()[:40] + [""]
    ours = [h[0].text for h in Translator.from_run(trained).translate(src, beam=1)]
    theirs = [h[0] for h in CT2Translator(out).translate(src, beam=1)]
    assert theirs == ours
    r = subprocess.run([sys.executable, "-m", "attnmt.cli", "translate", "--engine",
                        "ctranslate2", str(out), "--beam", "1"], input="a b c\n\nd e\n",
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split("\n")[:3] == [ours_for(trained, "a b c"), "",
                                                               ours_for(trained, "d e")]
    with pytest.raises(UserError, match="not empty"):
        export_ctranslate2(trained, out)


def ours_for(run, text):
    from attnmt.translator import Translator

    return Translator.from_run(run).translate([text], beam=1)[0][0].text


def test_only_transformers_export(seq2seq_run, tmp_path):
    from attnmt.export import export_ctranslate2

    with pytest.raises(UserError, match="only Transformer models"):
        export_ctranslate2(seq2seq_run, tmp_path / "x")
