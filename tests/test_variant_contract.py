"""The variant contract (jepax/variants/base.py): every registered variant satisfies it, a
non-image variant and a variant without an EMA target train, resume exactly and are evaluated
through the registry, studies train through the same loop, and the generic code imports no
modality."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from data_pipelines.pipeline import eval_arrays, train_dataset
from jepax import checkpoint, studies, train, variants
from jepax.config import ConfigError, load_config
from jepax.variants.base import Variant
from tests import signal_variant
from tests.helpers import ROOT, assert_resumes_bit_for_bit, assert_trees_equal, losses, saved_params

signal_variant.register()


def experiment_configs() -> dict[str, object]:
    """variant name -> its experiment's :tiny config, for every experiment that trains one (a
    study's base run config, ``run``, counts)."""
    found = {}
    for path in sorted((ROOT / "experiments").glob("*.py")):
        config = load_config(f"{path}:tiny")
        if "study" in config and "run" in config:
            config = config.run
        if "variant" in config:
            found[config.variant] = config
    return found


def protocol_members():
    methods = {n for n, v in vars(Variant).items() if inspect.isfunction(v) and not n.startswith("_")}
    attributes = set(Variant.__annotations__) - {"config"}
    return methods, attributes


def test_every_registered_variant_satisfies_the_protocol():
    configs = {**experiment_configs(), "signal_jepa": signal_variant.config("signal_jepa"),
               "signal_classifier": signal_variant.config("signal_classifier")}
    missing = set(variants.VARIANTS) - set(configs)
    assert not missing, f"registered variants without an experiment config: {missing}"
    methods, attributes = protocol_members()
    assert {"loss", "outputs", "ema_source", "train_source", "flops_per_step"} <= methods
    for name in variants.VARIANTS:
        variant = variants.build(configs[name])
        assert isinstance(variant, Variant), name
        for method in methods:  # callable with the protocol's arguments
            wanted = list(inspect.signature(getattr(Variant, method)).parameters)[1:]
            inspect.signature(getattr(variant, method)).bind(*wanted)
        for attribute in attributes:
            assert hasattr(variant, attribute), (name, attribute)
        assert isinstance(variant.replicated_keys, frozenset), name
        for path in variant.transfer_paths:
            assert path.split("/")[0] in ("params", "target"), (name, path)


@pytest.mark.parametrize("name", sorted(experiment_configs()))
def test_each_variant_batch_loss_and_outputs_have_the_contracts_shapes(name):
    """One real batch through the variant's pipeline: replicated keys have no batch axis, the
    loss is a scalar, the outputs lead with the batch, baselines give the same keys."""
    config = experiment_configs()[name]
    variant = variants.build(config)
    batch = next(iter(train_dataset(variant.train_source(), seed=0, global_batch=8,
                                    example_fn=variant.example_fn(),
                                    batch_fn=variant.batch_fn())))
    for key, value in batch.items():
        if key not in variant.replicated_keys:
            assert value.shape[0] == 8, (key, value.shape)
    params = jax.eval_shape(variant.init_params, jax.random.key(0))
    source = variant.ema_source(params)
    target = None if source is None else source
    loss, metrics = jax.eval_shape(variant.loss, params, target, batch, jax.random.key(1))
    assert loss.shape == () and all(m.shape == () for m in metrics.values())
    arrays = eval_arrays(variant.eval_source("test"), 8, variant.eval_example_fn())
    inputs = {k: arrays[k] for k in variant.eval_inputs}
    outputs = jax.eval_shape(variant.outputs, variant.eval_params(params, target), inputs)
    assert all(o.shape[0] == 8 for o in outputs.values())
    for baseline in variant.baselines().values():
        assert set(baseline(arrays)) <= set(outputs)


@pytest.fixture(scope="module")
def signal_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("signal_jepa")
    summary = train.run(signal_variant.config("signal_jepa", steps=24, checkpoint_every=8), workdir)
    return workdir, summary


def test_signal_jepa_trains_and_is_evaluated_through_the_registry(signal_run):
    workdir, summary = signal_run
    curve = losses(workdir)
    assert len(curve) == 24 and np.mean(curve[-4:]) < 0.7 * np.mean(curve[:4]), curve
    rows = summary["eval"]
    assert set(rows) == {"pretrained", "random init", "raw signal", "spectrum"}
    for row in rows.values():
        assert {"linear_probe_acc", "knn_acc", "rankme"} <= set(row)
    # The magnitude spectrum separates the four frequencies almost perfectly.
    assert rows["spectrum"]["linear_probe_acc"] > 0.9
    saved = json.loads((workdir / "results" / "eval_step24.json").read_text())
    assert saved["spectrum"] == rows["spectrum"]


def test_signal_jepa_resumes_bit_for_bit(signal_run, tmp_path):
    ref_dir, _ = signal_run
    config = signal_variant.config("signal_jepa", steps=24, checkpoint_every=8)
    assert_resumes_bit_for_bit(config, tmp_path, ref_dir, stop_at=12)


def test_variant_without_an_ema_target_trains_resumes_and_transfers(tmp_path):
    config = signal_variant.config("signal_classifier", steps=20, checkpoint_every=10)
    config.eval.evaluators = ("linear_probe",)
    summary = train.run(config, tmp_path / "full")
    assert np.mean(losses(tmp_path / "full")[-3:]) < 0.7 * losses(tmp_path / "full")[0]
    saved = saved_params(tmp_path / "full", 20)
    assert saved.get("target") is None  # nothing was tracked
    assert summary["eval"]["pretrained"]["linear_probe_acc"] > 0.8

    half = signal_variant.config("signal_classifier", steps=20, checkpoint_every=10, run_steps=10)
    half.eval.evaluators = ()
    train.run(half, tmp_path / "halves")
    with half.unlocked():
        half.train.run_steps = 0
    train.run(half, tmp_path / "halves")
    assert losses(tmp_path / "halves") == losses(tmp_path / "full")
    assert_trees_equal(saved_params(tmp_path / "halves", 20), saved)

    # init_from loads exactly the variant's transfer_paths: the encoder, not the head.
    # (nan_policy=rollback checkpoints the initial state, transfer applied, as step 0.)
    start = signal_variant.config("signal_classifier", steps=1, init_from=str(tmp_path / "full"),
                                  nan_policy="rollback")
    start.eval.evaluators = ()
    train.run(start, tmp_path / "transfer")
    moved = saved_params(tmp_path / "transfer", 0)
    assert_trees_equal(moved["params"]["encoder"], saved["params"]["encoder"])
    head = lambda tree: tree["params"]["head"]["kernel"]
    assert not np.array_equal(head(moved), head(saved))

    wider = signal_variant.config("signal_classifier", init_from=str(tmp_path / "full"))
    with wider.unlocked():
        wider.model.width = 16
    with pytest.raises(ConfigError, match="does not match this model.*params/encoder/"):
        train.run(wider, tmp_path / "wider")


def width_study(config, workdir):
    """A test study: the classifier at several widths, each trained by the one loop."""
    out = {}
    for width in config.widths:
        run_config = config.run.copy_and_resolve_references()
        run_config.model.width = width
        out[width] = train.run(run_config, workdir / f"width{width}")
    return out


def test_a_study_trains_its_networks_through_the_loop(tmp_path):
    studies.register("signal_widths", width_study)
    run_config = signal_variant.config("signal_classifier", steps=6, checkpoint_every=3)
    run_config.eval.evaluators = ()
    config = run_config.copy_and_resolve_references()
    with config.unlocked():
        config.study = "signal_widths"
        config.widths = (16, 32)
        config.run = run_config
    first = train.run(config, tmp_path)
    assert {w: s["step"] for w, s in first.items()} == {16: 6, 32: 6}
    for width in (16, 32):
        assert checkpoint.Checkpointer(tmp_path / f"width{width}" / "checkpoints",
                                       keep=3).steps() == [3, 6]
        assert len(losses(tmp_path / f"width{width}")) == 6
    again = train.run(config, tmp_path)  # resumes: every run is already finished
    assert all(s["loss"] is None and s["step"] == 6 for s in again.values())


# -- import graph --------------------------------------------------------------------------
GENERIC = ("jepax.train", "jepax.step", "jepax.state", "jepax.experiment", "jepax.checkpoint",
           "jepax.metrics", "jepax.evaluators", "jepax.evaluators.runner",
           "jepax.evaluators.base", "jepax.evaluators.report", "jepax.evaluators.linear_probe",
           "jepax.evaluators.knn", "jepax.evaluators.rankme", "jepax.evaluators.regression_probe",
           "jepax.evaluators.fine_tune", "jepax.evaluators.collapse", "jepax.variants",
           "jepax.variants.base", "data_pipelines.pipeline", "data_pipelines.sources")
NEUTRAL_DATA = {"data_pipelines", "data_pipelines.pipeline", "data_pipelines.sources",
                "data_pipelines.errors"}


def project_module(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def imported_modules(name: str) -> set[str]:
    """Project modules `name` imports anywhere in its file (also inside functions)."""
    path = project_module(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                  + ([module] if module else []))
            candidates = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c.split(".")[0] in ("jepax", "data_pipelines")
                  and project_module(c) is not None}
    return found


def import_closure(roots) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(imported_modules(name))
    return seen


def test_generic_code_imports_no_modality_module():
    closure = import_closure(GENERIC)
    assert "data_pipelines.pipeline" in closure and "jepax.variants.base" in closure  # sanity
    modality = sorted(m for m in closure if (m.startswith("data_pipelines") and m not in NEUTRAL_DATA)
                      or (m.startswith("jepax.variants.") and m != "jepax.variants.base")
                      or m.startswith(("jepax.models", "jepax.studies.")))
    assert not modality, f"generic code imports modality modules: {modality}"


def test_import_graph_check_sees_a_modality_import():
    # The checker itself: I-JEPA's module does import the image transforms.
    assert "data_pipelines.transforms" in import_closure(["jepax.variants.ijepa"])


def test_importing_the_loop_loads_no_modality_module_at_run_time():
    code = ("import sys, jepax.train, jepax.evaluators.runner; "
            "print(sorted(m for m in sys.modules if m.startswith(('data_pipelines.', "
            "'jepax.variants.', 'jepax.models'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    loaded = set(json.loads(out.replace("'", '"')))
    assert "data_pipelines.pipeline" in loaded  # sanity: the check sees project modules
    assert loaded <= NEUTRAL_DATA | {"jepax.variants.base"}, loaded
