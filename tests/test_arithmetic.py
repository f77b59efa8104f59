"""The arithmetic study: tokenization and answer parsing, balanced and primed sampling, errors,
and ``experiments/arithmetic.py:tiny`` end to end through the one loop."""

from __future__ import annotations

import json
from collections import Counter

import ml_collections
import numpy as np
import pytest

from data_pipelines import arithmetic as ar
from data_pipelines.errors import DataError
from data_pipelines.sequence_tasks import PAD_ID, decode
from jepax import checkpoint, train
from jepax.config import ConfigError, load_config
from jepax.studies.arithmetic import plan
from tests.helpers import ROOT, losses

CONFIG = str(ROOT / "experiments" / "arithmetic.py")


def data(**overrides):
    d = dict(dataset="arithmetic", operation="add", width=(6, 6), train_digits=((1, 5), (1, 5)),
             eval_lengths=(1, 3, 6), eval_examples=5, train_size=1000, prime_count=0,
             prime_lengths=(), seed=0)
    d.update(overrides)
    return ml_collections.ConfigDict(d)


def operands(example, d):
    """(a, b) read back from the inputs (least-significant digit first)."""
    wa, wb, _ = ar.widths(d)
    text = decode(example["inputs"])
    return int(text[:wa][::-1]), int(text[wa + 1:wa + 1 + wb][::-1])


def test_layout_round_trips_and_the_answer_parses():
    d = data(width=(5, 5))
    e = ar.layout(123, 45, d)
    assert decode(e["inputs"][:12]) == "32100+54000="
    assert np.all(e["inputs"][12:] == PAD_ID) and len(e["inputs"]) == 12 + 6
    assert decode(e["targets"][e["loss_mask"]]) == "861000"      # 168, lsb first, 6 slots
    assert ar.read_result(e["targets"], e["loss_mask"]) == 168
    assert not e["loss_mask"][:12].any()
    m = ar.layout(99999, 999, data(operation="mul", width=(5, 3)))
    assert decode(m["inputs"][:10]) == "99999×999="
    assert ar.read_result(m["targets"], m["loss_mask"]) == 99999 * 999
    assert m["loss_mask"].sum() == 8                                # Wa + Wb result slots


@pytest.mark.parametrize("operation", ["add", "mul"])
def test_every_example_is_right_and_deterministic(operation):
    d = data(operation=operation, width=(6, 6 if operation == "add" else 2),
             train_digits=((1, 5), (1, 5 if operation == "add" else 2)))
    for split in ("train", "test", "in_distribution"):
        src = ar.source(d, split)
        for i in range(len(src))[:30]:
            e = src[i]
            a, b = operands(e, d)
            assert ar.read_result(e["targets"], e["loss_mask"]) == (a + b if operation == "add"
                                                                    else a * b)
            assert len(str(a)) == int(e["length"])
            again = ar.source(d, split)[i]
            assert all(np.array_equal(e[k], again[k]) for k in e)


def test_sampling_is_balanced_over_operand_lengths_and_covers_the_evaluated_lengths():
    d = data()
    src = ar.source(d, "train")
    pairs = [tuple(len(str(x)) for x in operands(src[i], d)) for i in range(1000)]
    for side in (0, 1):
        counts = Counter(p[side] for p in pairs)
        assert set(counts) == {1, 2, 3, 4, 5}
        assert min(counts.values()) > 150  # ~200 each: uniform over lengths, not over numbers
    test = ar.source(d, "test")
    assert len(test) == 15
    lengths = Counter(int(test[i]["length"]) for i in range(15))
    assert lengths == {1: 5, 3: 5, 6: 5}
    assert all(len(str(operands(test[i], d)[1])) == int(test[i]["length"]) for i in range(15))
    assert {int(e["length"]) for e in map(ar.source(d, "in_distribution").__getitem__,
                                          range(5))} == {5}


def test_priming_adds_long_examples_to_a_finite_training_set():
    d = data(operation="mul", width=(12, 2), train_digits=((1, 5), (1, 2)), eval_lengths=(12,),
             train_size=100, prime_count=6, prime_lengths=(10, 12))
    src = ar.source(d, "train")
    assert len(src) == 106
    assert all(int(src[i]["length"]) <= 5 for i in range(100))
    assert [int(src[i]["length"]) for i in range(100, 106)] == [10, 12] * 3
    assert all(len(str(operands(src[i], d)[1])) == 2 for i in range(100, 106))


def test_bad_settings_raise_clear_errors():
    with pytest.raises(DataError, match="two equal widths"):
        ar.source(data(width=(6, 4)), "train")
    with pytest.raises(DataError, match="fit data.width"):
        ar.source(data(eval_lengths=(1, 9)), "train")
    with pytest.raises(DataError, match="prime_lengths"):
        ar.source(data(prime_count=3), "train")
    with pytest.raises(DataError, match="data.operation"):
        ar.source(data(operation="sub"), "train")


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("arithmetic")
    config = load_config(CONFIG + ":tiny")
    return config, workdir, train.run(config, workdir)


def test_tiny_study_trains_every_encoder_through_the_loop(tiny_study):
    config, workdir, summary = tiny_study
    configs = plan(config)
    assert {k[0] for k in configs} == {"addition", "priming", "priming_multi"}
    for (experiment, name), rc in configs.items():
        assert rc.model.causal is False
        run_dir = workdir / experiment / name
        assert checkpoint.Checkpointer(run_dir / "checkpoints", keep=3).steps()[-1] \
            == rc.train.steps
        assert len(losses(run_dir)) == rc.train.steps
    results = json.loads((workdir / "results" / "arithmetic.json").read_text())
    add = results["experiments"]["addition"]
    assert set(add) == {"ape", "rpe_k"}
    assert all(set(m["by_length"]) == {"1", "2", "3", "5"} for m in add.values())
    primed = results["experiments"]["priming"]
    assert {m["prime_count"] for m in primed.values()} == {0, 5}
    assert {"addition_accuracy.png", "priming_curve.png", "arithmetic.md"} <= set(
        results["files"])
    assert summary["claims"] == results["claims"]
    assert losses(workdir / "addition" / "rpe_k")[-1] < losses(workdir / "addition" / "rpe_k")[0]


def test_study_refuses_a_target_length_it_does_not_evaluate(tmp_path):
    config = load_config(CONFIG + ":tiny")
    config.priming.target_length = 1
    with pytest.raises(ConfigError, match="target_length=\(1,\)"):
        train.run(config, tmp_path)


def test_primed_fit_scores_the_primed_examples_and_the_studys_test_split(tiny_study):
    from scripts.arithmetic_primed_fit import fit

    _, workdir, _ = tiny_study
    results = json.loads((workdir / "results" / "arithmetic.json").read_text())
    (name, m), = [(n, m) for n, m in results["experiments"]["priming"].items()
                  if m["prime_count"]]
    scores = fit(workdir / "priming" / name)
    # the same checkpoint and examples as the study's evaluator: the same accuracies
    assert scores["by_length"] == pytest.approx({int(k): v for k, v in m["by_length"].items()})
    assert 0.0 <= scores["primed"] <= 1.0 and 0.0 <= scores["base"] <= 1.0
