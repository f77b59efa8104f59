"""TI-JEPA: the cross-attention (image tokens query text tokens, padding masked), frozen encoders
(no gradient, never updated), the mask placement switch, the text encoder's BERT masking, the
emoji scenes' labelling rules, the captioned-image and MVSA loaders on files written to disk,
and the `:tiny` chain (a jepax I-JEPA run and a text_mlm run as the frozen encoders, then
TI-JEPA: falling loss, every results row, exact resume, the recorded table)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines import emoji_scenes
from data_pipelines.errors import DataError
from data_pipelines.image_text import LABELS, PAD, read_mvsa, mvsa_split
from data_pipelines.pipeline import train_dataset
from jepax import train, variants
from jepax.config import ConfigError, load_config
from jepax.models.functional import Functional
from jepax.models.text import Crosser, text_mask
from jepax.models.vit import gather_tokens
from tests.helpers import (ROOT, assert_resumes_bit_for_bit, assert_trees_equal, losses,
                           saved_params)

CONFIG = str(ROOT / "experiments" / "ti_jepa.py")
FROZEN = ("image_encoder", "text_encoder")
# The chain's runs and the resume test load compiled programs instead of compiling them again.
pytestmark = pytest.mark.usefixtures("shared_compiles")


def tiny(**model):
    c = load_config(CONFIG + ":tiny")
    c.model.update(**model)
    c.logging.update(progress=False, tensorboard=False)
    c.train.log_every = 1
    return c


# -- cross-attention ----------------------------------------------------------------------------
def test_crosser_image_tokens_query_text_tokens_with_padding_masked():
    crosser = Functional(lambda rngs: Crosser(12, 8, dim=16, depth=2, heads=2, mlp_ratio=2.0,
                                              dtype=jnp.float32, rngs=rngs))
    params = crosser.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.normal(size=(2, 9, 12)), jnp.float32)
    text = jnp.asarray(rng.normal(size=(2, 5, 8)), jnp.float32)
    tokens = jnp.asarray([[7, 8, 9, PAD, PAD], [4, 5, 6, 7, 8]])
    valid = text_mask(tokens)
    assert valid.tolist() == [[True, True, True, False, False], [True] * 5]
    run = jax.jit(crosser.__call__)
    out = run(params, image, text, valid)
    assert out.shape == (2, 9, 16)
    # Padding is masked: what sits at padded positions changes nothing.
    padded_changed = text.at[0, 3:].add(5.0)
    np.testing.assert_array_equal(run(params, image, padded_changed, valid), out)
    # A real word changes every image token of its example, and only of its example.
    word_changed = run(params, image, text.at[0, 1].add(5.0), valid)
    assert np.all(np.abs(np.asarray(word_changed[0] - out[0])).max(-1) > 1e-5)
    np.testing.assert_array_equal(word_changed[1], out[1])
    # Image tokens are queries only: they attend to the text, not to each other.
    image_changed = run(params, image.at[0, 4].add(5.0), text, valid)
    moved = np.abs(np.asarray(image_changed - out)).max(-1)
    assert moved[0, 4] > 1e-3 and np.all(np.delete(moved[0], 4) == 0) and np.all(moved[1] == 0)


def test_text_encoder_pretraining_masks_words_as_bert_and_never_padding():
    from data_pipelines.image_text import MASK, SPECIAL
    from jepax.variants.text_mlm import _mask_words

    tokens = np.asarray([5 + i for i in range(12)] + [PAD] * 4, np.int32)
    rng = np.random.default_rng(0)
    chosen, masked, swapped, kept = 0, 0, 0, 0
    for _ in range(2000):
        out = _mask_words({"tokens": tokens}, rng, ratio=0.25, vocab_size=40)
        np.testing.assert_array_equal(out["mlm_targets"], tokens)
        where = out["mlm_weights"]
        assert where.sum() == 3 and not where[tokens == PAD].any()  # round(0.25 * 12 words)
        np.testing.assert_array_equal(out["tokens"][~where], tokens[~where])
        picked = out["tokens"][where]
        chosen += len(picked)
        masked += int((picked == MASK).sum())
        kept += int((picked == tokens[where]).sum())
        swapped += int(((picked != MASK) & (picked >= len(SPECIAL))).sum())
    assert abs(masked / chosen - 0.8) < 0.03 and abs(kept / chosen - 0.1) < 0.03, \
        (masked / chosen, kept / chosen)
    assert abs((swapped - kept) / chosen - 0.1) < 0.03  # random (non-special) words


# -- a variant on random frozen encoders ----------------------------------------------------------
@pytest.fixture(scope="module")
def variant_and_batch():
    variant = variants.build(tiny())
    batch = next(iter(train_dataset(variant.train_source(), seed=0, global_batch=4,
                                    example_fn=variant.example_fn(),
                                    batch_fn=variant.batch_fn())))
    params = jax.jit(variant.init_params)(jax.random.key(0))
    return variant, {k: jnp.asarray(v) for k, v in batch.items()}, params


def test_frozen_encoders_receive_no_gradient(variant_and_batch):
    variant, batch, params = variant_and_batch
    assert variant.frozen == FROZEN
    grads = jax.jit(jax.grad(lambda p: variant.loss(p, p["crosser"], batch, None)[0]))(params)
    for name in FROZEN:
        assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grads[name])), name
    for name in ("crosser", "predictor"):
        assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads[name])) > 0, name


def test_mask_placement_after_encoding_sees_the_whole_image_before_encoding_only_the_context(
        variant_and_batch):
    after, batch, params = variant_and_batch
    config = tiny()
    config.mask.placement = "before_encoder"
    before = variants.build(config)
    images, idx, valid = batch["image"], batch["context_idx"], batch["context_valid"]
    outside = np.ones(after.grid[0] * after.grid[1], bool)
    outside[np.asarray(idx[0])[np.asarray(valid[0])]] = False
    assert outside.any() and not outside.all()
    # Repaint every patch of example 0 outside its context block.
    p = after.ijepa.config.model.patch_size
    mask = np.zeros(images.shape[1:3], bool)
    for token in np.flatnonzero(outside):
        r, c = divmod(int(token), after.grid[1])
        mask[r * p:(r + 1) * p, c * p:(c + 1) * p] = True
    repainted = images.at[0].set(jnp.where(mask[..., None], 255 - images[0], images[0]))

    def context(variant, imgs):
        full = variant.encode_image(params["image_encoder"], imgs)
        tokens = variant.context_tokens(params["image_encoder"], imgs, full, idx, valid)
        return np.asarray(tokens[0])[np.asarray(valid[0])], full

    ctx_after, full = context(after, images)
    np.testing.assert_array_equal(ctx_after, np.asarray(gather_tokens(full, idx)[0])[np.asarray(valid[0])])
    assert not np.allclose(context(after, repainted)[0], ctx_after, atol=1e-4)
    np.testing.assert_allclose(context(before, repainted)[0], context(before, images)[0],
                               atol=1e-5)


def test_unknown_mask_placement_is_one_clear_error():
    config = tiny()
    config.mask.placement = "inside"
    with pytest.raises(ConfigError, match="mask.placement='inside'"):
        variants.build(config)


# -- data: the labelling rules and the loaders on files ---------------------------------------------
MVSA_RULE = {  # (text, image) -> label; None: inconsistent, removed (MultiSentiNet)
    ("positive", "positive"): "positive", ("neutral", "neutral"): "neutral",
    ("negative", "negative"): "negative", ("neutral", "positive"): "positive",
    ("positive", "neutral"): "positive", ("neutral", "negative"): "negative",
    ("negative", "neutral"): "negative", ("positive", "negative"): None,
    ("negative", "positive"): None}


def polarity_of(name, table):
    return next(p for p, names in table.items() if name in names)


def test_scene_labels_follow_the_stated_rules():
    examples = emoji_scenes.scene_examples(600, seed=3)
    sign = {"positive": 1, "neutral": 0, "negative": -1}
    for e in examples:
        total = sign[polarity_of(e["face"], emoji_scenes.FACES)] + \
            sign[polarity_of(e["weather"], emoji_scenes.WEATHER)]
        assert e["image_label"] == ("positive" if total > 0 else "negative" if total < 0
                                    else "neutral")
        mood = polarity_of(e["mood"], emoji_scenes.MOODS)
        negated = any(f"{n} {e['mood']}" in e["caption"] for n in emoji_scenes.NEGATIONS)
        assert negated == e["negated"]
        flipped = {"positive": "negative", "negative": "positive", "neutral": "neutral"}
        assert e["text_label"] == (flipped[mood] if negated else mood)
        assert e["label"] == MVSA_RULE[(e["text_label"], e["image_label"])] is not None
    assert {e["label"] for e in examples} == set(LABELS)
    assert any(e["negated"] for e in examples) and any(e["text_label"] != e["image_label"]
                                                       for e in examples)


def test_mvsa_single_and_multiple_layouts_read_back_with_merged_labels(tmp_path):
    examples = emoji_scenes.scene_examples(20, seed=4)
    single = read_mvsa(emoji_scenes.write_mvsa(tmp_path / "single", examples, annotators=1,
                                               size=24))
    assert [LABELS[r[2]] for r in single] == [e["label"] for e in examples]
    assert [r[1] for r in single] == [e["caption"] for e in examples]
    multiple = emoji_scenes.write_mvsa(tmp_path / "multiple", examples, annotators=3, size=24)
    with (multiple / "labelResultAll.txt").open("a") as f:  # no 2-of-3 majority; inconsistent
        f.write("21\tpositive,positive\tnegative,neutral\tneutral,negative\n"
                "22\tpositive,negative\tpositive,negative\tneutral,negative\n")
    for post in (21, 22):
        (multiple / "data" / f"{post}.txt").write_text("a tweet\n")
    records = read_mvsa(multiple)
    assert [LABELS[r[2]] for r in records] == [e["label"] for e in examples]
    splits = [mvsa_split(records, s) for s in ("train", "val", "test")]
    assert [len(s) for s in splits] == [16, 2, 2]
    assert sorted(r[1] for s in splits for r in s) == sorted(r[1] for r in records)
    (multiple / "labelResultAll.txt").unlink()
    with pytest.raises(DataError, match="labelResultAll.txt"):
        read_mvsa(multiple)


# -- the :tiny chain: frozen encoders from jepax runs, then TI-JEPA ---------------------------------
@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """A few steps of I-JEPA on the scenes' images and of text_mlm on their captions: the
    frozen encoders come from jepax checkpoints, as in the default chain."""
    root = tmp_path_factory.mktemp("encoders")
    image = load_config(CONFIG + ":image_encoder_tiny")
    text = load_config(str(ROOT / "experiments" / "text_mlm.py:tiny"))
    text.train.update(steps=4, checkpoint_every=4)
    text.eval.evaluators = ()
    for c in (image, text):
        c.logging.update(progress=False, tensorboard=False)
    train.run(image, root / "image_encoder")
    train.run(text, root / "text_encoder")
    return root / "image_encoder", root / "text_encoder"


def chained(encoders):
    return tiny(image_encoder=str(encoders[0]), text_encoder=str(encoders[1]))


@pytest.fixture(scope="module")
def tiny_run(encoders, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ti_jepa")
    return workdir, train.run(chained(encoders), workdir)


def test_tiny_chain_trains_with_falling_loss_and_evaluates_every_row(tiny_run):
    workdir, summary = tiny_run
    curve = losses(workdir)
    assert len(curve) == 30 and np.mean(curve[-5:]) < 0.9 * np.mean(curve[:3]), curve
    rows = summary["eval"]
    assert set(rows) == {"pretrained", "random init", "concatenated unimodal",
                         "image encoder only", "text encoder only"}
    for name, row in rows.items():
        assert {"sentiment_acc", "sentiment_macro_f1", "sentiment_acc_shuffled_captions",
                "sentiment_acc_noise_images", "rankme"} <= set(row), name
        assert 0.0 <= row["sentiment_macro_f1"] <= 1.0
    record = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"target_std", "target_std_min", "pred_std"} <= set(record)


def test_frozen_encoders_are_the_jepax_checkpoints_and_never_change(tiny_run, encoders):
    workdir, _ = tiny_run
    params = saved_params(workdir, 30)["params"]
    ijepa = saved_params(encoders[0], 10)
    text = saved_params(encoders[1], 4)
    assert_trees_equal(params["image_encoder"], ijepa["target"])
    assert_trees_equal(params["text_encoder"], text["params"]["encoder"])


def test_tiny_chain_resumes_bit_for_bit(tiny_run, encoders, tmp_path):
    assert_resumes_bit_for_bit(chained(encoders), tmp_path, tiny_run[0], stop_at=15)


def test_an_image_encoder_that_is_not_an_ijepa_run_is_one_clear_error(encoders):
    with pytest.raises(ConfigError, match="is a 'text_mlm' run; it must be a 'ijepa' run"):
        variants.build(tiny(image_encoder=str(encoders[1])))


def test_recorded_table_has_every_row_with_accuracy_macro_f1_and_the_fusion_check(tiny_run):
    from scripts.record_results import table, write_between_markers

    workdir, summary = tiny_run
    lines = table(workdir)
    header = lines[0]
    for column in ("sentiment_acc", "sentiment_macro_f1", "sentiment_acc_shuffled_captions",
                   "sentiment_acc_noise_images"):
        assert column in header
    row = summary["eval"]["concatenated unimodal"]
    concatenated = next(l for l in lines if l.startswith("| concatenated unimodal |"))
    assert f"{row['sentiment_macro_f1']:.3f}" in concatenated
    doc = workdir / "doc.py"
    doc.write_text('"""\n    <results>\n    old\n    </results>\n"""\n')
    write_between_markers(doc, lines)
    assert "old" not in doc.read_text() and concatenated in doc.read_text()
