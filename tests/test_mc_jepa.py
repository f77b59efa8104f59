"""MC-JEPA: the flow decoder's warp and cost volume, the flow file formats and colour wheel,
the real-video, synthetic-ground-truth and stereo loaders, VICReg's terms, every loss weight's
off switch, and `:tiny` training (falling loss, flow EPE against Farneback, exact resume)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.errors import DataError
from data_pipelines.flow_io import (flow_to_colour, read_flo, read_kitti_flow, save_flow_png,
                                    write_flo, write_kitti_flow)
from data_pipelines.video import (SyntheticFlowPairs, read_video, shipped_clips,
                                  stereo_motorcycle)
from jepax import train
from jepax.config import ConfigError, load_config
from jepax.metrics import read_metrics
from jepax.models import flow as flow_model
from jepax.variants.mc_jepa import FLOW_TERMS, MCJEPA, variance_covariance, vicreg_terms
from tests.helpers import ROOT, assert_resumes_bit_for_bit, compilation_cache, losses

CONFIG = str(ROOT / "experiments" / "mc_jepa.py")
warp = jax.jit(flow_model.warp)  # one compile per shape instead of one per primitive


# -- the decoder's building blocks -------------------------------------------------------------
def test_warp_with_a_constant_integer_flow_reproduces_the_shifted_image():
    x = np.random.default_rng(0).normal(size=(2, 9, 11, 3)).astype(np.float32)
    dx, dy = 2, -1
    flow = jnp.broadcast_to(jnp.array([dx, dy], jnp.float32), (2, 9, 11, 2))
    warped, inside = warp(jnp.asarray(x), flow)
    expected = np.zeros_like(x)
    expected[:, 1:, :-2] = x[:, :-1, 2:]   # out(y, x) = in(y + dy, x + dx)
    np.testing.assert_allclose(warped, expected, atol=1e-6)
    mask = np.zeros((2, 9, 11), np.float32)
    mask[:, 1:, :-2] = 1
    np.testing.assert_array_equal(inside, mask)


def test_warp_with_a_half_pixel_flow_averages_the_two_neighbours():
    x = np.random.default_rng(1).normal(size=(1, 5, 6, 2)).astype(np.float32)
    flow = jnp.broadcast_to(jnp.array([0.5, 0.0], jnp.float32), (1, 5, 6, 2))
    warped, _ = warp(jnp.asarray(x), flow)
    np.testing.assert_allclose(warped[:, :, :-1], (x[:, :, :-1] + x[:, :, 1:]) / 2, atol=1e-6)


def test_cost_volume_matches_a_direct_computation():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 2, 5, 6, 4)).astype(np.float32)
    r = 2
    volume = np.asarray(flow_model.correlation(jnp.asarray(a), jnp.asarray(b), r))
    assert volume.shape == (2, 5, 6, (2 * r + 1) ** 2)
    for n in range(2):
        for y in range(5):
            for x in range(6):
                k = 0
                for dy in range(-r, r + 1):
                    for dx in range(-r, r + 1):
                        inside = 0 <= y + dy < 5 and 0 <= x + dx < 6
                        direct = a[n, y, x] @ b[n, y + dy, x + dx] / 4 if inside else 0.0
                        assert volume[n, y, x, k] == pytest.approx(direct, abs=1e-5)
                        k += 1


def test_vicreg_terms_match_their_formulas():
    rng = np.random.default_rng(3)
    z1, z2 = rng.normal(size=(2, 16, 5)) * np.array([0.3, 1.0, 2.0, 0.5, 1.5])
    inv, var, cov = (float(t) for t in vicreg_terms(jnp.asarray(z1), jnp.asarray(z2)))
    assert inv == pytest.approx(np.mean(np.sum((z1 - z2) ** 2, 1)) / 5, rel=1e-5)

    def hinge_and_offdiag(z):
        std = np.sqrt(z.var(0, ddof=1) + 1e-4)
        c = np.cov(z, rowvar=False)
        return np.mean(np.maximum(0, 1 - std)), (np.sum(c ** 2) - np.sum(np.diag(c) ** 2)) / 5

    (v1, c1), (v2, c2) = hinge_and_offdiag(z1), hinge_and_offdiag(z2)
    assert var == pytest.approx((v1 + v2) / 2, rel=1e-5) and var > 0
    assert cov == pytest.approx(c1 + c2, rel=1e-5) and cov > 0
    # decorrelated, unit-std features: no variance or covariance penalty
    centred = rng.normal(size=(16, 5))
    white = np.linalg.qr(centred - centred.mean(0))[0] * np.sqrt(15)  # centred, cov = I
    v, c = variance_covariance(jnp.asarray(white), eps=0.0)
    assert float(v) == pytest.approx(0.0, abs=1e-5) and float(c) == pytest.approx(0.0, abs=1e-5)


def test_end_point_errors_count_only_valid_pixels_and_kitti_outliers():
    from jepax.evaluators.flow_epe import end_point_errors

    truth = np.zeros((1, 2, 2, 2))
    truth[0, :, :, 0] = 10.0
    flow = truth.copy()
    flow[0, 0, 0] += (3.0, 4.0)        # EPE 5: an outlier (> 3 px and > 5% of 10 px)
    flow[0, 0, 1] += (0.0, 2.0)        # EPE 2: not an outlier
    flow[0, 1, 1] += (30.0, 0.0)       # invalid pixel: ignored
    valid = np.array([[[True, True], [True, False]]])
    noc = np.array([[[False, True], [True, True]]])
    out = end_point_errors(flow, truth, valid, noc)
    assert out == {"epe": pytest.approx(7 / 3), "epe_noc": pytest.approx(1.0),
                   "fl": pytest.approx(1 / 3)}


# -- file formats --------------------------------------------------------------------------------
def test_flo_and_kitti_files_round_trip_and_a_corrupt_flo_is_named(tmp_path):
    flow = np.random.default_rng(4).normal(scale=5, size=(7, 9, 2)).astype(np.float32)
    write_flo(tmp_path / "a.flo", flow)
    assert (tmp_path / "a.flo").stat().st_size == 12 + 7 * 9 * 8
    np.testing.assert_array_equal(read_flo(tmp_path / "a.flo"), flow)
    valid = np.random.default_rng(5).uniform(size=(7, 9)) > 0.3
    write_kitti_flow(tmp_path / "k.png", flow, valid)
    back, back_valid = read_kitti_flow(tmp_path / "k.png")
    np.testing.assert_allclose(back, flow, atol=1 / 128)   # KITTI stores 1/64 px steps
    np.testing.assert_array_equal(back_valid, valid)
    (tmp_path / "bad.flo").write_bytes((tmp_path / "a.flo").read_bytes()[:-8])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_flo(tmp_path / "bad.flo")


def test_colour_wheel_png_is_white_at_rest_and_hue_follows_direction(tmp_path):
    flow = np.zeros((4, 4, 2), np.float32)
    flow[0, 0] = (3, 0)     # right
    flow[0, 1] = (0, 3)     # down (image y grows downwards)
    flow[0, 2] = (-3, 0)    # left
    picture = flow_to_colour(flow)
    assert picture.dtype == np.uint8 and picture.shape == (4, 4, 3)
    np.testing.assert_array_equal(picture[3, 3], (255, 255, 255))
    assert picture[0, 0, 0] > 200 and picture[0, 0, 1] < 60        # right: red
    assert picture[0, 2, 2] > 200 and picture[0, 2, 0] < 60        # left: cyan-blue
    assert not np.array_equal(picture[0, 0], picture[0, 1])
    from PIL import Image

    save_flow_png(tmp_path / "f.png", flow)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "f.png")), picture)


# -- loaders on real files -------------------------------------------------------------------
def test_pyav_decodes_the_shipped_real_clip_and_a_video_it_wrote(tmp_path):
    import av

    frames = read_video(shipped_clips()[0], short_side=48, max_frames=5)
    assert frames.shape[0] == 5 and min(frames.shape[1:3]) == 48 and frames.dtype == np.uint8
    assert frames.std() > 10 and np.abs(np.diff(frames.astype(int), axis=0)).mean() > 0.1
    path = tmp_path / "own.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for t in range(4):
            image = np.zeros((48, 64, 3), np.uint8)
            image[10:30, 8 + 4 * t:28 + 4 * t] = 220   # a square moving right
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    back = read_video(path)
    assert back.shape == (4, 48, 64, 3)
    assert back[2, 20, 20:32].mean() > 150 and back[0, 20, 30:34].mean() < 60
    (tmp_path / "empty.mp4").write_bytes(b"not a video")
    with pytest.raises(DataError, match="cannot be decoded"):
        read_video(tmp_path / "empty.mp4")


def test_synthetic_pairs_warp_back_to_the_first_frame_where_visible():
    pairs = SyntheticFlowPairs(count=3, size=64, max_flow=6.0, seed=1)
    for i in range(3):
        ex = pairs[i]
        assert ex["frames"].shape == (2, 64, 64, 3) and ex["flow_gt"].shape == (64, 64, 2)
        assert 0.3 < ex["flow_noc"].mean() < 1.0            # some pixels are occluded or leave
        frames = ex["frames"].astype(np.float32)
        warped, _ = warp(jnp.asarray(frames[1:2]), jnp.asarray(ex["flow_gt"][None]))
        error = np.abs(np.asarray(warped[0]) - frames[0]).mean(-1)
        still = np.abs(frames[1] - frames[0]).mean(-1)
        noc = ex["flow_noc"]
        assert error[noc].mean() < 0.4 * still[noc].mean(), (error[noc].mean(), still[noc].mean())
    np.testing.assert_array_equal(pairs[1]["frames"], SyntheticFlowPairs(3, 64, 6.0, 1)[1]["frames"])


def test_stereo_motorcycle_flow_is_minus_the_true_disparity():
    ex = stereo_motorcycle(64, 96)[0]
    flow, valid = ex["flow_gt"], ex["flow_valid"]
    assert ex["frames"].shape == (2, 64, 96, 3) and 0.5 < valid.mean() < 1.0
    assert np.all(flow[..., 1] == 0) and np.all(flow[valid, 0] < 0)
    assert 2 < -flow[valid, 0].mean() < 30                    # disparities resized to 96 px wide
    # the true disparity aligns the pair far better than no motion does
    frames = ex["frames"].astype(np.float32)
    warped, inside = warp(jnp.asarray(frames[1:2]), jnp.asarray(flow[None]))
    keep = valid & (np.asarray(inside[0]) > 0)
    assert (np.abs(np.asarray(warped[0]) - frames[0]).mean(-1)[keep].mean()
            < 0.6 * np.abs(frames[1] - frames[0]).mean(-1)[keep].mean())


# -- losses ----------------------------------------------------------------------------------
def small_config(preset="tiny", **loss):
    """Two pyramid levels at 16 x 16: few distinct shapes for the eager loss calls below."""
    c = load_config(f"{CONFIG}:{preset}")
    c.model.update(depths=(1, 1), dims=(8, 16), hidden=(8,), expander=(16, 16))
    c.data.update(flow_size=16, content_size=16)
    c.loss.update(**loss)
    return c


def drawn_params(variant):
    """Parameters of the variant's shapes drawn with numpy: the real initializer compiles a
    threefry program per parameter shape (~15 s on 2 cores), and these tests check the loss
    terms, not the initializer (the :tiny run below uses it)."""
    rng = np.random.default_rng(7)
    shapes = jax.eval_shape(variant.init_params, jax.random.key(0))
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.2, s.shape), s.dtype), shapes)


@pytest.fixture(scope="module")
def small_batch():
    rng = np.random.default_rng(6)
    return {"frames": rng.integers(0, 256, (2, 2, 16, 16, 3), dtype=np.uint8),
            "view1": rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8),
            "view2": rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)}


@pytest.mark.parametrize("term", [*FLOW_TERMS, "content"])
def test_each_loss_can_be_turned_off(term, small_batch):
    variant = MCJEPA(small_config(**{term: 0.0}))
    params = drawn_params(variant)
    total, metrics = variant.loss(params, None, small_batch, jax.random.key(1))
    terms = {k[5:]: float(v) for k, v in metrics.items() if k.startswith("loss_")}
    others = {*FLOW_TERMS, "content"} - {term}
    assert set(terms) == others
    w = variant.config.loss
    assert float(total) == pytest.approx(sum(w[k] * v for k, v in terms.items()), rel=1e-5)


def test_flow_only_and_content_only_read_only_their_own_inputs(small_batch):
    flow_only = MCJEPA(small_config(content=0.0))
    params = drawn_params(flow_only)
    _, metrics = flow_only.loss(params, None, {"frames": small_batch["frames"]}, jax.random.key(1))
    assert "loss_content" not in metrics and "loss_photometric" in metrics
    content_only = MCJEPA(small_config("content_only"))
    params = drawn_params(content_only)
    views = {k: small_batch[k] for k in ("view1", "view2")}
    _, metrics = content_only.loss(params, None, views, jax.random.key(1))
    assert [k for k in metrics if k.startswith("loss_")] == ["loss_content"]


def test_bad_configs_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="every loss weight is 0"):
        MCJEPA(small_config(**{t: 0.0 for t in (*FLOW_TERMS, "content")}))
    with pytest.raises(ConfigError, match="multiple of the coarsest level's stride"):
        c = small_config()
        c.data.flow_size = 18
        MCJEPA(c)


# -- training ----------------------------------------------------------------------------------
def tiny(**train_overrides):
    c = load_config(CONFIG + ":tiny")
    c.train.update(log_every=1, **train_overrides)
    c.logging.update(progress=False, tensorboard=False)
    c.data.synthetic_pairs = 8   # the wiring, not the numbers
    c.evals.linear_probe.update(train_examples=500, test_examples=250, steps=50)
    c.evals.rankme.examples = 250
    return c


@pytest.fixture(scope="module", autouse=True)
def shared_compiles(tmp_path_factory):
    """The resume test's two runs load the tiny run's compiled step instead of compiling it."""
    with compilation_cache(tmp_path_factory.mktemp("xla_cache")):
        yield


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mc_jepa")
    return workdir, train.run(tiny(), workdir)


def test_tiny_trains_with_falling_loss_and_measures_flow_against_farneback(tiny_run):
    workdir, summary = tiny_run
    curve = losses(workdir)
    assert len(curve) == 30 and np.mean(curve[-5:]) < 0.93 * np.mean(curve[:3]), curve
    variance = [r["loss_flow_variance"] for r in read_metrics(workdir) if "loss_flow_variance" in r]
    assert np.mean(variance[-5:]) < 0.8 * np.mean(variance[:3]), variance  # the flow side learns
    rows = summary["eval"]
    assert {"pretrained", "random init", "Farneback (OpenCV)", "zero flow", "raw pixels"} <= set(rows)
    for name in ("pretrained", "random init", "Farneback (OpenCV)", "zero flow"):
        assert {"synthetic_epe", "synthetic_epe_noc", "stereo_epe"} <= set(rows[name]), name
    for name in ("pretrained", "random init", "raw pixels"):
        assert "linear_probe_acc" in rows[name], name
    # Farneback really estimates flow: far better than standing still on the stereo pair (on
    # the 32 px synthetic pairs of :tiny its pyramid has little room, so only better)
    farneback, still = rows["Farneback (OpenCV)"], rows["zero flow"]
    assert farneback["stereo_epe"] < 0.5 * still["stereo_epe"]
    assert farneback["synthetic_epe"] < still["synthetic_epe"]
    record = read_metrics(workdir)[-1]
    assert {"feature_std", "flow_feature_std", "vicreg_variance", "loss_photometric"} <= set(record)


def test_tiny_resumes_bit_for_bit(tiny_run, tmp_path):
    ref_dir, _ = tiny_run
    assert_resumes_bit_for_bit(tiny(), tmp_path, ref_dir, stop_at=15)


def test_recorder_writes_the_table_with_unmeasured_runs_as_dashes(tiny_run, tmp_path):
    from scripts.record_mc_jepa import table
    from scripts.record_results import write_between_markers

    workdir, summary = tiny_run
    lines = table(workdir, None, None, note="shared machine")
    assert lines[0].startswith("| metric | MC-JEPA (both) | flow only | content only | random init |")
    farneback = summary["eval"]["Farneback (OpenCV)"]["synthetic_epe"]
    row = next(l for l in lines if l.startswith("| synthetic pairs: EPE all (px) |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:4] == ["-", "-"] and f"{farneback:.3f}" in cells
    doc = tmp_path / "doc.py"
    doc.write_text('"""\n    <results>\n    old\n    </results>\n"""\n')
    write_between_markers(doc, lines)
    assert "old" not in doc.read_text() and row in doc.read_text()
