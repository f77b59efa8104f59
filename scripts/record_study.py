"""Write a sequence study's results (copying, arithmetic) between `<results>` markers, labelled
with what was run and where, so recorded results come from the run's files, not typing.

    python scripts/record_study.py --workdir=runs/copying --into=experiments/copying.py --shared

Reads `<workdir>/results/<study>.md` (the tables the study wrote) and every run's config.json
under `<workdir>/<experiment>/<run>/`, and writes the tables after one line per experiment
(steps x batch, training minutes) and the machine. `--shared` says the timings came from a
machine other jobs were using at the same time."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from record_results import cpu_name, write_between_markers  # noqa: E402


def study_name(workdir: Path) -> str:
    found = sorted(p.stem for p in (workdir / "results").glob("*.json")
                   if not p.stem.startswith("eval_step"))
    if len(found) != 1:
        raise SystemExit(f"expected one <study>.json in {workdir}/results, found {found}: "
                         "run the study first")
    return found[0]


def label(workdir: Path, summary: dict, shared: bool) -> list[str]:
    lines = []
    for experiment, models in summary["experiments"].items():
        configs = {name: json.loads((workdir / experiment / name / "config.json").read_text())
                   for name in models}
        shapes = sorted({(c["train"]["steps"], c["train"]["batch_size"])
                         for c in configs.values()})
        minutes = sum(m["train_s"] for m in models.values()) / 60
        lines.append(f"- {experiment}: {len(models)} runs, "
                     + ", ".join(f"{s} steps x batch {b}" for s, b in shapes)
                     + f", {minutes:.1f} min of training in all")
    where = f"Measured on {cpu_name()}"
    where += (" shared with other engineers' jobs (timings and tokens/s are slower and noisier "
              "than on an idle machine)." if shared else ", idle.")
    return lines + ["", where, ""]


def tables(workdir: Path, study: str) -> list[str]:
    text = (workdir / "results" / f"{study}.md").read_text().splitlines()
    # the study's title is the docstring's own; its sections become bold lines
    return [f"**{line.lstrip('#').strip()}**" if line.startswith("#") else line
            for line in text if not line.startswith("# ")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--into", required=True, type=Path)
    parser.add_argument("--shared", action="store_true",
                        help="the machine ran other jobs at the same time")
    args = parser.parse_args()
    study = study_name(args.workdir)
    summary = json.loads((args.workdir / "results" / f"{study}.json").read_text())
    write_between_markers(args.into, label(args.workdir, summary, args.shared)
                          + tables(args.workdir, study))


if __name__ == "__main__":
    main()
