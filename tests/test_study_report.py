"""The studies' shared report helper: markdown tables, JSON with numpy values, PNG figures."""

import json
import struct

import numpy as np
import pytest

from jepax.studies.report import (StudyReport, markdown_table, pyplot, save_figure,
                                  write_json)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_markdown_table_renders_cells_with_their_formats():
    table = markdown_table(["model", "acc", "loss", "n"],
                           [["ssm", 0.91234, np.float32(0.5), np.int64(7)],
                            ["transformer", 1.0, "never", 12]],
                           [None, ".1%", lambda v: f"{v:.2f}", None])
    assert table.splitlines() == ["| model | acc | loss | n |",
                                  "|---|---|---|---|",
                                  "| ssm | 91.2% | 0.50 | 7 |",
                                  "| transformer | 100.0% | never | 12 |"]
    assert markdown_table(["a"], [[[1, 2]]]) == "| a |\n|---|\n| [1, 2] |"
    with pytest.raises(ValueError, match="2 cells for 1 columns"):
        markdown_table(["a"], [[1, 2]])


def test_json_round_trips_numpy_values(tmp_path):
    obj = {"f64": np.float64(0.1), "f32": np.float32(0.25), "i": np.int32(-3),
           "flag": np.bool_(True), "array": np.arange(6, dtype=np.int64).reshape(2, 3),
           "curve": np.array([0.5, np.inf]), 4: (np.float64(np.nan), "text")}
    data = json.loads(write_json(tmp_path / "out.json", obj).read_text())
    assert data == {"f64": 0.1, "f32": 0.25, "i": -3, "flag": True,
                    "array": [[0, 1, 2], [3, 4, 5]], "curve": [0.5, None], "4": [None, "text"]}
    assert type(data["i"]) is int and type(data["flag"]) is bool


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_figures_are_valid_pngs_and_closed(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "line.png", dpi=50)
    assert _png_size(path) == (100, 50)
    assert not plt.fignum_exists(fig.number)


def test_study_report_writes_json_markdown_and_pngs(tmp_path):
    report = StudyReport(tmp_path, "copying")
    fig, _ = pyplot().subplots()
    report.figure(fig, "accuracy")
    written = report.finish({"acc": np.float64(0.5)}, "# copying\n")
    results = tmp_path / "results"
    assert written == {"acc": 0.5, "files": ["accuracy.png", "copying.md", "copying.json"]}
    assert json.loads((results / "copying.json").read_text()) == written
    assert (results / "copying.md").read_text() == "# copying\n"
    _png_size(results / "accuracy.png")
