"""What every study writes under ``<workdir>/results/``: ``<name>.json`` (numbers, numpy
included), ``<name>.md`` (markdown tables) and PNG figures, with the list of files written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def jsonable(obj):
    """obj with numpy scalars and arrays as Python numbers and lists, dict keys as strings and
    non-finite floats as None (JSON has no inf or nan; e.g. a level never reached)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path, obj) -> Path:
    path = Path(path)
    path.write_text(json.dumps(jsonable(obj), indent=1))
    return path


def markdown_table(headers, rows, formats=None) -> str:
    """A markdown table. formats: one per column, a format spec ('.3f', '.1%') or a callable;
    None (or no formats) writes str(value). Strings are written as they are in any column."""
    formats = list(formats) if formats is not None else [None] * len(headers)
    if len(formats) != len(headers):
        raise ValueError(f"{len(formats)} formats for {len(headers)} columns")

    def cell(value, fmt):
        if fmt is None or isinstance(value, str):
            return str(value)
        return fmt(value) if callable(fmt) else format(value, fmt)

    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells for {len(headers)} columns")
        lines.append("| " + " | ".join(cell(v, f) for v, f in zip(row, formats)) + " |")
    return "\n".join(lines)


def pyplot():
    """matplotlib.pyplot on the Agg backend (studies run headless and only write files);
    imported on use, so importing a study does not import matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Write fig as a PNG and close it (open figures hold memory until closed)."""
    path = Path(path)
    fig.savefig(path, dpi=dpi, format="png")
    pyplot().close(fig)
    return path


class StudyReport:
    """One study's results folder, ``<workdir>/results/``: ``figure`` writes PNGs as they are
    made, ``finish`` the markdown and the JSON summary, which lists every file written."""

    def __init__(self, workdir, name: str):
        self.name = name
        self.dir = Path(workdir) / "results"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: list[str] = []

    def figure(self, fig, stem: str) -> Path:
        path = save_figure(fig, self.dir / f"{stem}.png")
        self.files.append(path.name)
        return path

    def finish(self, summary: dict, markdown: str) -> dict:
        """Write <name>.md and <name>.json; returns the summary as written (JSON types, plus
        'files')."""
        (self.dir / f"{self.name}.md").write_text(markdown)
        self.files += [f"{self.name}.md", f"{self.name}.json"]
        summary = jsonable({**summary, "files": list(self.files)})
        write_json(self.dir / f"{self.name}.json", summary)
        return summary
