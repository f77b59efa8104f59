"""The benchmark harnesses run and report what they claim (timings themselves are not
asserted: speed is measured in benchmarks/, not in tests)."""

import json
import sys

import jax
import pytest

from benchmarks import compile as compile_bench, ijepa_parts, memory_plan, profile_step, table
from benchmarks import scan_compile
from benchmarks.ijepa_step import PRESETS, bench, fixed_batch


def test_fixed_batch_has_exact_counts_and_padding():
    p = PRESETS["smoke"]
    batch = fixed_batch(p, (8, 4))
    assert batch["context_idx"].shape == (8, 8) and batch["target_idx"].shape == (8, 2, 4)
    assert (batch["context_valid"].sum(1) == p["context"]).all()
    assert (batch["target_valid"].sum(2) == p["target"]).all()


def test_step_benchmark_reports_both_sides():
    pytest.importorskip("torch")
    out = bench("smoke", rounds=1, steps=1, warmup=1, attention="xla", torch_compile=False)
    assert out["jepax_ms"] > 0 and out["torch_ms"] > 0
    assert out["ratio"] == pytest.approx(out["torch_ms"] / out["jepax_ms"], rel=0.01)
    assert out["flops_per_step"] > 0 and 0 < out["mfu"] < 1


def test_stage_breakdown_times_every_stage_on_both_sides():
    pytest.importorskip("torch")
    out = ijepa_parts.measure("smoke", repeats=1)
    stages = ("target_forward", "loss_forward", "forward_backward", "step")
    assert all(out[f"{side}_{s}_ms"] > 0 for side in ("jepax", "torch") for s in stages)
    rows = [what for what, _, _ in table.rows([out])]
    assert rows == [f"smoke {s.replace('_', ' ')}: jepax / PyTorch" for s in stages]


def test_profile_sums_the_traced_ops_by_kind():
    out = profile_step.measure("smoke", steps=2)
    kinds = out["ms_per_step_by_kind"]
    assert kinds and all(not k.startswith(profile_step.NOT_OPS) for k in kinds)
    assert list(kinds.values()) == sorted(kinds.values(), reverse=True)
    assert 0 < out["dot_share"] <= 1 and out["ops_ms_per_step"] >= sum(kinds.values()) - 0.5
    assert table.rows([out])[0][0].startswith("smoke XLA op time per step by kind")


@pytest.fixture(scope="module")
def compile_report():
    return compile_bench.measure("smoke", steps=5)


def test_no_recompiles_after_the_first_step(compile_report):
    assert compile_report["compiles_before_first_step"] >= 2  # init and the train step
    assert compile_report["compiles_during_next_steps"] == 0


def test_time_to_first_step_over_fresh_processes_reports_the_median_run():
    report = compile_bench.in_fresh_processes(3, ["--preset=smoke", "--steps=2"])
    runs = report["time_to_first_step_runs_s"]
    assert len(runs) == 3 and report["time_to_first_step_s"] == sorted(runs)[1]
    assert report["compiles_during_next_steps"] == 0
    row = table.rows([report])[0]
    assert row[1].endswith("; median of 3 fresh processes: "
                           + ", ".join(f"{t:.1f}" for t in runs) + " s)")


def test_results_table_is_rewritten_between_the_markers(compile_report, tmp_path, monkeypatch):
    results = tmp_path / "cpu.jsonl"
    results.write_text(table.machine_line() + "\n" + json.dumps(compile_report) + "\n")
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n<results>\nstale\n</results>\nafter\n")
    monkeypatch.setattr(sys, "argv", ["table", "--results", str(results), "--into", str(readme)])
    table.main()
    text = readme.read_text()
    assert "stale" not in text and text.endswith("</results>\nafter\n")
    first = f"{compile_report['time_to_first_step_s']:.1f} s"
    row = "| smoke time to first step (tracing + compiling step and init side by side) |"
    assert f"{row} {first}" in text
    assert "| smoke compilations during 5 steps after the first | 0 | 0 |" in text
    assert json.loads(table.machine_line())["machine"] in text


def test_memory_plan_counts_the_real_models_parameters():
    from benchmarks.ijepa_step import PRESETS, jepax_config
    from jepax.variants.ijepa import IJEPA

    p = dict(PRESETS["gpu-vitb"], depth=3, pred_depth=2)
    shapes = jax.eval_shape(IJEPA(jepax_config(p)).init_params, jax.random.key(0))
    count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
    enc, pred = memory_plan.params(p["width"], p["depth"], 4 * p["width"],
                                   patch_dim=3 * p["patch_size"] ** 2,
                                   pred=(p["pred_width"], 2, p["pred_heads"], 4 * p["pred_width"]))
    assert (enc, pred) == (count(shapes["encoder"]), count(shapes["predictor"]))


def test_memory_plan_remat_and_batch_move_only_the_activations():
    vit = memory_plan.VITS["ViT-H"]
    small, big, remat = (memory_plan.plan(vit, b, remat=r) for b, r in
                         ((16, False), (128, False), (128, True)))
    for key in ("state_gb", "gathered_weights_gb", "gradients_gb"):
        assert small[key] == big[key] == remat[key] > 0
    assert remat["activations_gb"] < small["activations_gb"] < big["activations_gb"]
    report = memory_plan.largest_fitting(128, remat=False)
    fits = report["per_device_gb"][report["largest_fitting"]]
    assert fits <= 72 < max(report["per_device_gb"].values())
    assert table.rows([report])[0][1].startswith(f"{report['largest_fitting']} (")


def test_variant_benchmark_measures_any_experiment_config():
    from benchmarks import variants as variant_bench

    out = variant_bench.measure("experiments/ijepa.py:tiny", steps=2, batches=3)
    assert out["variant"] == "ijepa" and out["batch_size"] == 32
    assert out["step_ms"] > 0 and out["loader_batches_per_s"] > 0 and out["flops_per_step"] > 0
    assert out["headroom"] == pytest.approx(out["loader_batches_per_s"] * out["step_ms"] / 1e3,
                                            rel=0.02)
    what = [row[0] for row in table.rows([out])]
    assert what == ["ijepa (experiments/ijepa.py:tiny, batch 32): step, throughput, analytic FLOPs",
                    "ijepa (experiments/ijepa.py:tiny, batch 32): data pipeline vs step"]


def test_sequence_records_get_their_own_rows_not_the_image_loader_row():
    """The copying study's step records carry loader_batches_per_s too; they must not be read as
    the I-JEPA loader record (which needs batch_size)."""
    step = {"benchmark": "sequence_step", "model": "mamba", "params": 213163, "batch": 32,
            "tokens_per_example": 63, "tokens_per_s": 8318.7, "gflop_per_s": 11.2,
            "loader_batches_per_s": 105.4, "loader_headroom": 25.4}
    scan = {"benchmark": "ssm_scan", "length": 63, "channels": 192, "state": 16,
            "associative_forward_backward_ms": 202.4, "sequential_forward_backward_ms": 83.7,
            "max_abs_difference": 0.0}
    (what, value, _), (scan_what, scan_value, _) = table.rows([step, scan])
    assert what.startswith("copying study, mamba (213,163 parameters")
    assert value == "8,319 tokens/s, 11.2 GFLOP/s, loader 25.4x the step rate"
    assert "associative 202 ms vs sequential 84 ms" in scan_value and "length 63" in scan_what


def test_scan_compile_times_both_layouts_and_the_table_shows_them():
    records = [scan_compile.compile_time("smoke", scan) for scan in (False, True)]
    assert [r["scan_layers"] for r in records] == [False, True]
    for r in records:
        assert r["lower_s"] > 0 and r["compile_s"] > 0
        assert r["total_s"] == pytest.approx(r["lower_s"] + r["compile_s"], abs=0.02)
    (unrolled, _, _), (scanned, value, target) = table.rows(records)
    assert "unrolled" in unrolled and "scanned (model.scan_layers)" in scanned
    assert value.endswith(f"= {records[1]['total_s']:.1f} s") and target == "flat in depth"


def test_a_failed_gpu_measurement_gets_a_row_saying_so():
    failed = {"failed": "python3 -m benchmarks.compile --preset=gpu-vitb", "exit": 124,
              "limit_s": 60}
    assert table.rows([failed]) == [("FAILED: python3 -m benchmarks.compile --preset=gpu-vitb",
                                     "exit 124 (limit 60 s)", "")]


def test_sequence_benchmark_steps_each_model_of_a_studys_first_experiment():
    from benchmarks.sequence_models import model_steps
    from jepax.config import load_config

    config = load_config("experiments/arithmetic.py:tiny")
    rows = model_steps(config, steps=1, batches=2)
    assert [r["model"] for r in rows] == list(config.addition.models)
    for r in rows:
        assert r["study"] == "arithmetic" and r["experiment"] == "addition"
        assert r["params"] > 0 and r["tokens_per_s"] > 0 and r["loader_headroom"] > 0
    assert table.rows([{"benchmark": "sequence_step", **rows[0]}])[0][0].startswith(
        f"arithmetic study, {rows[0]['model']}")
