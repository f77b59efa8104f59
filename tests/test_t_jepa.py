"""T-JEPA on tables: the table loaders and schema checks on real files, the feature tokenizer,
the feature masks' invariants (correct and official [REG] indexing), positions, the downstream
evaluators, and `:tiny` training (falling loss, exact resume)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.errors import DataError
from data_pipelines.masks.features import FeatureMaskError, FeatureMasks, FeatureMaskSpec
from data_pipelines.tables import load_table, prepare, read_table
from jepax import evaluators, train
from jepax.config import ConfigError, load_config
from jepax.evaluators.base import Row
from jepax.models.functional import Functional
from jepax.models.posemb import sincos_1d
from jepax.models.tokenizers import FeatureTokenizer
from jepax.variants.t_jepa import TJEPA
from tests.helpers import ROOT, assert_resumes_bit_for_bit, losses

pytestmark = pytest.mark.usefixtures("shared_compiles")  # one compile per program

CONFIG = str(ROOT / "experiments" / "t_jepa.py")


# -- tables ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diamonds():
    frame, roles, task = load_table("diamonds")
    return frame.iloc[:600].copy(), roles, task


def test_shipped_diamonds_is_the_full_table_split_and_scaled_on_the_training_rows():
    frame, roles, task = load_table("diamonds")
    assert frame.shape == (53940, 10) and task == "regression"
    table = prepare(frame, roles, task=task, test_fraction=0.2, seed=0)
    (num, cat, y), (num_test, cat_test, y_test) = table.splits["train"], table.splits["test"]
    assert len(y) + len(y_test) == 53940 and len(y_test) == 10788
    assert table.numerical_names == ("carat", "depth", "table", "x", "y", "z")
    assert table.categorical_names == ("cut", "color", "clarity")
    assert table.cardinalities == (5 + 1, 7 + 1, 8 + 1)  # code 0 kept for unseen categories
    np.testing.assert_allclose(num.min(0), 0.0)
    np.testing.assert_allclose(num.max(0), 1.0)
    assert cat.min() >= 1 and y.dtype == np.float32
    assert abs(y.mean()) < 1e-4 and abs(y.std() - 1) < 1e-4  # standardized on training rows
    assert abs(y_test.mean()) > 1e-4  # ... and only on them


@pytest.mark.parametrize("name,shape,classes", [("breast_cancer", (569, 30), 2),
                                                ("wine", (178, 13), 3), ("digits", (1797, 64), 10)])
def test_shipped_scikit_learn_tables(name, shape, classes):
    frame, roles, task = load_table(name)
    table = prepare(frame, roles, task=task)
    num, cat, y = table.splits["train"]
    assert (len(y) + len(table.splits["test"][2]), len(table.numerical_names)) == shape
    assert cat.shape == (len(y), 0) and task == "classification"
    assert len(table.classes) == classes and y.dtype == np.int32


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_with_a_schema_file_read_back_the_same_table(diamonds, tmp_path, suffix):
    frame, roles, _ = diamonds
    path = tmp_path / f"gems{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    (tmp_path / "gems.schema.json").write_text(json.dumps({**roles, "depth": "ignore"}))
    loaded, loaded_roles, task = load_table(str(path))
    assert task == "auto" and loaded_roles["depth"] == "ignore"
    table = prepare(loaded, loaded_roles, task="regression")
    reference = prepare(frame, {**roles, "depth": "ignore"}, task="regression")
    assert table.numerical_names == ("carat", "table", "x", "y", "z")
    for split in ("train", "test"):
        for ours, theirs in zip(table.splits[split], reference.splits[split]):
            np.testing.assert_array_equal(ours, theirs)


def test_arff_file_from_openml_with_missing_categories():
    sklearn_dir = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0])
    path = sklearn_dir / "datasets/tests/data/openml/id_1590/data-v1-dl-1595261.arff.gz"
    frame = read_table(path)  # a slice of the real Adult file, as OpenML serves it
    assert list(frame.columns[:3]) == ["age", "workclass", "fnlwgt"]
    table = prepare(frame, {**{c: "numerical" for c in ("age", "fnlwgt", "education-num",
                                                        "capital-gain", "capital-loss",
                                                        "hours-per-week")},
                            **{c: "categorical" for c in ("workclass", "education",
                                                          "marital-status", "occupation",
                                                          "relationship", "race", "sex",
                                                          "native-country")},
                            "class": "target"}, test_fraction=0.25)
    assert table.task == "classification" and set(table.classes) == {">50K", "<=50K"}
    assert frame["workclass"].isna().any()  # '?' cells ...
    assert len(table.numerical_names) == 6 and len(table.cardinalities) == 8


def test_inline_schema_and_a_column_missing_from_the_schema(diamonds, tmp_path):
    frame, _, _ = diamonds
    path = tmp_path / "gems.csv"
    frame.to_csv(path, index=False)
    inline = ("carat:numerical,cut:categorical,color:categorical,clarity:categorical,"
              "depth:numerical,table:numerical,price:target,x:numerical,y:numerical")
    with pytest.raises(DataError, match=r"column\(s\) \['z'\] are not in the schema"):
        prepare(*load_table(str(path), inline)[:2])
    table = prepare(*load_table(str(path), inline + ",z:ignore")[:2], task="regression")
    assert "z" not in table.numerical_names
    with pytest.raises(DataError, match=r"(?s)no schema for .*gems.schema.json.*\"cut\": \"categorical\".*\"z\": \"target\""):
        load_table(str(path))  # no sidecar: the error shows a schema guessed from the data
    with pytest.raises(DataError, match=r"names column\(s\) \['weight'\] that the table does not"):
        prepare(frame, {**load_table("diamonds")[1], "weight": "numerical"})


def test_unparseable_and_missing_numbers_are_clear_errors(diamonds, tmp_path):
    frame, roles, _ = diamonds
    bad = frame.astype({"carat": object})
    bad.loc[7, "carat"] = "0.3ct"
    path = tmp_path / "gems.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"'carat' has 1 value\(s\) that are not numbers, first "
                                        r"'0.3ct' in data row 7; fix them or declare"):
        prepare(read_table(path), roles)
    frame = frame.copy()
    frame.loc[3, "depth"] = np.nan
    with pytest.raises(DataError, match=r"'depth' has 1 missing value\(s\), first in data row 3"):
        prepare(frame, roles)
    with pytest.raises(DataError, match="exactly one target"):
        prepare(frame, {**roles, "price": "numerical"})


# -- model pieces ----------------------------------------------------------------------------
def test_feature_tokenizer_numerical_and_categorical_tokens_after_the_reg_tokens():
    tok = Functional(lambda rngs: FeatureTokenizer(2, (3, 4), 8, n_reg=2, rngs=rngs))
    p = tok.init(jax.random.key(0))
    num = jnp.array([[0.25, 1.0], [0.0, 0.5]])
    cat = jnp.array([[2, 0], [1, 3]])
    out = np.asarray(tok(p, num, cat))
    assert out.shape == (2, 2 + 2 + 2, 8)
    np.testing.assert_allclose(out[:, :2], np.broadcast_to(p["reg"], (2, 2, 8)))
    np.testing.assert_allclose(out[0, 2], 0.25 * p["num_weight"][0] + p["num_bias"][0], rtol=1e-6)
    np.testing.assert_allclose(out[1, 3], 0.5 * p["num_weight"][1] + p["num_bias"][1], rtol=1e-6)
    # categorical j uses its own rows of the shared table (offsets 0 and 3)
    np.testing.assert_allclose(out[0, 4], p["cat_table"][2] + p["cat_bias"][0], rtol=1e-6)
    np.testing.assert_allclose(out[1, 5], p["cat_table"][3 + 3] + p["cat_bias"][1], rtol=1e-6)
    assert np.abs(p["num_weight"]).max() <= 8 ** -0.5  # FT-Transformer's uniform init


def test_encoder_positions_are_interleaved_sin_cos_of_base_100():
    pe = sincos_1d(6, np.arange(4), base=100.0, interleave=True)
    freqs = 100.0 ** (-np.arange(0, 6, 2) / 6)
    np.testing.assert_allclose(pe[3, 0::2], np.sin(3 * freqs), rtol=1e-6)
    np.testing.assert_allclose(pe[3, 1::2], np.cos(3 * freqs), rtol=1e-6)


def masks(official=False, **kw):
    spec = dict(n_features=12, n_reg=2, context_share=(0.2, 0.4), target_share=(0.2, 0.4))
    return FeatureMasks(FeatureMaskSpec(**{**spec, **kw}, official=official))


def test_mask_shares_stay_in_range_and_targets_never_touch_the_context():
    sampler = masks()
    d, reg = 12, 2
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(200):
        m = sampler.sample_batch(rng, 16)
        n_ctx = int(m["context_valid"][0].sum()) - reg
        n_tgt = int(m["target_valid"][0, 0].sum())
        sizes.add((n_ctx, n_tgt))
        assert round(0.2 * d) <= n_ctx <= round(0.4 * d) and round(0.2 * d) <= n_tgt <= round(0.4 * d)
        assert n_ctx + n_tgt <= d
        assert (m["context_valid"].sum(1) == n_ctx + reg).all()  # one size per batch
        assert (m["target_valid"].sum(2) == n_tgt).all() and m["target_idx"].shape[1] == 4
        for row in range(16):
            ctx = set(m["context_idx"][row][m["context_valid"][row]])
            assert len(ctx) == n_ctx + reg
            for t in range(4):
                tgt = set(m["target_idx"][row, t][m["target_valid"][row, t]])
                assert len(tgt) == n_tgt and not tgt & ctx
    assert len(sizes) > 5  # the sizes do vary from batch to batch


def test_reg_tokens_are_always_context_and_never_targets_by_default():
    m = masks().sample_batch(np.random.default_rng(1), 256)
    ctx, ctx_valid = m["context_idx"], m["context_valid"]
    assert (ctx[:, :2] == [0, 1]).all() and ctx_valid[:, :2].all()
    assert (ctx[:, 2:][ctx_valid[:, 2:]] >= 2).all()
    tgt = m["target_idx"][m["target_valid"]]
    assert tgt.min() >= 2 and tgt.max() == 12 + 2 - 1  # the last feature (token 13) is masked


def test_official_indexing_is_off_by_the_reg_tokens():
    sampler = masks(official=True)
    rng = np.random.default_rng(2)
    batches = [sampler.sample_batch(rng, 64) for _ in range(50)]
    ctx = np.concatenate([b["context_idx"][b["context_valid"]] for b in batches])
    tgt = np.concatenate([b["target_idx"][b["target_valid"]] for b in batches])
    both = np.concatenate([ctx, tgt])
    # Feature ids 0..11 used as token ids: [REG] tokens (0, 1) get dropped from the context or
    # predicted, and the last two features (tokens 12, 13) are never seen or predicted.
    assert set(both) == set(range(12))
    assert np.isin(ctx, [0, 1]).mean() < 0.5 and np.isin(tgt, [0, 1]).any()
    assert sampler.context_capacity == round(0.4 * 12)  # no [REG] slots reserved


def test_official_masks_feed_the_variant_loss():
    from data_pipelines.pipeline import train_dataset

    config = load_config(CONFIG + ":tiny")
    config.mask.official = True
    variant = TJEPA(config)
    batch = next(iter(train_dataset(variant.train_source(), seed=0, global_batch=8,
                                    batch_fn=variant.batch_fn())))
    assert batch["context_idx"].shape == (8, round(0.4 * 13))  # no [REG] slot
    params = jax.eval_shape(variant.init_params, jax.random.key(0))
    loss, metrics = jax.eval_shape(variant.loss, params, params["encoder"], batch, None)
    assert loss.shape == () and set(metrics) == {"target_std", "target_std_min", "pred_std"}


def test_impossible_mask_shares_are_config_errors():
    with pytest.raises(FeatureMaskError, match="exceed the 4 features"):
        masks(n_features=4, context_share=(0.6, 0.8), target_share=(0.7, 0.8))
    config = load_config(CONFIG + ":tiny")
    config.mask.context_share = (0.01, 0.02)
    with pytest.raises(ConfigError, match="selects no feature of 13.*the table has 13 features"):
        TJEPA(config)


# -- evaluators ------------------------------------------------------------------------------
def blobs(n=600, regression=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    if regression:
        y = (np.sin(x[:, 0]) + 0.5 * x[:, 1]).astype(np.float32)
    split = {"train": {"features": x[:450], "label": y[:450]},
             "test": {"features": x[450:], "label": y[450:]}}
    return lambda name: Row(name, lambda s, n: split[s]), y[450:]


@pytest.mark.parametrize("kind", ["mlp_probe", "resnet_probe", "gbdt"])
def test_downstream_models_learn_classes_and_regression_targets(kind):
    extra = {"max_iter": 100} if kind == "gbdt" else {"epochs": 8, "batch_size": 64}
    evaluator = evaluators.build("m", evaluators.block(kind, seeds=2, **extra))
    row, _ = blobs()
    scores = evaluator.evaluate(row("raw features"))
    assert set(scores) == {"m_acc", "m_acc_std"} and scores["m_acc"] > 0.9
    row, y = blobs(regression=True)
    scores = evaluator.evaluate(row("raw features"))
    assert set(scores) == {"m_rmse", "m_rmse_std"} and scores["m_rmse"] < 0.5 * y.std()


def test_rows_setting_limits_an_evaluator_to_named_rows():
    evaluator = evaluators.build("gbdt", evaluators.block("gbdt", rows=("raw features",), seeds=1))
    row, _ = blobs()
    assert evaluator.evaluate(row("pretrained")) == {}
    assert "gbdt_acc" in evaluator.evaluate(row("raw features"))
    with pytest.raises(ConfigError, match="tuple of row names"):
        evaluators.build("gbdt", evaluators.block("gbdt", rows="raw features"))


# -- training --------------------------------------------------------------------------------
def tiny(**train_overrides):
    c = load_config(CONFIG + ":tiny")
    c.train.update(steps=30, log_every=1, checkpoint_every=15, **train_overrides)
    c.logging.update(progress=False, tensorboard=False)
    # The wiring, not the numbers: a few epochs, and the ResNet (tested above) left out.
    c.evals.mlp.update(epochs=3)
    c.evals.gbdt.max_iter = 20
    c.eval.evaluators = ("mlp", "gbdt", "rankme")
    return c


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("t_jepa")
    return workdir, train.run(tiny(), workdir)


def test_tiny_trains_with_falling_loss_and_evaluates_every_row(tiny_run):
    workdir, summary = tiny_run
    curve = losses(workdir)
    assert len(curve) == 30 and np.mean(curve[-5:]) < 0.85 * np.mean(curve[:3]), curve
    rows = summary["eval"]
    assert set(rows) == {"pretrained", "random init", "raw features"}
    for name, row in rows.items():
        assert {"mlp_acc", "mlp_acc_std", "rankme"} <= set(row), name
        assert ("gbdt_acc" in row) == (name == "raw features")
    assert rows["raw features"]["gbdt_acc"] > 0.8  # wine is easy for trees
    record = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"target_std", "target_std_min", "pred_std"} <= set(record)


def test_tiny_resumes_bit_for_bit(tiny_run, tmp_path):
    ref_dir, _ = tiny_run
    assert_resumes_bit_for_bit(tiny(), tmp_path, ref_dir, stop_at=15)


def test_recorded_table_shows_mean_and_std_over_seeds(tiny_run):
    from scripts.record_results import table, write_between_markers

    workdir, summary = tiny_run
    lines = table(workdir)
    assert lines[0] == "| outputs (step 30) | MLP acc | GBDT acc | RankMe |"
    raw = next(l for l in lines if l.startswith("| raw features |"))
    gbdt = summary["eval"]["raw features"]
    assert f"{gbdt['gbdt_acc']:.3f} +- {gbdt['gbdt_acc_std']:.3f}" in raw
    assert "all train_examples" in lines[-1]
    doc = workdir / "doc.py"
    doc.write_text('"""\n  <results:wine>\n  old\n  </results:wine>\n  <results>\n  keep\n  </results>\n"""\n')
    write_between_markers(doc, lines, tag="wine")
    text = doc.read_text()
    assert "old" not in text and "  " + raw in text and "keep" in text
