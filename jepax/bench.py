"""One leaderboard for every experiment: ``python -m jepax.bench [--preset=tiny|default]``.

Each experiment config in ``experiments/`` (a variant or a study) is pretrained and evaluated
under its own config, one subprocess each (a crash or a bad config ends that row, not the
bench), in ``<workdir>/<experiment>``. The leaderboard (Markdown, JSON and a PNG chart under the
workdir) has, per experiment: its data, the headline metric for the pretrained encoder, the
same encoder at random init and the best raw-input or classical baseline row, the paper's
number where one is comparable, wall time, examples/s and MFU (where the backend has a peak).

The headline metric is the experiment module's ``LEADERBOARD["metric"]`` (a key of the
evaluation rows, or a dotted key of a study's summary); without one, the first metric of the
pretrained row. ``LEADERBOARD["baseline_metric"]`` names the baseline rows' key where it differs
(e.g. a classical pipeline's score); ``LEADERBOARD["paper"]`` is the paper's comparable number
as text.

Rerunning resumes: a finished experiment (its ``leaderboard_row.json``) is skipped, a failed
one runs again (and its own run resumes from its checkpoints); delete an experiment's folder to
measure it again. ``--only`` limits what runs, not the leaderboard: it keeps every experiment
finished in the workdir. ``--into=README.md`` writes the Markdown table between the file's
``<!-- leaderboard -->`` and ``<!-- /leaderboard -->`` lines.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

LOWER_IS_BETTER = re.compile(r"(rmse|mse|mae|err|epe|loss)(_|$)")
MARKERS = ("<!-- leaderboard -->", "<!-- /leaderboard -->")
RANDOM, PRETRAINED = "random init", "pretrained"


def experiments(directory: Path, only: tuple[str, ...] = ()) -> dict[str, Path]:
    """{name: config file} for every experiment config (a module with get_config)."""
    found = {p.stem: p for p in sorted(directory.glob("*.py"))
             if "def get_config" in p.read_text()}
    unknown = set(only) - set(found)
    if unknown:
        raise SystemExit(f"jepax.bench: no experiment named {', '.join(sorted(unknown))} in "
                         f"{directory} (there: {', '.join(found)})")
    return {n: p for n, p in found.items() if not only or n in only}


def declared(path: Path) -> dict:
    """The experiment module's LEADERBOARD dict (metric, paper), or {}."""
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "LEADERBOARD", {}))


def run_one(path: Path, preset: str, workdir: Path, timeout: float) -> dict:
    """Train + evaluate one experiment in a subprocess; its row of the leaderboard."""
    spec = f"{path}:{preset}" if preset != "default" else str(path)
    command = [sys.executable, "-m", "jepax.main", f"--config={spec}", f"--workdir={workdir}"]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=timeout or None)
    except subprocess.TimeoutExpired:
        return {"status": f"failed: no result within --timeout={timeout:.0f}s",
                "wall_s": time.perf_counter() - start}
    wall = time.perf_counter() - start
    (workdir / "bench.log").write_text(done.stderr)
    if done.returncode != 0:
        lines = [l for l in done.stderr.splitlines() if l.strip()]
        return {"status": f"failed: {lines[-1] if lines else f'exit status {done.returncode}'}",
                "wall_s": wall}
    summary = json.loads(done.stdout[done.stdout.rindex("\n{") + 1 if "\n{" in done.stdout
                                     else done.stdout.index("{"):])
    return {"status": "ok", "wall_s": wall, "summary": summary}


def headline(summary: dict, metric: str, baseline_metric: str = "") -> dict:
    """{'metric', 'pretrained', 'random init', 'baseline', 'baseline_row'} from a summary."""
    rows = summary.get("eval") or {}
    if not metric and PRETRAINED in rows:
        metric = next((k for k, v in rows[PRETRAINED].items()
                       if isinstance(v, (int, float)) and not k.endswith("_std")), "")
    if rows:
        value = lambda name, key=metric: rows.get(name, {}).get(key)
        key = baseline_metric or metric
        baselines = {n: value(n, key) for n in rows if n not in (PRETRAINED, RANDOM)
                     and value(n, key) is not None}
        pick = min if LOWER_IS_BETTER.search(metric) else max
        best = pick(baselines, key=baselines.get) if baselines else None
        return {"metric": metric, PRETRAINED: value(PRETRAINED), RANDOM: value(RANDOM),
                "baseline": baselines.get(best), "baseline_row": best}
    node = summary  # a study: a dotted key of its summary
    for part in metric.split(".") if metric else ():
        node = node.get(part) if isinstance(node, dict) else None
    number = node if isinstance(node, (int, float)) else None
    return {"metric": metric, PRETRAINED: number, RANDOM: None, "baseline": None,
            "baseline_row": None}


def speed(workdir: Path) -> dict:
    """Median examples/s and MFU over the run's logged steps (the first log holds the
    compile, so it is left out when there are others)."""
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return {"examples_per_s": None, "mfu": None}
    records = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    records = records[1:] if len(records) > 1 else records

    def median(key):
        values = sorted(r[key] for r in records if isinstance(r.get(key), (int, float)))
        return values[len(values) // 2] if values else None
    return {"examples_per_s": median("examples_per_s"), "mfu": median("mfu")}


def data_name(path: Path, preset: str) -> str:
    from jepax.config import load_config

    config = load_config(f"{path}:{preset}" if preset != "default" else str(path))
    data = config.get("data", {})
    name = data.get("dataset", "") or config.get("study", "")
    detail = data.get("table") or data.get("task") or ""
    return f"{name} ({detail})" if detail else name


def bench(names: dict[str, Path], preset: str, workdir: Path, timeout: float = 0.0) -> list:
    rows = []
    for i, (name, path) in enumerate(names.items(), 1):
        run_dir = workdir / name
        saved = run_dir / "leaderboard_row.json"
        if saved.exists():
            rows.append(json.loads(saved.read_text()))
            print(f"[{i}/{len(names)}] {name}: done before, skipped", flush=True)
            continue
        print(f"[{i}/{len(names)}] {name}: running ({preset})...", flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            declared_, data = declared(path), data_name(path, preset)
        except Exception as e:  # noqa: BLE001 - a broken config is its row's failure
            declared_, data = {}, ""
            result = {"status": f"failed: {type(e).__name__}: {e}", "wall_s": 0.0}
        else:
            result = run_one(path, preset, run_dir, timeout)
        row = {"experiment": name, "preset": preset, "data": data,
               "paper": declared_.get("paper", ""), "status": result["status"],
               "wall_s": result["wall_s"]}
        if result["status"] == "ok":
            row.update(headline(result["summary"], declared_.get("metric", ""),
                                declared_.get("baseline_metric", "")))
            row.update(speed(run_dir))
            saved.write_text(json.dumps(row, indent=1))
        print(f"    {row['status']} in {row['wall_s'] / 60:.1f} min", flush=True)
        rows.append(row)
    return rows


def with_finished_rows(rows: list, names: dict[str, Path], workdir: Path) -> list:
    """`rows` plus every other experiment finished earlier in `workdir`, in name order: `--only`
    reruns some rows, the leaderboard (and the table written `--into` a file) keeps them all."""
    by_name = {r["experiment"]: r for r in rows}
    for name in names:
        saved = workdir / name / "leaderboard_row.json"
        if name not in by_name and saved.exists():
            by_name[name] = json.loads(saved.read_text())
    return [by_name[n] for n in names if n in by_name]


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict], preset: str) -> list[str]:
    lines = ["| experiment | data | metric | pretrained | random init | baseline | paper | "
             "wall (min) | examples/s | MFU |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['experiment']} | {r['data']} | {r['status']} | | | | "
                         f"{r['paper']} | {r['wall_s'] / 60:.1f} | | |")
            continue
        baseline = (f"{_fmt(r['baseline'])} ({r['baseline_row']})" if r["baseline_row"]
                    else "")
        lines.append(f"| {r['experiment']} | {r['data']} | {r['metric']} | "
                     f"{_fmt(r[PRETRAINED])} | {_fmt(r[RANDOM])} | {baseline} | {r['paper']} | "
                     f"{r['wall_s'] / 60:.1f} | {_fmt(r['examples_per_s'], 1)} | "
                     f"{_fmt(r['mfu']) or 'n/a'} |")
    lines += ["", f"`python -m jepax.bench --preset={preset}` on {platform.machine()} "
              f"({_cpu_name()}), {_cores()} cores; wall time includes compiling and evaluating."]
    return lines


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor() or "unknown CPU"


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def chart(rows: list[dict], path: Path) -> None:
    """One panel per experiment: pretrained vs random init vs the best baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["status"] == "ok" and r[PRETRAINED] is not None]
    if not done:
        return
    fig, axes = plt.subplots(1, len(done), figsize=(3.2 * len(done), 3.2), squeeze=False)
    for ax, r in zip(axes[0], done):
        bars = {k: r[k] for k in (PRETRAINED, RANDOM) if r[k] is not None}
        if r["baseline_row"]:
            bars[r["baseline_row"]] = r["baseline"]
        ax.bar(range(len(bars)), list(bars.values()), color=["C0", "C7", "C1"][:len(bars)])
        ax.set_xticks(range(len(bars)), list(bars), rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{r['experiment']}\n{r['metric']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_into(path: Path, lines: list[str]) -> None:
    text = path.read_text().splitlines()
    try:
        start, end = (text.index(m) for m in MARKERS)
    except ValueError:
        raise SystemExit(f"jepax.bench: {path} has no '{MARKERS[0]}' ... '{MARKERS[1]}' lines")
    text[start + 1:end] = lines
    path.write_text("\n".join(text) + "\n")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m jepax.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny", help="tiny | default | any preset name")
    parser.add_argument("--only", default="", help="comma-separated experiment names")
    parser.add_argument("--experiments", default="experiments", type=Path)
    parser.add_argument("--workdir", default=None, type=Path,
                        help="default: runs/bench_<preset>")
    parser.add_argument("--timeout", default=0.0, type=float,
                        help="seconds per experiment (0: none)")
    parser.add_argument("--into", default=None, type=Path,
                        help="also write the table between a file's leaderboard markers")
    args = parser.parse_args(argv)
    only = tuple(n for n in args.only.split(",") if n)
    workdir = args.workdir or Path("runs") / f"bench_{args.preset}"
    workdir.mkdir(parents=True, exist_ok=True)
    rows = bench(experiments(args.experiments, only), args.preset, workdir, args.timeout)
    rows = with_finished_rows(rows, experiments(args.experiments), workdir)
    lines = markdown(rows, args.preset)
    (workdir / "leaderboard.json").write_text(json.dumps(rows, indent=1))
    (workdir / "leaderboard.md").write_text("\n".join(lines) + "\n")
    chart(rows, workdir / "leaderboard.png")
    if args.into:
        write_into(args.into, lines)
    print("\n".join(lines))
    return rows


if __name__ == "__main__":
    main()
