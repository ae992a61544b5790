"""Run the tutorial notebook at its full budget and keep the executed copy the docs show.

    python docs/scripts/execute_notebook.py      # about 5 minutes on 2 cores

Writes ``docs/notebooks/attention_in_5_steps.executed.ipynb``: the same cells as the
notebook, with the outputs of this run (text and figures). Its runs go to
``runs/notebook-demo`` (``$ATTNMT_NOTEBOOK_OUT``); run again, it reuses them. The site
renders that copy as a tutorial page; ``tests/test_docs.py`` fails when its cells differ
from the notebook's, so the page cannot show code the notebook no longer has.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs/notebooks/attention_in_5_steps.ipynb"
EXECUTED = NOTEBOOK.with_suffix(".executed.ipynb")


def main() -> None:
    os.environ.pop("MPLBACKEND", None)      # the kernel's inline backend keeps the figures
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=1800, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    if errors:
        raise SystemExit(f"the notebook failed: {errors[0].ename}: {errors[0].evalue}")
    nbformat.write(nb, EXECUTED)
    print(f"wrote {EXECUTED.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
