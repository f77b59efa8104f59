"""A-JEPA on audio: log-Mel features against Kaldi, audio readers on written WAV / FLAC files and
the unreadable-file error, folder layouts, the shipped tasks read back, the curriculum schedule,
time-frequency mask shapes, regularized masking at fine-tuning, the stream index the curriculum
reads, and `:tiny` training (falling loss, evaluation rows) + exact resume."""

from __future__ import annotations

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines import audio, speech_tasks
from data_pipelines.errors import DataError
from data_pipelines.masks.multiblock import MaskConfigError, MultiBlockSpec
from data_pipelines.masks.time_frequency import (CurriculumMasks, TimeFrequencySpec, linear_ramp,
                                                 time_frequency_blocks)
from data_pipelines.pipeline import train_dataset
from jepax import train, variants
from jepax.config import ConfigError, load_config
from jepax.variants import a_jepa
from tests.helpers import ROOT, assert_resumes_bit_for_bit, losses, run_main

sf = pytest.importorskip("soundfile")
pytestmark = pytest.mark.usefixtures("shared_compiles")  # one compile per program

CONFIG = str(ROOT / "experiments" / "a_jepa.py")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("audio_cache")


# The tests' shortening of :tiny, also given as command-line flags (the same compiled programs).
SHORTEN = {"data.norm": (-9.0, 6.0), "train.steps": 12, "train.checkpoint_every": 6,
           "train.log_every": 1, "logging.progress": False, "logging.tensorboard": False,
           "evals.downstream.probe_steps": 50, "evals.downstream.finetune_steps": 4,
           "evals.downstream.batch_size": 8}


def tiny_config(cache, **train_overrides):
    c = load_config(CONFIG + ":tiny")
    c.data.cache = str(cache)
    for key, value in SHORTEN.items():
        *sections, name = key.split(".")
        block = c
        for section in sections:
            block = block[section]
        block[name] = value
    c.train.update(**train_overrides)
    return c


def chirp(rate, seconds=1.0):
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t)).astype(np.float32)


# -- features ----------------------------------------------------------------------------------
def kaldi_reference(wave, rate, bins=128):
    knf = pytest.importorskip("kaldi_native_fbank")
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = rate
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = "hanning"
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = bins
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0
    opts.use_energy = False
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(rate, (wave - wave.mean()).tolist())
    fb.input_finished()
    return np.array([fb.get_frame(i) for i in range(fb.num_frames_ready)])


def test_fbank_matches_kaldi_on_a_real_recording_and_a_chirp():
    """AST's options (25 ms Hann, 10 ms hop, 128 bins, no dither, no energy) against the C++
    Kaldi port, on an Asterisk prompt resampled to 16 kHz and on a synthetic chirp."""
    recording = speech_tasks.ASTERISK_SOUNDS / "activated.wav"
    waves = [chirp(16000)]
    if recording.is_file():
        waves.append(audio.load_audio(recording, 16000))
    for wave in waves:
        ours = audio.fbank(wave, 16000)
        ref = kaldi_reference(wave, 16000)
        assert ours.shape == ref.shape == (1 + (len(wave) - 400) // 160, 128)
        np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


def test_ten_seconds_give_998_frames_padded_to_1024_as_ast():
    features = audio.fbank(np.zeros(160000, np.float32) + chirp(16000, 10.0), 16000)
    assert features.shape == (998, 128)
    padded, real = audio.fit_frames(features, 1024)
    assert padded.shape == (1024, 128) and real == 998 and not padded[998:].any()
    cut, real = audio.fit_frames(features, 128)
    assert real == 128 and np.array_equal(cut, features[:128])
    assert audio.fbank(np.zeros(399), 16000).shape == (0, 128)


# -- reading -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_written_files_read_back_resampled_to_mono(tmp_path, fmt):
    rate = 22050
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    stereo = np.stack([tone, tone], axis=1)
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, stereo, rate, format=fmt, subtype="PCM_16")
    wave = audio.load_audio(path, 16000)
    assert wave.dtype == np.float32 and wave.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1-Hz bins over one second
    np.testing.assert_allclose(np.abs(wave[2000:-2000]).max(), 0.5, atol=0.01)


def test_an_unreadable_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00 not audio at all")
    with pytest.raises(DataError, match="broken.wav could not be read as audio.*ffmpeg"):
        audio.load_audio(bad, 16000)
    folder = tmp_path / "clips" / "dog"
    folder.mkdir(parents=True)
    (folder / "x.wav").write_bytes(b"nope")
    c = tiny_config(tmp_path)
    c.data.path = str(tmp_path / "clips")
    source = speech_tasks.audio_source(c.data, "folder_train" if audio.stable_split(
        "dog/x.wav", 0.2) == "train" else "folder_test")
    with pytest.raises(DataError, match="x.wav could not be read"):
        source[0]


def test_features_are_kept_in_memory_up_to_the_configured_size(tmp_path):
    (tmp_path / "a").mkdir()
    for i in range(3):
        sf.write(tmp_path / "a" / f"{i}.wav", chirp(16000, 0.5), 16000)
    c = tiny_config(tmp_path)
    c.data.frames = 2**20 // (c.data.mel_bins * 4)  # 1 MiB of features per clip
    c.data.feature_cache_mb = 2  # room for two clips
    clips = [audio.Clip(tmp_path / "a" / f"{i}.wav", "x", "train") for i in range(3)]
    source = audio.clip_source(clips, "train", c.data)
    first = [source[i]["fbank"] for i in range(3)]
    for clip in clips:
        clip.path.unlink()
    for i in range(2):  # served from memory: the files are gone
        assert np.array_equal(source[i]["fbank"], first[i])
    with pytest.raises(DataError, match="2.wav could not be read"):
        source[2]


def test_folder_with_subfolders_or_labels_csv(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / "a" / label).mkdir(parents=True)
        for i in range(10):
            sf.write(tmp_path / "a" / label / f"{i}.wav", chirp(8000, 0.3), 8000)
    clips = audio.list_folder(tmp_path / "a", test_fraction=0.3)
    assert sorted({c.label for c in clips}) == ["cat", "dog"] and len(clips) == 20
    assert {c.split for c in clips} == {"train", "test"}
    assert clips == audio.list_folder(tmp_path / "a", test_fraction=0.3)  # stable split
    with (tmp_path / "a" / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["file", "label", "split"], ["cat/0.wav", "x", "test"],
                                 ["dog/1.wav", "y", "train"]])
    clips = audio.list_folder(tmp_path / "a")
    assert [(c.label, c.split) for c in clips] == [("x", "test"), ("y", "train")]
    (tmp_path / "a" / "labels.csv").write_text("name,class\nq.wav,1\n")
    with pytest.raises(DataError, match="file,label"):
        audio.list_folder(tmp_path / "a")
    with pytest.raises(DataError, match="not a folder"):
        audio.list_folder(tmp_path / "missing")


def test_shipped_tasks_are_wav_files_read_back_with_heldout_voices(cache):
    c = tiny_config(cache)
    folders = speech_tasks.task_folders(c.data)
    digits = audio.list_folder(folders["digits"])
    assert all(c.path.suffix == ".wav" for c in digits) and len(digits) == 2 * 5 * 10
    voices = lambda split: {c.path.parent.name for c in digits if c.split == split}
    assert voices("test") == {"en-us+f4", "en-gb+f4"} and not voices("test") & voices("train")
    assert sorted({c.label for c in digits}) == sorted(speech_tasks.DIGITS)
    example = speech_tasks.audio_source(c.data, "digits_test")[0]
    assert example["fbank"].shape == (64, 128) and 0 < example["frames"] <= 64
    phrases = audio.list_folder(folders["phrases"])
    assert len({c.label for c in phrases}) == 20 and len(phrases) == 20 * 3
    union = speech_tasks.audio_source(c.data, "train")
    assert len(union) == 80 + 40
    with pytest.raises(DataError, match="not part of this data"):
        speech_tasks.audio_source(c.data, "folder_train")



def test_own_folder_of_wavs_with_labels_trains_and_evaluates_with_one_flag(tmp_path):
    """The README's command: `--config.data.path=<folder>` is the one flag between the shipped
    tasks and the user's own labelled files (here 8-kHz WAV and 22-kHz FLAC with a labels.csv),
    run through the real command line; the other flags only shorten the run (fine-tuning, the
    same code for every task, is left to the :tiny run below to save CI time)."""
    rng = np.random.default_rng(0)
    clips = tmp_path / "my_clips"
    clips.mkdir()
    rows = [["file", "label", "split"]]
    for i in range(20):
        for label, sweep in (("rising", 1.0), ("falling", -1.0)):
            rate, ext = (8000, "wav") if i % 2 else (22050, "flac")
            t = np.arange(int(rate * rng.uniform(0.4, 0.7))) / rate
            wave = 0.3 * np.sin(2 * np.pi * (900 + sweep * 600 * t) * t)
            wave += 0.02 * rng.standard_normal(len(t))
            sf.write(clips / f"{label}{i}.{ext}", wave.astype(np.float32), rate)
            rows.append([f"{label}{i}.{ext}", label, "test" if i >= 14 else "train"])
    with (clips / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    shorten = [f"--config.{key}={value}" for key, value in SHORTEN.items()]
    shorten.append("--config.evals.downstream.finetune=False")
    result = run_main([f"--config={CONFIG}:tiny", f"--workdir={tmp_path / 'run'}",
                       f"--config.data.path={clips}", *shorten])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout[result.stdout.index("{"):])["eval"]
    for name in ("pretrained", "random init"):
        assert "folder_probe_acc" in rows[name]
        assert not any(k.startswith(("digits", "phrases")) for k in rows[name])
    assert rows["MFCC + logistic regression"]["folder_probe_acc"] > 0.8  # 2 classes, 12 test clips
    assert len(losses(tmp_path / "run")) == SHORTEN["train.steps"]


# -- masks -------------------------------------------------------------------------------------
def test_curriculum_schedule_values_at_given_steps():
    assert [linear_ramp(s, 1000, (0.0, 0.5)) for s in (0, 250, 499, 500, 900)] == \
        [0.0, 0.5, 0.998, 1.0, 1.0]
    assert [linear_ramp(s, 1000, (0.2, 0.6)) for s in (0, 200, 300, 600)] == [0.0, 0.0, 0.25, 1.0]
    assert [linear_ramp(s, 100, (0.3, 0.3)) for s in (29, 30)] == [0.0, 1.0]
    grid = (8, 8)
    make = lambda kind: CurriculumMasks(MultiBlockSpec(grid, min_context=4),
                                        TimeFrequencySpec(grid), kind=kind,
                                        curriculum=(0.0, 0.5), total_steps=1000)
    assert make("curriculum").probability(250) == 0.5
    assert make("block").probability(999) == 0.0 and make("time_frequency").probability(0) == 1.0
    masks, rng = make("curriculum"), np.random.default_rng(0)
    share = lambda step: np.mean([masks(rng, step)["time_frequency"] for _ in range(400)])
    assert share(0) == 0.0 and 0.4 < share(250) < 0.6 and share(600) == 1.0
    with pytest.raises(MaskConfigError, match="curriculum"):
        CurriculumMasks(MultiBlockSpec(grid), TimeFrequencySpec(grid), kind="curriculum",
                        curriculum=(0.6, 0.2), total_steps=10)


def test_time_strips_and_frequency_bands_within_their_sizes():
    spec = TimeFrequencySpec((16, 8), time_strips=2, strip_width=(1, 3), freq_bands=2,
                             band_height=(1, 2), min_context=4)
    rng = np.random.default_rng(1)
    widths, heights = set(), set()
    for _ in range(300):
        targets, context = time_frequency_blocks(spec, rng)
        assert len(targets) == 4
        for strip in targets[:2]:
            rows = np.flatnonzero(strip.any(1))
            assert strip[rows].all() and not strip[~strip.any(1)].any()  # every frequency
            assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
            widths.add(len(rows))
        for band in targets[2:]:
            cols = np.flatnonzero(band.any(0))
            assert band[:, cols].all() and np.array_equal(cols, np.arange(cols[0], cols[-1] + 1))
            heights.add(len(cols))
        assert np.array_equal(context, ~np.logical_or.reduce(targets)) and context.sum() >= 4
    assert widths == {1, 2, 3} and heights == {1, 2}
    with pytest.raises(MaskConfigError, match="band_height"):
        TimeFrequencySpec((16, 8), band_height=(1, 9)).validate()


def test_both_kinds_pack_into_one_shape_with_padding_rows_invalid():
    grid = (8, 8)
    masks = CurriculumMasks(MultiBlockSpec(grid, num_targets=3, min_context=4),
                            TimeFrequencySpec(grid, time_strips=2, freq_bands=2),
                            kind="curriculum", curriculum=(0.0, 0.5), total_steps=100)
    assert masks.num_targets == 4 and masks.target_capacity >= 16
    rng = np.random.default_rng(0)
    for step in (0, 100):
        out = masks(rng, step)
        assert out["target_idx"].shape == (4, masks.target_capacity)
        assert out["context_idx"].shape == (masks.context_capacity,)
        tf = bool(out["time_frequency"])
        assert tf == (step == 100)
        assert out["target_valid"][3].any() == tf  # random blocks: the 4th row is padding
        ctx = set(out["context_idx"][out["context_valid"]])
        for idx, valid in zip(out["target_idx"], out["target_valid"]):
            assert not ctx & set(idx[valid])


def test_the_curriculum_reads_the_examples_training_step_from_the_stream(cache):
    """The example transform gets the global stream position; its step is position // batch,
    so the share of time-frequency masks follows the schedule, also after a restore."""
    c = tiny_config(cache, batch_size=8)
    c.train.steps = 20
    c.mask.curriculum = (0.25, 0.5)  # steps 0-4 random blocks, 10+ time-frequency
    v = variants.build(c)
    ds = train_dataset(v.train_source(), seed=0, global_batch=8, example_fn=v.example_fn())
    it = iter(ds)
    shares = [next(it)["time_frequency"].mean() for _ in range(12)]
    assert shares[:5] == [0.0] * 5 and shares[10:] == [1.0, 1.0]
    it = iter(ds)
    for _ in range(3):
        next(it)
    state = it.get_state()
    after = next(it)
    again = iter(ds)
    again.set_state(state)
    assert np.array_equal(next(again)["target_idx"], after["target_idx"])


# -- fine-tuning -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_variant(cache):
    c = tiny_config(cache)
    c.model.update(width=32, depth=1, heads=2, pred_width=16)
    return c


@pytest.mark.parametrize("mode", ["regularized", "drop", "zero", "none"])
def test_regularized_masking_at_fine_tuning(small_variant, mode):
    """With a key, the masked patches' content no longer reaches the features (all three masking
    modes); 'regularized' puts the learned mask embedding in their place; without a key
    (evaluation) or with 'none', nothing is masked."""
    c = small_variant.copy_and_resolve_references()
    c.fine_tune.masking = mode
    v = variants.build(c)
    params = v.fine_tune_init(v.init_params(jax.random.key(0))["encoder"], jax.random.key(1))
    x = {"fbank": jax.random.normal(jax.random.key(2), (3, 64, 128)) * 3 - 9}
    key = jax.random.key(3)
    masked = a_jepa.time_frequency_token_mask(key, 3, v.grid, 1, (1, 1), 1, (1, 1))
    assert masked.shape == (3, 32)
    grids = np.asarray(masked).reshape(3, 4, 8)
    for g in grids:  # one time strip (all frequencies) + one band (all time)
        assert g.all(1).sum() == 1 and g.all(0).sum() == 1 and g.sum() == 8 + 4 - 1
    pixels = jnp.repeat(jnp.repeat(masked.reshape(3, 4, 8), 16, 1), 16, 2)
    noisy = {"fbank": jnp.where(pixels, x["fbank"] + 5.0, x["fbank"])}
    features = v.fine_tune_features
    assert features(params, x, key).shape == (3, 32)
    changed = not np.allclose(features(params, x, key), features(params, noisy, key), atol=1e-5)
    assert changed == (mode == "none")
    assert not np.allclose(features(params, x, None), features(params, noisy, None), atol=1e-5)
    np.testing.assert_allclose(features(params, x, None), v.outputs(params["encoder"], x)["features"],
                               atol=1e-6)
    other = {**params, "mask_embedding": params["mask_embedding"] + 1.0}
    uses_embedding = not np.allclose(features(params, x, key), features(other, x, key))
    assert uses_embedding == (mode == "regularized")


def test_fine_tune_masking_settings_are_checked(small_variant):
    c = small_variant.copy_and_resolve_references()
    c.fine_tune.masking = "dropout"
    with pytest.raises(ConfigError, match="fine_tune.masking"):
        variants.build(c)
    c.fine_tune.update(masking="regularized", freq_bands=8, band_height=(1, 1))
    with pytest.raises(ConfigError, match="some of the input stays"):
        variants.build(c)


def test_fine_tuning_starts_from_the_linear_probe(small_variant):
    """head='linear_probe' (LP-FT): the head is the fitted probe on the encoder's frozen
    features, so with nothing to learn (lr 0, no input masking) fine-tuning predicts exactly as
    the probe; MAE's fresh head ('layernorm') starts at chance. The first would have caught a
    fine-tune scoring far below the probe of its own starting encoder."""
    from jepax.evaluators import downstream
    from jepax.evaluators.linear_probe import fit_probe, probe_logits
    c = small_variant.copy_and_resolve_references()
    c.fine_tune.masking = "none"
    v = variants.build(c)
    encoder = jax.tree.map(np.asarray, v.init_params(jax.random.key(0))["encoder"])
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, 96)
    fbank = rng.normal(size=(96, 64, 128)).astype(np.float32) * 3 - 9
    fbank[:, :, :32] += 4.0 * label[:, None, None]  # the class is in the low bands' level
    data = {"fbank": fbank, "label": label}
    features = np.asarray(v.outputs(encoder, data)["features"])
    train = {**{k: a[:64] for k, a in data.items()}, "features": features[:64]}
    test = {**{k: a[64:] for k, a in data.items()}, "features": features[64:]}
    probe = fit_probe(train["features"], train["label"], steps=50, num_classes=4)
    probe_acc = np.mean(np.argmax(np.asarray(probe_logits(probe, test["features"])), 1) == test["label"])
    assert probe_acc > 0.5  # chance 0.25
    block = dict(downstream.Downstream.DEFAULTS, finetune_steps=2, batch_size=16, lr=1e-30,
                 warmup_steps=0)
    assert downstream.fine_tune(v, encoder, train, test, block, probe) == probe_acc
    fresh = downstream.fine_tune(v, encoder, train, test, {**block, "head": "layernorm"})
    assert fresh < probe_acc


class VariantData:
    """The evaluation data as the runner sees it (jepax/evaluators/base.py EvalData)."""

    def __init__(self, variant):
        self.variant = variant

    def size(self, split):
        return len(self.variant.eval_source(split))

    def keys(self, split):
        return set(self.variant.eval_source(split)[0])


def test_downstream_keeps_the_tasks_the_data_has(cache, tmp_path):
    """The default task list names the shipped tasks and 'folder': without data.path the
    shipped two are evaluated, with it only the user's folder; none at all is an error."""
    from jepax import evaluators
    c = tiny_config(cache)
    block = lambda tasks: evaluators.build("downstream", {**c.evals.downstream, "tasks": tasks})
    shipped = block(("digits", "phrases", "folder"))
    shipped.check_data(VariantData(variants.build(c)))
    assert shipped.tasks == ("digits", "phrases") and "folder_probe_acc" not in shipped.columns
    for label in ("yes", "no"):
        (tmp_path / label).mkdir()
        for i in range(6):
            sf.write(tmp_path / label / f"{i}.wav", chirp(16000, 0.5 + 0.1 * i), 16000)
    c.data.path = str(tmp_path)
    c.data.test_fraction = 0.5
    own = block(("digits", "phrases", "folder"))
    own.check_data(VariantData(variants.build(c)))
    assert own.tasks == ("folder",) and own.columns == ("folder_probe_acc", "folder_finetune_acc")
    with pytest.raises(DataError, match="none of the downstream tasks"):
        block(("digits",)).check_data(VariantData(variants.build(c)))


# -- training ----------------------------------------------------------------------------------
def test_tiny_trains_with_falling_loss_evaluates_and_resumes_exactly(cache, tmp_path):
    full = tiny_config(cache)
    full.evals.downstream.tasks = ("digits", "folder")  # phrases: the same code, CI time saved
    summary = train.run(full, tmp_path / "full")
    curve = losses(tmp_path / "full")
    assert len(curve) == 12 and np.mean(curve[-3:]) < 0.8 * np.mean(curve[:3]), curve
    rows = summary["eval"]
    assert set(rows) == {"pretrained", "random init", "MFCC + logistic regression"}
    for name in ("pretrained", "random init"):
        assert {"digits_probe_acc", "digits_finetune_acc", "rankme"} <= set(rows[name])
    assert "digits_probe_acc" in rows["MFCC + logistic regression"]
    assert "digits_finetune_acc" not in rows["MFCC + logistic regression"]
    assert not any(k.startswith("folder") for k in rows["pretrained"])  # no data.path: skipped
    assert rows["MFCC + logistic regression"]["digits_probe_acc"] > 0.3  # 10 classes: chance 0.1
    assert_resumes_bit_for_bit(tiny_config(cache), tmp_path / "halves", tmp_path / "full",
                               stop_at=6)
