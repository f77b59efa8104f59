"""The benchmark harnesses run and report what they claim (timings themselves are not
asserted: speed is measured in benchmarks/, not in tests)."""

import pytest

from benchmarks import compile as compile_bench
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


def test_no_recompiles_after_the_first_step():
    out = compile_bench.measure("smoke", steps=5)
    assert out["compiles_before_first_step"] >= 2  # init and the train step
    assert out["compiles_during_next_steps"] == 0
