"""S-JEPA on EEG: model shapes and parity with braindecode, channel-embedding init, spatial block
masks, MNE readers on written EDF / FIF files, the leadfield simulation's structure, the
downstream cross-validation, and `:tiny` training + exact resume."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines import eeg, eeg_simulation
from data_pipelines.errors import DataError
from data_pipelines.masks.spatial_block import SpatialBlockMasks, SpatialBlockSpec
from jepax import train
from jepax.config import load_config
from jepax.evaluators import eeg_downstream
from jepax.models import s_jepa as model
from tests import braindecode_reference
from tests.helpers import ROOT, assert_resumes_bit_for_bit, losses

mne = pytest.importorskip("mne")
CONFIG = str(ROOT / "experiments" / "s_jepa.py")


def standard_positions(names):
    """Head-coordinate positions (as MNE stores them in a recording's info) of MNE's
    standard_1005 electrodes."""
    info = mne.create_info(list(names), 128.0, "eeg")
    info.set_montage("standard_1005", verbose="error")
    return np.array([ch["loc"][:3] for ch in info["chs"]])


# -- model -------------------------------------------------------------------------------------
@pytest.mark.parametrize("samples, tokens", [(2048, 15), (536, 4), (153, 1), (152, 1), (151, 0)])
def test_local_encoder_output_lengths(samples, tokens):
    assert model.tokens_per_channel(samples) == tokens
    assert model.receptive_field() == 152
    if tokens:
        conv = jax.eval_shape(model.init_conv, jax.random.key(0))
        out = jax.eval_shape(model.local_features, conv, jnp.zeros((2, 3, samples)))
        assert out.shape == (2, 3 * tokens, 64)


def test_channel_embedding_init_of_a_known_electrode():
    # C3 in MNE's standard_1005 montage, the largest |coordinate| of the montage 0.114892 (Oz)
    positions = np.array([[-0.0653581, -0.0116317, 0.064358], [0.0001076, -0.114892, 0.014657]])
    emb = model.channel_embedding_init(positions)
    assert emb.shape == (2, 30)
    x = -0.0653581 / (10 * 0.114892)
    freqs = [math.exp(2 * math.pi * f) for f in (1.0, 0.8, 0.6, 0.4, 0.2)]
    expected_x = [v for f in freqs for v in (math.sin(x * f), math.cos(x * f))]
    np.testing.assert_allclose(emb[0, :10], expected_x, rtol=1e-6, atol=1e-7)
    z = 0.064358 / (10 * 0.114892)
    assert emb[0, 20] == pytest.approx(math.sin(z * freqs[0]), abs=1e-7)
    assert emb[0, 29] == pytest.approx(math.cos(z * freqs[4]), abs=1e-7)


def test_parameter_count_at_62_channels_is_the_papers():
    positions = np.random.default_rng(0).normal(size=(62, 3))
    params = jax.eval_shape(lambda k: {
        "encoder": model.init_encoder(k, positions),
        "predictor": model.init_stack(k, 4, 64, 2048, decoder=True)}, jax.random.key(0))
    count = {k: model.count_params(v) for k, v in params["encoder"].items()}
    assert count == {"conv": 13840, "channel_embedding": 1860, "transformer": 2249344}
    assert model.count_params(params["predictor"]) == 1191808
    assert model.count_params(params) == 3456852  # "about 3.46 M"


def test_parity_with_braindecode_parameters_and_outputs():
    bd = braindecode_reference.signal_jepa_module()
    import torch

    torch.manual_seed(0)
    chs = bd._PRETRAIN_CHS_INFO
    reference = bd.SignalJEPA(chs_info=chs, n_times=536, sfreq=128).eval()
    params = model.from_torch_state_dict(reference.state_dict())
    per_module = {"conv": "feature_encoder", "channel_embedding": "pos_encoder",
                  "transformer": "transformer.encoder"}
    for ours, theirs in per_module.items():
        n = sum(p.numel() for name, p in reference.named_parameters() if name.startswith(theirs))
        assert model.count_params(params["encoder"][ours]) == n, ours
    n_decoder = sum(p.numel() for name, p in reference.named_parameters()
                    if name.startswith("transformer.decoder"))
    assert model.count_params(params["predictor"]) == n_decoder
    fresh = model.init_encoder(jax.random.key(0), np.array([c["loc"] for c in chs]))
    assert jax.tree.map(jnp.shape, fresh) == jax.tree.map(jnp.shape, params["encoder"])
    np.testing.assert_allclose(fresh["channel_embedding"],
                               reference.pos_encoder.pos_encoder_spat.weight.detach().numpy(),
                               atol=2e-5)
    x = np.random.default_rng(0).normal(0, 20, (2, 62, 536)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    out = model.contextual_features(params["encoder"], jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out), expected, atol=2e-5, rtol=1e-4)

    heads = {"contextual": bd.SignalJEPA_Contextual, "post_local": bd.SignalJEPA_PostLocal,
             "pre_local": bd.SignalJEPA_PreLocal}
    for name, cls in heads.items():
        kw = {"chs_info": chs} if name == "contextual" else {}
        net = cls(n_chans=62, n_times=536, sfreq=128, n_outputs=3, **kw).eval()
        state = net.state_dict()
        encoder = ({"conv": model.from_torch_state_dict(
            {**reference.state_dict(), **state})["encoder"]["conv"]}
            if name != "contextual" else model.from_torch_state_dict(state)["encoder"])
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        logits = model.head_logits(name, encoder, model.head_from_torch_state_dict(state),
                                   jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(logits), expected, atol=2e-5, rtol=1e-4)


# -- masks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [0.4, 0.6, 0.8])
def test_spatial_block_mask_invariants(radius):
    names = eeg_simulation.head_model()[0]
    positions = standard_positions(names)
    masks = SpatialBlockMasks(positions, SpatialBlockSpec(radius=radius))
    unit = positions / np.linalg.norm(positions, axis=1).mean()
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = masks(rng)
        assert m["context_channels"].shape == (8, masks.context_capacity)
        assert m["target_channels"].shape == (8, 2, 8)
        for k in range(8):
            ctx = set(m["context_channels"][k][m["context_valid"][k]])
            targets = [set(t[v]) for t, v in zip(m["target_channels"][k], m["target_valid"][k])]
            hidden = set(range(len(names))) - ctx
            # the hidden block is a ball around one electrode: the centre is an electrode
            # within radius of every hidden one, and every electrode that close is hidden
            centres = [c for c in range(len(names))
                       if all(np.linalg.norm(unit[c] - unit[h]) < radius for h in hidden)
                       and hidden == {j for j in range(len(names))
                                      if np.linalg.norm(unit[c] - unit[j]) < radius}]
            assert centres, (k, hidden)
            for t in targets:
                assert t and t <= hidden and not t & ctx
                assert len(t) == min(8, len(hidden))
    # "all time tokens of a selected channel together": channel -> token indices
    from jepax.variants.s_jepa import _token_index

    idx, valid = _token_index(jnp.asarray(m["context_channels"]), jnp.asarray(m["context_valid"]), 4)
    tokens = np.asarray(idx)[np.asarray(valid)]
    channels = set(m["context_channels"][m["context_valid"]])
    assert set(tokens) == {c * 4 + t for c in channels for t in range(4)}


def test_spatial_block_radius_that_covers_the_head_is_refused():
    positions = standard_positions(["C3", "Cz", "C4"])
    with pytest.raises(ValueError, match="covers every electrode"):
        SpatialBlockMasks(positions, SpatialBlockSpec(radius=5.0, contexts=2))


# -- readers -----------------------------------------------------------------------------------
NAMES = ["C3", "Cz", "C4", "Pz"]


def write_sines(path, montage=None):
    """Sinusoids of known amplitude (10 and 20 Hz, inside the pass band) at 256 Hz."""
    t = np.arange(int(20 * 256)) / 256
    data = np.stack([20e-6 * (i + 1) * np.sin(2 * np.pi * 10 * t) + 5e-6 * np.sin(2 * np.pi * 20 * t)
                     for i in range(len(NAMES))])
    raw = mne.io.RawArray(data, mne.create_info(NAMES, 256.0, "eeg"), verbose="error")
    raw.set_annotations(mne.Annotations([5.0], [0.0], ["left_hand"]))
    if montage:
        raw.set_montage(montage)
    if path.suffix == ".edf":
        mne.export.export_raw(path, raw, fmt="edf", verbose="error")
    else:
        raw.save(path, verbose="error")
    t128 = np.arange(20 * 128) / 128
    return np.stack([20 * (i + 1) * np.sin(2 * np.pi * 10 * t128) + 5 * np.sin(2 * np.pi * 20 * t128)
                     for i in range(len(NAMES))])


@pytest.mark.parametrize("suffix", [".edf", ".fif"])
def test_edf_and_fif_write_read_round_trip(tmp_path, suffix):
    path = tmp_path / f"rec{suffix}"
    expected = write_sines(path, montage="standard_1005" if suffix == ".fif" else None)
    montage = "standard_1005" if suffix == ".edf" else ""  # FIF keeps its own positions
    rec = eeg.read_recording(path, montage)
    assert rec.channels == NAMES
    assert rec.data.dtype == np.float32 and rec.data.shape == (4, 20 * 128)  # 128 Hz
    middle = slice(2 * 128, 18 * 128)  # away from the filter's edges
    np.testing.assert_allclose(rec.data[:, middle], expected[:, middle], atol=1.0)  # uV
    np.testing.assert_allclose(rec.positions, standard_positions(NAMES), atol=1e-6)
    assert rec.events == [(5 * 128, "left_hand")]


def test_channels_without_positions_are_named_in_the_error(tmp_path):
    path = tmp_path / "rec.edf"
    write_sines(path)
    with pytest.raises(DataError, match=r"\['C3', 'Cz', 'C4', 'Pz'\].*data.montage=standard_1005"):
        eeg.read_recording(path, "")


# -- simulation --------------------------------------------------------------------------------
def test_left_hand_imagery_desynchronises_right_motor_cortex():
    from scipy.signal import welch

    channels, gain, regions = eeg_simulation.head_model()
    assert gain.shape == (61, 76) and len(channels) == 61
    rng = np.random.default_rng(0)
    params = {**eeg_simulation.subject_parameters(rng), "erd": 0.5}
    scalp, events = eeg_simulation.simulate_run(rng, params, 300.0, "mi", regions, gain, 40)
    c3, c4 = channels.index("C3"), channels.index("C4")
    sfreq = eeg_simulation.NATIVE_SFREQ
    ratio = {label: [] for label in eeg_simulation.MI_EVENTS}
    for onset, label in events:
        start = int((onset + 0.5) * sfreq)
        f, p = welch(scalp[[c3, c4], start:start + int(3 * sfreq)], fs=sfreq, nperseg=256)
        band = (f >= params["mu"] - 2) & (f <= params["mu"] + 2)
        ratio[label].append(np.log(p[1, band].mean() / p[0, band].mean()))
    left, right = np.mean(ratio["left_hand"]), np.mean(ratio["right_hand"])
    assert left < right - 0.3, (left, right)  # C4 mu power drops relative to C3


# -- downstream --------------------------------------------------------------------------------
def test_within_subject_folds_never_mix_subjects_or_share_test_epochs():
    subjects = np.repeat([0, 1], [20, 30])
    labels = np.tile([0, 1], 25)
    splits = eeg_downstream.folds(subjects, labels, 5, seed=0)
    assert len(splits.train) == 10
    for m, s in enumerate(splits.subjects):
        tr, te = splits.train[m][splits.train_valid[m]], splits.test[m][splits.test_valid[m]]
        assert set(subjects[tr]) == set(subjects[te]) == {s} and not set(tr) & set(te)
    tested = np.concatenate([splits.test[m][splits.test_valid[m]] for m in range(10)])
    assert sorted(tested) == list(range(50))


def test_downstream_probe_and_classical_rows_learn_a_separable_task():
    """Class 1 carries a 10 Hz wave on three of six channels: the post-local head on a random
    encoder (a row with params) and CSP + LDA (a row without) both separate it."""
    from jepax import evaluators
    from jepax.evaluators.base import Row

    rng = np.random.default_rng(0)
    labels, subjects = np.tile([0, 1], 40), np.repeat([0, 1], 40)
    x = rng.normal(0, 1, (80, 6, 153))
    x[labels == 1, :3] += 3 * np.sin(2 * np.pi * 10 * np.arange(153) / 128)
    data = {"eeg": x.astype(np.float32), "label": labels.astype(np.int32), "subject": subjects}
    block = evaluators.block("eeg_downstream", tasks=("t",), metrics=("accuracy",),
                             classical=("csp_lda",), heads=("post_local",), modes=("probe",),
                             folds=2, probe_steps=50)
    evaluator = eeg_downstream.EEGDownstream("downstream", block)
    encoder = model.init_encoder(jax.random.key(0), standard_positions(NAMES + ["Fz", "Oz"]))
    scores = evaluator.evaluate(Row("pretrained", lambda split, n: data, params=encoder))
    assert set(scores) == {"t_post_local_probe"} and scores["t_post_local_probe"] > 0.9, scores
    scores = evaluator.evaluate(Row("classical", lambda split, n: data))
    assert set(scores) == {"t_classical"} and scores["t_classical"] > 0.9, scores


def test_probe_is_fit_to_convergence_and_recovers_a_planted_linear_signal():
    """The label is the sign of a random direction in one channel's first token: the head
    (spatial filter + linear) can represent it exactly, so a probe fit to convergence classifies
    held-out trials well (a few minibatch epochs of AdamW, the earlier probe, reached ~0.72)."""
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(400, 6, 2, 8)).astype(np.float32)
    labels = (tokens[:, 1, 0] @ rng.normal(size=8) > 0).astype(np.int32)
    splits = eeg_downstream.folds(np.zeros(400, int), labels, 2, seed=0)
    heads = jax.vmap(lambda k: model.init_head(k, "post_local", 6, 2, 2, 4, dim=8))(
        jax.random.split(jax.random.key(0), 2))
    feats = jnp.asarray(tokens)
    logits = eeg_downstream.fit_probe(lambda p, idx, key: model.filtered_logits(p, feats[idx]),
                                      heads, jnp.asarray(labels), splits, steps=100,
                                      weight_decay=1e-2)
    assert splits.score(np.asarray(logits), labels, "accuracy") > 0.85


# -- training ----------------------------------------------------------------------------------
def tiny_config(tmp_path, **train_overrides):
    c = load_config(CONFIG + ":tiny")
    c.data.cache = str(tmp_path.parent / "eeg_cache")
    c.model.update(depth=1, ff=64, target_layers=1)  # smaller graph: faster compiles
    c.mask.update(contexts=1)
    c.train.update(steps=12, batch_size=8, checkpoint_every=6, log_every=1, **train_overrides)
    c.eval.evaluators = ()
    c.logging.update(progress=False, tensorboard=False)
    return c


def test_tiny_trains_with_falling_loss_and_resumes_exactly(tmp_path):
    full = tiny_config(tmp_path)
    train.run(full, tmp_path / "full")
    curve = losses(tmp_path / "full")
    assert len(curve) == 12 and np.mean(curve[-3:]) < 0.7 * np.mean(curve[:3]), curve
    assert_resumes_bit_for_bit(tiny_config(tmp_path), tmp_path / "halves", tmp_path / "full",
                               stop_at=6)


# -- published weights --------------------------------------------------------------------------
def test_braindecode_checkpoint_file_converts_to_the_same_encoder_outputs(tmp_path):
    import torch

    from jepax.convert import ConvertError, convert_file
    from jepax.variants.s_jepa import SJEPA

    c = tiny_config(tmp_path)
    c.model.update(depth=1, ff=2048, pred_depth=1)  # braindecode's fixed feed-forward size
    variant = SJEPA(c)
    bd = braindecode_reference.signal_jepa_module()
    chs = [{"ch_name": n, "loc": list(p)} for n, p in zip(variant.channels, variant.positions)]
    torch.manual_seed(0)
    reference = bd.SignalJEPA(chs_info=chs, n_times=c.data.window, sfreq=128,
                              transformer__num_encoder_layers=1,
                              transformer__num_decoder_layers=1).eval()
    path = tmp_path / "signal_jepa.pth"
    torch.save(reference.state_dict(), path)
    converted = convert_file(path, variant)
    x = np.random.default_rng(0).normal(0, 20, (2, len(chs), c.data.window)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    for encoder in (converted["params"]["encoder"], converted["target"]):
        np.testing.assert_allclose(np.asarray(model.contextual_features(encoder, jnp.asarray(x))),
                                   expected, atol=2e-5, rtol=1e-4)
    deeper = bd.SignalJEPA(chs_info=chs, n_times=c.data.window, sfreq=128,
                           transformer__num_encoder_layers=2, transformer__num_decoder_layers=1)
    torch.save(deeper.state_dict(), path)
    with pytest.raises(ConvertError, match=r"encoder\['transformer'\].*in the file, none here"):
        convert_file(path, variant)
    torch.save({**reference.state_dict(), "classifier.weight": torch.zeros(2, 3)}, path)
    with pytest.raises(ConvertError, match="unexpected classifier.weight"):
        convert_file(path, variant)
