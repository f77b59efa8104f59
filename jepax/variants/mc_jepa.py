"""MC-JEPA (Bardes, Ponce, LeCun, 2023): optical flow (motion) and content features learned by
one shared encoder.

* encoder: ConvNeXt (jepax/models/convnext.py) giving a feature pyramid (every stage's output);
* motion: a PWC-Net-style decoder (jepax/models/flow.py) estimates flow coarse to fine from
  the two frames' pyramids, in both directions (frame 1 -> 2 and 2 -> 1, one batched call).
  Objectives, each weighted by ``config.loss`` and left out of the graph at weight 0:
  - ``regression``: at every level, the first frame's features against the second frame's
    features warped by that level's flow (squared error, mean over levels);
  - ``flow_variance`` / ``flow_covariance``: VICReg's variance hinge and covariance penalty on
    every level's features (all pixels of both frames as samples): what keeps the regression
    target from collapsing;
  - ``photometric``: the first frame against the second warped by the full-resolution flow,
    ``ssim`` * (1 - SSIM) / 2 + (1 - ``ssim``) * L1, on pixels the forward-backward check
    finds visible (``occlusion_mask``);
  - ``smoothness``: first-order edge-aware smoothness of the full-resolution flow,
    |grad flow| * exp(-``smooth_edge`` * |grad image|);
  - ``cycle``: at every level, features warped backward then forward return to themselves;
* content: VICReg (invariance 25, variance 25, covariance 1) on two augmented views of a
  still image through the same encoder (last level, average-pooled) and an expander MLP,
  scaled by ``loss.content``.

Every example of a batch holds a frame pair and a still image, so each step trains both
objectives in one compiled program. There is no EMA target. No official code exists; the
weights chosen are in experiments/mc_jepa.py and docs/mc_jepa.md.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from data_pipelines import sources
from data_pipelines.transforms import random_resized_crop, resize
from jepax.config import ConfigError
from jepax.models import convnext, flow as flow_model

MEAN, STD = 0.45, 0.225  # image normalisation of the encoder's input (RGB in [0, 1])
FLOW_TERMS = ("regression", "flow_variance", "flow_covariance", "photometric", "smoothness",
              "cycle")
FLOW_SPLITS = ("synthetic_flow", "stereo", "flow_folder")


class MCJEPA:
    transfer_paths = ("params/encoder",)
    replicated_keys = frozenset()
    eval_inputs = ("image", "frames")  # image splits have 'image', flow splits 'frames'

    def __init__(self, config):
        validate(config)
        self.config = config
        m, w = config.model, config.loss
        self.arch = dict(depths=tuple(m.depths), dims=tuple(m.dims), stem=m.stem)
        self.stride = m.stem * 2 ** (len(m.depths) - 1)   # the coarsest level's stride
        self.flow_on = any(w[t] > 0 for t in FLOW_TERMS)
        self.content_on = w.content > 0

    # -- parameters --------------------------------------------------------------------------
    def init_params(self, key):
        m = self.config.model
        k1, k2, k3 = jax.random.split(key, 3)
        return {"encoder": convnext.init(k1, layer_scale=m.layer_scale, **self.arch),
                "flow": flow_model.init_decoder(k2, self.arch["dims"], radius=m.radius,
                                                hidden=tuple(m.hidden)),
                "expander": _init_expander(k3, self.arch["dims"][-1], tuple(m.expander))}

    def param_specs(self, mesh, rules):
        """A ConvNeXt-T is 28 M parameters: replicated on every device (data parallel)."""
        return jax.tree.map(lambda _: PartitionSpec(),
                            jax.eval_shape(self.init_params, jax.random.key(0)))

    @staticmethod
    def ema_source(params):
        return None  # VICReg and the flow losses need no target network

    @staticmethod
    def eval_params(params, target):
        return {"encoder": params["encoder"], "flow": params["flow"]}

    # -- data --------------------------------------------------------------------------------
    def train_source(self):
        from data_pipelines.video import VideoAndImages

        return VideoAndImages(sources.get(self.config.data, "train"), self._images("train"))

    def _images(self, split):
        return sources.factory(self.config.data.images)(self.config.data, split)

    def eval_source(self, split):
        if split in FLOW_SPLITS:
            return sources.get(self.config.data, split)
        return self._images(split)

    def example_fn(self):
        d = self.config.data
        return functools.partial(_train_example, flow_size=d.flow_size, content_size=d.content_size,
                                 crop_scale=tuple(d.crop_scale), jitter=d.jitter,
                                 grayscale=d.grayscale)

    def batch_fn(self):
        return None

    def eval_example_fn(self):
        return functools.partial(_eval_example, content_size=self.config.data.content_size,
                                 multiple=self.stride)

    # -- model -------------------------------------------------------------------------------
    def pyramid(self, encoder, images):
        x = images.astype(jnp.float32) / 255.0
        if x.shape[-1] == 1:
            x = jnp.repeat(x, 3, -1)
        return convnext.pyramid(encoder, (x - MEAN) / STD)

    def flows(self, params, frames):
        """(B, 2, H, W, 3) frames -> per-level flows of both directions (forward for the first
        B, backward for the last B), the two frames' pyramids in the same order."""
        b = frames.shape[0]
        levels = self.pyramid(params["encoder"], jnp.concatenate([frames[:, 0], frames[:, 1]]))
        swapped = [jnp.concatenate([x[b:], x[:b]]) for x in levels]
        return flow_model.decode(params["flow"], levels, swapped,
                                 radius=self.config.model.radius), levels, swapped

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        del target, rng  # no EMA target; augmentations come from the data pipeline
        w = self.config.loss
        terms, metrics = {}, {}
        if self.flow_on:
            flow_terms, flow_metrics = self.flow_losses(params, batch["frames"])
            terms.update(flow_terms)
            metrics.update(flow_metrics)
        if self.content_on:
            z, features = self.content_embeddings(params, batch["view1"], batch["view2"])
            n = len(batch["view1"])
            inv, var, cov = vicreg_terms(z[:n], z[n:])
            terms["content"] = w.invariance * inv + w.variance * var + w.covariance * cov
            metrics.update(vicreg_invariance=inv, vicreg_variance=var, vicreg_covariance=cov,
                           feature_std=_mean_std(features), expander_std=_mean_std(z))
        total = sum(w[name] * value for name, value in terms.items())
        return total, {**metrics, **{f"loss_{k}": v for k, v in terms.items()}}

    def flow_losses(self, params, frames):
        w, m = self.config.loss, self.config.model
        flows, first, second = self.flows(params, frames)
        b = frames.shape[0]
        other = [jnp.concatenate([f[b:], f[:b]]) for f in flows]  # the opposite direction
        terms = {}
        if w.regression > 0:
            terms["regression"] = jnp.mean(jnp.stack([
                _masked_mean(jnp.mean((x1 - warped) ** 2, -1), inside)
                for x1, x2, f in zip(first, second, flows)
                for warped, inside in [flow_model.warp(x2, f)]]))
        if w.flow_variance > 0 or w.flow_covariance > 0:
            pairs = [variance_covariance(x.reshape(-1, x.shape[-1])) for x in first]
            terms["flow_variance"] = jnp.mean(jnp.stack([v for v, _ in pairs]))
            terms["flow_covariance"] = jnp.mean(jnp.stack([c for _, c in pairs]))
        if w.cycle > 0:
            terms["cycle"] = jnp.mean(jnp.stack([
                _masked_mean(jnp.mean((x - there_and_back) ** 2, -1), inside)
                for x, f, g in zip(first, flows, other)
                for there_and_back, inside in [flow_model.warp(flow_model.warp(x, g)[0], f)]]))
        images = jnp.concatenate([frames[:, 0], frames[:, 1]]).astype(jnp.float32) / 255.0
        full = flow_model.upsample(flows[0], m.stem)
        metrics = {"flow_magnitude": jnp.mean(jnp.linalg.norm(full, axis=-1)),
                   "flow_feature_std": _mean_std(first[0].reshape(-1, first[0].shape[-1]))}
        if w.photometric > 0:
            target = jnp.concatenate([images[b:], images[:b]])
            warped, inside = flow_model.warp(target, full)
            visible = inside
            if w.occlusion_mask:
                visible = visible * visible_mask(full, jnp.concatenate([full[b:], full[:b]]))
                metrics["visible_fraction"] = jnp.mean(visible)
            terms["photometric"] = _masked_mean(
                photometric_error(images, warped, w.ssim), jax.lax.stop_gradient(visible))
        if w.smoothness > 0:
            terms["smoothness"] = edge_aware_smoothness(full, images, w.smooth_edge)
        return {k: v for k, v in terms.items() if w[k] > 0}, metrics

    def content_embeddings(self, params, view1, view2):
        features = self.pyramid(params["encoder"], jnp.concatenate([view1, view2]))[-1].mean((1, 2))
        return _expander(params["expander"], features), features

    # -- evaluation --------------------------------------------------------------------------
    def outputs(self, eval_params, inputs):
        """'image' -> 'features' (last level, average-pooled); 'frames' -> 'flow' (frame 1 -> 2
        at full resolution)."""
        out = {}
        if "image" in inputs:
            out["features"] = self.pyramid(eval_params["encoder"], inputs["image"])[-1].mean((1, 2))
        if "frames" in inputs:
            b = inputs["frames"].shape[0]
            flows, _, _ = self.flows(eval_params, inputs["frames"])
            out["flow"] = flow_model.upsample(flows[0][:b], self.config.model.stem)
        return out

    @staticmethod
    def baselines():
        return {"raw pixels": _pixel_features, "Farneback (OpenCV)": _farneback,
                "zero flow": _zero_flow}

    def flops_per_step(self, global_batch: int) -> float:
        d, m = self.config.data, self.config.model
        total = 0.0
        if self.flow_on:
            total += 2 * global_batch * convnext.flops(d.flow_size, d.flow_size, **self.arch)
            finest = d.flow_size // m.stem
            total += 2 * global_batch * flow_model.decoder_flops(
                finest, finest, self.arch["dims"], radius=m.radius, hidden=tuple(m.hidden))
        if self.content_on:
            total += 2 * global_batch * convnext.flops(d.content_size, d.content_size, **self.arch)
            widths = (self.arch["dims"][-1], *m.expander)
            total += 2 * global_batch * sum(2.0 * a * b for a, b in zip(widths[:-1], widths[1:]))
        return 3 * total  # backward = 2x forward


# -- losses ------------------------------------------------------------------------------------
def vicreg_terms(z1, z2, eps: float = 1e-4):
    """VICReg (Bardes et al., 2022): invariance = mean squared difference; variance = mean
    hinge max(0, 1 - std) per dimension (averaged over the two branches); covariance = sum of
    squared off-diagonal covariances / D (summed over the two branches)."""
    inv = jnp.mean((z1 - z2) ** 2)
    v1, c1 = variance_covariance(z1, eps)
    v2, c2 = variance_covariance(z2, eps)
    return inv, (v1 + v2) / 2, c1 + c2


def variance_covariance(z, eps: float = 1e-4):
    """(N, D) samples -> (mean hinge max(0, 1 - std), sum of squared off-diagonal
    covariances / D)."""
    n, d = z.shape
    z = z - z.mean(0)
    std = jnp.sqrt(jnp.sum(z ** 2, 0) / (n - 1) + eps)
    cov = z.T @ z / (n - 1)
    off_diagonal = cov - jnp.diag(jnp.diag(cov))
    return jnp.mean(jax.nn.relu(1 - std)), jnp.sum(off_diagonal ** 2) / d


def ssim_distance(x, y):
    """(1 - SSIM) / 2 per pixel and channel over 3x3 windows (reflect-padded), in [0, 1]."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def pool(t):
        t = jnp.pad(t, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        return jax.lax.reduce_window(t, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), "VALID") / 9

    mx, my = pool(x), pool(y)
    sx, sy, sxy = pool(x * x) - mx ** 2, pool(y * y) - my ** 2, pool(x * y) - mx * my
    ssim = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sx + sy + c2))
    return jnp.clip((1 - ssim) / 2, 0, 1)


def photometric_error(x, y, ssim_weight: float):
    """Per pixel: ssim_weight * (1 - SSIM) / 2 + (1 - ssim_weight) * |x - y|, channel mean."""
    l1 = jnp.abs(x - y)
    if ssim_weight == 0:
        return l1.mean(-1)
    return (ssim_weight * ssim_distance(x, y) + (1 - ssim_weight) * l1).mean(-1)


def edge_aware_smoothness(flow, images, edge: float):
    """Mean |d flow| * exp(-edge * mean_c |d image|) over horizontal and vertical neighbours."""
    def one(axis):
        df = jnp.abs(jnp.diff(flow, axis=axis)).mean(-1)
        di = jnp.abs(jnp.diff(images, axis=axis)).mean(-1)
        return jnp.mean(df * jnp.exp(-edge * di))
    return (one(1) + one(2)) / 2


def visible_mask(forward, backward, alpha1: float = 0.01, alpha2: float = 0.5):
    """Forward-backward check (UnFlow): a pixel is visible in the other frame when its
    forward flow and the backward flow where it lands nearly cancel."""
    back, _ = flow_model.warp(backward, forward)
    mismatch = jnp.sum((forward + back) ** 2, -1)
    bound = alpha1 * (jnp.sum(forward ** 2, -1) + jnp.sum(back ** 2, -1)) + alpha2
    return (mismatch < bound).astype(forward.dtype)


def _masked_mean(values, mask):
    mask = jax.lax.stop_gradient(mask)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _mean_std(x):
    return jnp.mean(jnp.std(x.reshape(-1, x.shape[-1]), axis=0))


# -- expander ----------------------------------------------------------------------------------
def _init_expander(key, dim, widths):
    layers, c_in = {}, dim
    for i, (c_out, k) in enumerate(zip(widths, jax.random.split(key, len(widths)))):
        bound = 1 / np.sqrt(c_in)  # torch.nn.Linear's default, as VICReg's expander
        layers[f"linear{i}"] = {"kernel": jax.random.uniform(k, (c_in, c_out), jnp.float32, -bound, bound),
                                "bias": jnp.zeros(c_out)}
        if i < len(widths) - 1:
            layers[f"bn{i}"] = {"scale": jnp.ones(c_out), "bias": jnp.zeros(c_out)}
        c_in = c_out
    return layers


def _expander(p, x):
    """Linear -> BatchNorm (batch statistics) -> ReLU, ..., last Linear (VICReg's expander)."""
    n = sum(k.startswith("linear") for k in p)
    for i in range(n):
        x = x @ p[f"linear{i}"]["kernel"] + p[f"linear{i}"]["bias"]
        if i < n - 1:
            mean, var = x.mean(0), x.var(0)
            x = (x - mean) * jax.lax.rsqrt(var + 1e-5) * p[f"bn{i}"]["scale"] + p[f"bn{i}"]["bias"]
            x = jax.nn.relu(x)
    return x


# -- host transforms -----------------------------------------------------------------------------
def _rgb(image):
    return np.repeat(image, 3, -1) if image.shape[-1] == 1 else image


def colour_jitter(image: np.ndarray, rng: np.random.Generator, strength: float,
                  grayscale_p: float) -> np.ndarray:
    """VICReg's photometric augmentation of an (H, W, 3) uint8 image: brightness, contrast and
    saturation factors in [1 - strength, 1 + strength] in random order, then grayscale with
    probability `grayscale_p` (hue jitter is left out)."""
    x = image.astype(np.float32)
    luma = lambda a: a @ np.array([0.299, 0.587, 0.114], np.float32)
    for op in rng.permutation(3):
        factor = rng.uniform(1 - strength, 1 + strength)
        if op == 0:
            x = x * factor
        elif op == 1:
            mean = luma(x).mean()
            x = (x - mean) * factor + mean
        else:
            gray = luma(x)[..., None]
            x = gray + (x - gray) * factor
        x = np.clip(x, 0, 255)
    if rng.uniform() < grayscale_p:
        x = np.repeat(luma(x)[..., None], 3, -1)
    return x.round().astype(np.uint8)


def _train_example(example, rng, *, flow_size, content_size, crop_scale, jitter, grayscale):
    frames = example["frames"]
    _, h, w, _ = frames.shape
    top, left = rng.integers(0, h - flow_size + 1), rng.integers(0, w - flow_size + 1)
    frames = frames[:, top:top + flow_size, left:left + flow_size]
    if rng.uniform() < 0.5:
        frames = frames[:, :, ::-1]
    if rng.uniform() < 0.5:  # play the pair backwards
        frames = frames[::-1]
    image = _rgb(example["image"])

    def view():
        out = random_resized_crop(image, rng, content_size, scale=crop_scale)
        if rng.uniform() < 0.5:
            out = out[:, ::-1]
        if rng.uniform() < 0.8:
            out = colour_jitter(out, rng, jitter, grayscale)
        return np.ascontiguousarray(out)

    return {"frames": np.ascontiguousarray(frames), "view1": view(), "view2": view()}


def _eval_example(example, *, content_size, multiple):
    """Images: resized to the content size. Flow pairs: the centre crop whose sides are
    multiples of the coarsest level's stride."""
    if "frames" not in example:
        return {**example, "image": resize(example["image"], content_size)}
    h, w = example["frames"].shape[1:3]
    ch, cw = h - h % multiple, w - w % multiple
    if not ch or not cw:
        raise ConfigError(f"evaluation frames of {h}x{w} are smaller than the encoder's coarsest "
                          f"stride {multiple}")
    top, left = (h - ch) // 2, (w - cw) // 2
    return {k: (v[:, top:top + ch, left:left + cw] if k == "frames" else v[top:top + ch, left:left + cw])
            for k, v in example.items()}


# -- baselines ---------------------------------------------------------------------------------
def _pixel_features(arrays):
    if "image" not in arrays:
        return {}
    images = arrays["image"]
    return {"features": images.reshape(len(images), -1).astype(np.float32) / 255.0}


def _farneback(arrays):
    """Farneback's polynomial-expansion flow (OpenCV) on the grayscale frames."""
    if "frames" not in arrays:
        return {}
    import cv2

    gray = lambda f: cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY)
    flows = [cv2.calcOpticalFlowFarneback(gray(a), gray(b), None, pyr_scale=0.5, levels=4,
                                          winsize=15, iterations=3, poly_n=5, poly_sigma=1.2,
                                          flags=0) for a, b in arrays["frames"]]
    return {"flow": np.stack(flows).astype(np.float32)}


def _zero_flow(arrays):
    if "frames" not in arrays:
        return {}
    b, _, h, w, _ = arrays["frames"].shape
    return {"flow": np.zeros((b, h, w, 2), np.float32)}


# -- config ------------------------------------------------------------------------------------
def validate(config) -> None:
    m, d, w = config.model, config.data, config.loss
    if not (len(m.depths) == len(m.dims) >= 2) or min(m.depths) < 1 or min(m.dims) < 1:
        raise ConfigError(f"model.depths={tuple(m.depths)} and model.dims={tuple(m.dims)} need "
                          "the same length (>= 2 levels) and positive entries")
    if m.stem < 1 or m.radius < 1 or min(m.hidden, default=1) < 1 or not m.expander:
        raise ConfigError("model.stem, model.radius, model.hidden and model.expander must be "
                          "positive (the expander needs at least one layer)")
    stride = m.stem * 2 ** (len(m.depths) - 1)
    for key in ("flow_size", "content_size"):
        if d[key] % stride:
            raise ConfigError(f"data.{key}={d[key]} must be a multiple of the coarsest level's "
                              f"stride {stride} (model.stem * 2^(levels - 1))")
    if d.video_short_side < d.flow_size:
        raise ConfigError(f"data.video_short_side={d.video_short_side} is smaller than the "
                          f"flow crop data.flow_size={d.flow_size}")
    for key in (*FLOW_TERMS, "content", "invariance", "variance", "covariance", "smooth_edge"):
        if not w[key] >= 0:
            raise ConfigError(f"loss.{key}={w[key]} must be >= 0 (0 turns a term off)")
    if not any(w[t] > 0 for t in (*FLOW_TERMS, "content")):
        raise ConfigError("every loss weight is 0: nothing to train; set loss.content or a "
                          f"flow weight ({', '.join(FLOW_TERMS)}) above 0")
    if not 0 <= w.ssim <= 1:
        raise ConfigError(f"loss.ssim={w.ssim} is the SSIM share of the photometric error: "
                          "use a value in [0, 1]")
    if config.train.batch_size < 2 and w.content > 0:
        raise ConfigError("VICReg needs train.batch_size >= 2 (variances over the batch)")
