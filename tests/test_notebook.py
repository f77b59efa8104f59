"""notebooks/quickstart.ipynb executes end to end in its :tiny form (train, plot, table,
checkpoint, features of new images)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from tests.helpers import ROOT


def test_quickstart_notebook_trains_evaluates_and_embeds_new_images(tmp_path):
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    parameters = nb.cells[1]
    assert parameters.source.startswith('PRESET = "tiny"')  # CI runs the notebook's tiny form
    parameters.source += f'\nWORKDIR = "{tmp_path / "run"}"'  # keep the checkout clean
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "")
                     for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "trained 60 steps" in text
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs)  # the loss plot
    assert "raw pixels" in text and "linear_probe_acc" in text  # the downstream table
    assert "features: (2," in text and "cosine similarity" in text
    assert (tmp_path / "run" / "checkpoints").is_dir()
