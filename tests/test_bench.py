"""jepax.bench: every experiment in its own process, one leaderboard, failures in their rows,
reruns skip what finished."""

from __future__ import annotations

import json

import pytest

from jepax import bench
from tests.helpers import ROOT

SIGNAL = '''
from tests import signal_variant

signal_variant.register()
LEADERBOARD = {"metric": "knn_acc", "paper": "n/a (test variant)"}


def get_config(arg=None):
    return signal_variant.config("signal_jepa")
'''

UNKNOWN_SOURCE = '''
from tests import signal_variant

signal_variant.register()


def get_config(arg=None):
    c = signal_variant.config("signal_jepa")
    c.data.dataset = "no_such_source"
    return c
'''


@pytest.fixture
def experiments(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the subprocesses import tests.signal_variant from here
    directory = tmp_path / "experiments"
    directory.mkdir()
    (directory / "signal.py").write_text(SIGNAL)
    (directory / "unknown_source.py").write_text(UNKNOWN_SOURCE)
    (directory / "helpers.py").write_text("X = 1\n")  # not an experiment: no get_config
    return directory


def test_bench_reports_each_experiment_and_a_failure_in_its_own_row(experiments, tmp_path,
                                                                    capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- leaderboard -->\nSTALE TABLE\n<!-- /leaderboard -->\nafter\n")
    work = tmp_path / "bench"
    rows = bench.main(["--experiments", str(experiments), "--workdir", str(work),
                       "--into", str(readme)])
    by_name = {r["experiment"]: r for r in rows}
    assert set(by_name) == {"signal", "unknown_source"}
    ok = by_name["signal"]
    assert ok["status"] == "ok" and ok["metric"] == "knn_acc"
    assert 0.0 <= ok["pretrained"] <= 1.0 and 0.0 <= ok["random init"] <= 1.0
    # the best of the variant's baseline rows, as the run's own results say
    results = json.loads(sorted((work / "signal" / "results").glob("eval_step*.json"))[-1]
                         .read_text())
    baselines = {n: r["knn_acc"] for n, r in results.items()
                 if n not in ("step", "pretrained", "random init")}
    assert ok["baseline_row"] == max(baselines, key=baselines.get)
    assert ok["examples_per_s"] > 0 and ok["data"] == "test_signals"
    failed = by_name["unknown_source"]
    assert failed["status"].startswith("failed: jepax: error:")
    assert "no_such_source" in failed["status"]
    for name in ("leaderboard.json", "leaderboard.md", "leaderboard.png"):
        assert (work / name).stat().st_size > 0, name
    table = readme.read_text()
    assert "STALE TABLE" not in table and table.endswith("after\n")
    assert "| signal | test_signals | knn_acc |" in table
    assert "| unknown_source |" in table and "n/a (test variant)" in table

    # Rerun: the finished experiment is skipped (its row kept), the failed one runs again.
    saved = (work / "signal" / "leaderboard_row.json").read_text()
    capsys.readouterr()
    again = bench.main(["--experiments", str(experiments), "--workdir", str(work),
                        "--only", "signal,unknown_source"])
    out = capsys.readouterr().out
    assert "signal: done before, skipped" in out
    assert "unknown_source: running" in out
    assert {r["experiment"]: r for r in again}["signal"] == json.loads(saved)

    # --only reruns one row; the table written into the README keeps the other finished one
    bench.main(["--experiments", str(experiments), "--workdir", str(work),
                "--only", "unknown_source", "--into", str(readme)])
    assert "| signal | test_signals | knn_acc |" in readme.read_text()


def test_unknown_experiment_name_is_a_clear_error(experiments, tmp_path):
    with pytest.raises(SystemExit, match="no experiment named nope"):
        bench.main(["--experiments", str(experiments), "--workdir", str(tmp_path / "b"),
                    "--only", "nope"])


@pytest.mark.parametrize("metric,best", [("knn_acc", "b"), ("mlp_rmse", "a"), ("synthetic_epe", "a")])
def test_headline_picks_the_best_baseline_in_the_metrics_direction(metric, best):
    rows = {"pretrained": {metric: 0.5}, "random init": {metric: 0.4},
            "a": {metric: 0.1}, "b": {metric: 0.9}}
    assert bench.headline({"eval": rows}, metric)["baseline_row"] == best


def test_baseline_rows_can_name_their_own_metric():
    rows = {"pretrained": {"mi_probe": 0.6}, "random init": {"mi_probe": 0.5},
            "classical": {"mi_classical": 0.7}}
    row = bench.headline({"eval": rows}, "mi_probe", "mi_classical")
    assert (row["baseline_row"], row["baseline"], row["pretrained"]) == ("classical", 0.7, 0.6)


def test_study_headline_is_a_dotted_key_of_its_summary():
    summary = {"claims": {"flip": {"depth": 2.0}}}
    assert bench.headline(summary, "claims.flip.depth")["pretrained"] == 2.0
