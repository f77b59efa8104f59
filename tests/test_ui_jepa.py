"""UI-JEPA: the scripted screen recorder and the recordings loader on real MP4 files, the
tubelet tokenizer and its 3-D positions, the tubelet masks' invariants (block scales, whole
non-contiguous time slices), the intent decoder (loss on intent tokens only, ROUGE against
hand-computed values) and `:tiny` training (falling loss, every row evaluated, exact resume)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from data_pipelines import ui_recorder
from data_pipelines.errors import DataError
from data_pipelines.masks.multiblock import MaskConfigError
from data_pipelines.masks.tubelet_blocks import TubeletMasks, TubeletMaskSpec, contiguous
from data_pipelines.ui_recordings import Recordings
from jepax import train
from jepax.config import ConfigError, load_config
from jepax.evaluators import intent_decoder as intent
from jepax.models.posemb import sincos_nd
from jepax.models.tokenizers import TubeletEmbed
from jepax.variants.ui_jepa import UIJEPA, pixel_and_difference_tokens
from tests.helpers import ROOT, assert_resumes_bit_for_bit, losses

CONFIG = str(ROOT / "experiments" / "ui_jepa.py")
pytestmark = pytest.mark.usefixtures("shared_compiles")


# -- recordings ------------------------------------------------------------------------------
def test_recorder_renders_the_same_frames_for_the_same_seed():
    first = ui_recorder.record(0, np.random.default_rng(7), 8)
    again = ui_recorder.record(0, np.random.default_rng(7), 8)
    other = ui_recorder.record(0, np.random.default_rng(8), 8)
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1:] == again[1:] and first[1] == f"send a message to {first[2]}"
    assert not np.array_equal(first[0], other[0])
    assert first[0].shape == (8, ui_recorder.SIZE, ui_recorder.SIZE, 3)
    assert len(np.unique(first[0].reshape(8, -1), axis=0)) > 3  # the screen changes over time


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    ui_recorder.write_dataset(folder, {"train": 8, "zeroshot": 2}, frames=8, seed=3)
    return folder


def test_written_mp4_recordings_read_back_through_the_loader(written):
    lines = [json.loads(l) for l in (written / "train.jsonl").read_text().splitlines()]
    source = Recordings(written, "train", frames=8, size=ui_recorder.SIZE)
    assert len(source) == 8
    for i in (0, 5):
        example = source[i]
        rng = np.random.default_rng([3, ui_recorder.split_key("train"), i])
        frames, text, slot = ui_recorder.record(lines[i]["template"], rng, 8)
        assert (example["intent"], example["slot"]) == (text, slot) == (lines[i]["intent"],
                                                                         lines[i]["slot"])
        # H.264 at crf 12 is near-lossless on flat UI colours.
        assert np.abs(example["frames"].astype(int) - frames).mean() < 4
    small = Recordings(written, "train", frames=4, size=32)[0]["frames"]
    assert small.shape == (4, 32, 32, 3) and small.dtype == np.uint8


def test_zero_shot_split_holds_only_the_held_out_intents(written):
    seen = {json.loads(l)["template"] for l in (written / "train.jsonl").read_text().splitlines()}
    unseen = {json.loads(l)["template"]
              for l in (written / "zeroshot.jsonl").read_text().splitlines()}
    assert unseen == set(ui_recorder.ZERO_SHOT) and not seen & unseen
    assert len(seen) == len(ui_recorder.TEMPLATES) - len(ui_recorder.ZERO_SHOT)


def test_loader_names_a_missing_split_a_bad_line_and_an_undecodable_video(written, tmp_path):
    with pytest.raises(DataError, match="test.jsonl does not exist"):
        Recordings(written, "test", 8, 64)
    (tmp_path / "train.jsonl").write_text('{"video": "a.mp4"}\n')
    with pytest.raises(DataError, match="train.jsonl:1: expected a JSON object"):
        Recordings(tmp_path, "train", 8, 64)
    (tmp_path / "a.mp4").write_bytes(b"not a video")
    (tmp_path / "train.jsonl").write_text('{"video": "a.mp4", "intent": "call bob"}\n')
    with pytest.raises(DataError, match="cannot decode video .*a.mp4"):
        Recordings(tmp_path, "train", 8, 64)[0]


# -- tokens and positions --------------------------------------------------------------------
def test_tubelet_tokens_are_two_frame_patches_in_time_row_column_order():
    video = np.random.default_rng(0).standard_normal((2, 6, 8, 12, 3)).astype(np.float32)
    module = TubeletEmbed(2, 4, 3, 12, dtype=jnp.float32, rngs=nnx.Rngs(0))
    tubelets = np.asarray(module.split(video))
    assert tubelets.shape == (2, 3 * 2 * 3, 2 * 4 * 4 * 3)
    t, h, w = 2, 1, 2
    token = (t * 2 + h) * 3 + w
    expected = video[:, 2 * t:2 * t + 2, 4 * h:4 * h + 4, 4 * w:4 * w + 4].reshape(2, -1)
    np.testing.assert_array_equal(tubelets[:, token], expected)
    assert module.embed(tubelets).shape == (2, 18, 12)


def test_3d_sincos_positions_give_each_axis_a_third_of_the_channels():
    pos = sincos_nd(96, (8, 4, 4)).reshape(8, 4, 4, 96)
    width, height, time = pos[..., :32], pos[..., 32:64], pos[..., 64:]
    np.testing.assert_array_equal(width[0, 0], width[5, 3])       # depends on w only
    np.testing.assert_array_equal(height[0, :, 0], height[7, :, 2])  # h only
    np.testing.assert_array_equal(time[:, 0, 0], time[:, 3, 1])     # t only
    assert not np.allclose(time[0, 0, 0], time[1, 0, 0])
    assert len(np.unique(pos.reshape(-1, 96), axis=0)) == 8 * 4 * 4


# -- masks -----------------------------------------------------------------------------------
def _draws(spec, n=64):
    masks, rng = TubeletMasks(spec), np.random.default_rng(0)
    return masks, [masks(rng) for _ in range(n)]


def _sets(draw, group):
    ctx = set(draw["context_idx"][group][draw["context_valid"][group]].tolist())
    tgt = set(draw["target_idx"][group, 0][draw["target_valid"][group, 0]].tolist())
    return ctx, tgt


def test_spatial_groups_mask_the_same_blocks_in_every_time_slice():
    grid = (8, 4, 4)
    masks, draws = _draws(TubeletMaskSpec(grid=grid, groups=("short", "long")))
    assert masks.num_groups == 2
    for draw in draws:
        for group in range(2):
            ctx, tgt = _sets(draw, group)
            assert not ctx & tgt and ctx | tgt == set(range(128)) and len(ctx) >= 1
            covered = np.zeros(128, bool)
            covered[list(tgt)] = True
            covered = covered.reshape(grid)
            assert (covered == covered[:1]).all()  # each block spans every frame


@pytest.mark.parametrize("scale,low,high", [(0.15, 0.1, 0.2), (0.7, 0.6, 0.8)])
def test_one_block_covers_its_spatial_scale(scale, low, high):
    spec = TubeletMaskSpec(grid=(2, 16, 16), short_blocks=1, short_scale=scale, groups=("short",))
    for draw in _draws(spec, 200)[1]:
        footprint = np.zeros((2, 16, 16), bool).reshape(-1)
        footprint[list(_sets(draw, 0)[1])] = True
        rows, cols = np.nonzero(footprint.reshape(2, 16, 16)[0])
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert height * width == len(rows)                # one rectangle
        assert low <= len(rows) / 256 <= high, (height, width)
        assert 0.75 - 0.3 <= height / width <= 1.5 + 0.5  # aspect 0.75-1.5 up to rounding


def test_temporal_masks_hide_six_whole_non_contiguous_slices():
    grid = (8, 4, 4)
    _, draws = _draws(TubeletMaskSpec(grid=grid, groups=("temporal",)), 300)
    seen = set()
    for draw in draws:
        ctx, tgt = _sets(draw, 0)
        slices = sorted({i // 16 for i in tgt})
        assert tgt == {s * 16 + k for s in slices for k in range(16)}  # whole slices
        assert len(slices) == 6 and not contiguous(np.array(slices))
        assert ctx == set(range(128)) - tgt
        seen.add(tuple(slices))
    assert len(seen) == 25  # every one of C(8, 6) = 28 choices but the 3 contiguous runs


def test_masks_refuse_settings_that_cannot_work():
    with pytest.raises(MaskConfigError, match="temporal_slices=8"):
        TubeletMasks(TubeletMaskSpec(grid=(8, 4, 4), temporal_slices=8))
    with pytest.raises(MaskConfigError, match="groups"):
        TubeletMasks(TubeletMaskSpec(grid=(8, 4, 4), groups=("short", "diagonal")))


def test_variant_refuses_widths_that_3d_positions_cannot_split():
    config = load_config(CONFIG + ":tiny")
    config.model.update(width=64, heads=2)
    with pytest.raises(ConfigError, match="divisible by 6"):
        UIJEPA(config)
    config = load_config(CONFIG + ":tiny")
    config.data.frames = 15
    with pytest.raises(ConfigError, match="multiple of model.tubelet_frames"):
        UIJEPA(config)


def test_pixel_baseline_tokens_are_pooled_frames_and_differences_per_slice():
    frames = np.zeros((1, 4, 16, 16, 3), np.uint8)
    frames[0, 1, :8] = 255  # the first slice's second frame: top half white
    out = pixel_and_difference_tokens({"frames": frames}, tubelet_frames=2)
    tokens = out["video_tokens"].reshape(1, 2, 2, 8, 8, 3)  # (N, slice, mean|diff, 8, 8, 3)
    np.testing.assert_allclose(tokens[0, 0, 0, :4], 0.5)     # mean of black and white
    np.testing.assert_allclose(tokens[0, 0, 1, :4], 1.0)     # |white - black|
    np.testing.assert_allclose(tokens[0, 0, :, 4:], 0.0)
    np.testing.assert_allclose(tokens[0, 1], 0.0)
    assert out["features"].shape == (1, 384)


# -- intent decoder --------------------------------------------------------------------------
def test_rouge_and_slot_scores_match_hand_computed_values():
    scores = intent.intent_scores(["turn on dark mode", "call bob"],
                                  ["turn dark mode on", "call alice"], ["dark mode", "bob"])
    # 1: unigrams all shared (1.0); bigrams 1 of 3 shared (1/3); LCS "turn dark mode" 3 of 4.
    # 2: unigrams 1 of 2 (0.5); bigrams none (0); LCS 1 of 2 (0.5).
    assert scores["rouge1"] == pytest.approx((1.0 + 0.5) / 2)
    assert scores["rouge2"] == pytest.approx((1 / 3 + 0.0) / 2)
    assert scores["rougeL"] == pytest.approx((0.75 + 0.5) / 2)
    assert scores["slot_acc"] == 0.5 and scores["exact"] == 0.0


def test_decoder_loss_counts_only_the_intent_tokens():
    vocab = intent.Vocabulary(["turn on wifi", "call bob"])
    tokens = vocab.encode(["call bob"], max_words=4)
    assert tokens.tolist() == [[intent.BOS, vocab.index["call"], vocab.index["bob"], intent.EOS,
                                intent.PAD, intent.PAD]]
    targets = jnp.asarray(tokens[:, 1:])
    logits = jax.random.normal(jax.random.key(0), (1, 5, len(vocab)))
    changed = logits.at[:, 3:].set(100.0)  # the positions whose targets are padding
    assert intent.word_loss(logits, targets) == intent.word_loss(changed, targets)
    assert intent.word_loss(logits.at[:, 0].set(0.0), targets) != intent.word_loss(logits, targets)
    decoder = intent._decoder(7, len(vocab), 5, dict(width=12, depth=1, heads=2))
    params = jax.jit(decoder.init)(jax.random.key(1))
    assert params["positions"].shape == (5, 12)  # positions for the text only
    video = jax.random.normal(jax.random.key(2), (1, 3, 7))
    apply = jax.jit(lambda p, v: decoder(p, v, jnp.asarray(tokens[:, :-1])))
    out = apply(params, video)
    assert out.shape == (1, 5, len(vocab))  # logits for text positions, none for the video
    assert not np.allclose(out, apply(params, video * 2))


def test_decoder_learns_to_state_the_intent_from_video_tokens():
    texts = ["turn on wifi", "call bob", "search for news", "set an alarm for 9 am"]
    labels = np.arange(64) % 4
    video = np.eye(4, dtype=np.float32)[labels][:, None].repeat(2, axis=1)  # (64, 2, 4)
    vocab = intent.Vocabulary(texts)
    block = dict(width=24, depth=1, heads=2, seed=0, lr=3e-3, steps=150, weight_decay=0.0,
                 batch_size=32)
    params, decoder = intent.fit(video, vocab.encode([texts[i] for i in labels], 6), len(vocab),
                                 block)
    generated = vocab.decode(intent.generate(decoder, params, video[:4], 6))
    assert generated == texts


# -- training --------------------------------------------------------------------------------
def tiny(**train_overrides):
    config = load_config(CONFIG + ":tiny")
    config.train.update(**train_overrides)
    config.logging.progress = False
    return config


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ui_jepa")
    return workdir, train.run(tiny(), workdir)


def test_tiny_trains_with_falling_loss_and_evaluates_every_row(tiny_run):
    workdir, summary = tiny_run
    curve = losses(workdir)
    assert len(curve) == 30 and np.mean(curve[-5:]) < 0.9 * np.mean(curve[:3]), curve
    rows = summary["eval"]
    assert set(rows) == {"pretrained", "random init", "raw pixels + frame difference"}
    for row in rows.values():
        for split in ("test", "zeroshot"):
            assert {f"intent_{split}_rougeL", f"intent_{split}_slot_acc"} <= set(row)
            assert 0.0 <= row[f"intent_{split}_rougeL"] <= 1.0
            assert len(row[f"intent_{split}_samples"]) == 5
    record = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss_short", "loss_long", "loss_temporal", "pred_std", "target_std"} <= set(record)


def test_tiny_resumes_bit_for_bit(tiny_run, tmp_path):
    assert_resumes_bit_for_bit(tiny(), tmp_path, tiny_run[0], stop_at=15)


def test_recorded_table_has_each_encoder_and_split_and_generated_intents(tiny_run):
    import sys
    sys.path.insert(0, str(ROOT / "scripts"))
    from record_ui_jepa import table

    workdir, summary = tiny_run
    lines = table(workdir)
    assert lines[0] == ("| encoder | split | ROUGE-1 | ROUGE-2 | ROUGE-L | slot acc | exact "
                        "| RankMe |")
    rows = [l for l in lines if l.startswith("| ") and "split" not in l and "---" not in l]
    assert len(rows) == 6  # 3 encoders x 2 splits
    pretrained = summary["eval"]["pretrained"]
    assert f"| {pretrained['intent_zeroshot_rougeL']:.3f} |" in rows[1]
    samples = [l for l in lines if l.lstrip().startswith("[")]
    assert len(samples) == 10 and samples[-1].lstrip().startswith("[zeroshot]")
