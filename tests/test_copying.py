"""The copying study end to end (``experiments/copying.py:tiny``): every network trains through
the one loop, results and plots are written, a rerun reads finished runs back, a sequence_lm
run trains with falling loss and resumes bit for bit, and teacher-forced exact match equals
greedy decoding."""

from __future__ import annotations

import json
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines import sequence_tasks as st
from jepax import checkpoint, studies, train, variants
from jepax.config import ConfigError, load_config
from jepax.studies.copying import plan
from tests.helpers import ROOT, assert_resumes_bit_for_bit, losses

CONFIG = str(ROOT / "experiments" / "copying.py")


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("copying")
    config = load_config(CONFIG + ":tiny")
    return config, workdir, train.run(config, workdir)


def test_tiny_study_trains_every_network_through_the_loop(tiny_study):
    config, workdir, summary = tiny_study
    for (experiment, model), rc in plan(config).items():
        run_dir = workdir / experiment / model
        assert checkpoint.Checkpointer(run_dir / "checkpoints", keep=3).steps()[-1] \
            == rc.train.steps
        assert len(losses(run_dir)) == rc.train.steps
    results = json.loads((workdir / "results" / "copying.json").read_text())
    copy = results["experiments"]["copy"]
    assert set(copy) == {"hard_alibi", "mamba", "lstm"}
    for m in copy.values():
        assert set(m["by_length"]) == {"4", "8"}
        assert all(0.0 <= a <= 1.0 for a in m["by_length"].values())
        assert m["tokens_per_s"] > 0 and m["params"] > 0
    assert {"copy_accuracy.png", "copy_sample_efficiency.png", "copying.md"} <= set(
        results["files"])
    text = (workdir / "results" / "copying.md").read_text()
    assert "## copy: exact match by length" in text and "| hard_alibi |" in text
    assert summary["claims"] == results["claims"]
    assert summary["reach"]["copy"] == {n: m["reach"] for n, m in copy.items()}  # the headline


def test_rerunning_the_study_reads_finished_runs_back(tiny_study):
    config, workdir, summary = tiny_study
    before = {p: p.stat().st_mtime for p in workdir.glob("*/*/metrics.jsonl")}
    again = train.run(config, workdir)
    assert again["claims"] == summary["claims"]
    assert {p: p.stat().st_mtime for p in workdir.glob("*/*/metrics.jsonl")} == before


def test_study_refuses_an_unknown_model_before_training(tmp_path):
    config = load_config(CONFIG + ":tiny")
    config.experiments.copy.models = ("hard_alibi", "transformer_xl")
    with pytest.raises(ConfigError, match="transformer_xl"):
        studies.run(config, tmp_path)
    assert not list(tmp_path.iterdir())


def test_recorded_results_are_the_study_tables_labelled_with_steps_and_machine(tiny_study,
                                                                                tmp_path):
    from scripts.record_study import main

    _, workdir, _ = tiny_study
    doc = tmp_path / "doc.py"
    doc.write_text('"""\n    <results>\n    PREVIOUS\n    </results>\n"""\n')
    with mock.patch("sys.argv", ["record_study", f"--workdir={workdir}", f"--into={doc}",
                                 "--shared"]):
        main()
    text = doc.read_text()
    assert "PREVIOUS" not in text
    assert "    - copy: 3 runs, 20 steps x batch 16," in text
    assert "shared with other engineers' jobs" in text
    assert "    | hard_alibi |" in text and "**copy: exact match by length" in text


def test_sequence_lm_trains_and_resumes_bit_for_bit(tiny_study, tmp_path):
    """The study's hard_alibi run (20 steps in one go) against the same run stopped at step 10
    and resumed."""
    config, workdir, _ = tiny_study
    full = workdir / "copy" / "hard_alibi"
    curve = losses(full)
    assert np.mean(curve[-4:]) < 0.9 * np.mean(curve[:4]), curve  # at least letter frequencies
    assert_resumes_bit_for_bit(plan(config)["copy", "hard_alibi"], tmp_path, full, stop_at=10)


def test_teacher_forced_exact_match_equals_greedy_decoding():
    """The variant scores an answer right iff greedy decoding produces it: answers made by greedy
    decoding score 1, the same answers with one token changed score 0."""
    rc = plan(load_config(CONFIG + ":tiny"))["copy", "hard_alibi"]
    variant = variants.build(rc)
    shapes = jax.eval_shape(variant.init_params, jax.random.key(0))["model"]
    draw = np.random.default_rng(1)  # generic parameters; compiling the initializer costs seconds
    params = jax.tree.map(lambda s: jnp.asarray(draw.normal(0.0, 0.5, s.shape), s.dtype), shapes)
    logits = jax.jit(variant.model.__call__)
    src = variant.eval_source("test")
    rng = np.random.default_rng(0)
    rows, expected = [], []
    for i in range(8):
        e = {k: np.array(v) for k, v in src[i].items()}
        answer = np.nonzero(e["loss_mask"])[0]
        for t in answer:  # greedy: the argmax at t is the input at t + 1
            e["targets"][t] = int(np.argmax(logits(params, jnp.asarray(e["inputs"][None]))[0, t]))
            if t + 1 < len(e["inputs"]):
                e["inputs"][t + 1] = e["targets"][t]
        rows.append(e)
        expected.append(1.0)
        changed = {k: v.copy() for k, v in e.items()}
        t = rng.choice(answer)
        changed["targets"][t] = (changed["targets"][t] + 1) % st.VOCAB  # a wrong answer token
        if t + 1 < len(e["inputs"]):
            changed["inputs"][t + 1] = changed["targets"][t]
        rows.append(changed)
        expected.append(0.0)
    batch = {k: jnp.asarray(np.stack([r[k] for r in rows])) for k in variant.eval_inputs}
    np.testing.assert_array_equal(jax.jit(variant.outputs)(params, batch)["correct"], expected)
