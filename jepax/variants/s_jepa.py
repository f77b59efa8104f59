"""S-JEPA / Signal-JEPA (Guetschel, Moreau, Tangermann, 2024): predict, in representation space,
the tokens of EEG electrodes hidden by a spatial block, from the electrodes around it.

* encoder (jepax/models/s_jepa.py, braindecode's ``SignalJEPA``): per-channel conv tokens +
  channel embedding (initialised from the montage's electrode positions) + temporal sin-cos,
  post-LN transformer encoder. The context encoder sees only the context electrodes' tokens
  (dropped, not replaced), every time token of each;
* target encoder: EMA of the encoder on every token; targets are the average of its last
  ``model.target_layers`` layer outputs (data2vec), layer-normed without parameters;
* predictor: post-LN transformer decoder; its queries are the positional encodings (channel
  embedding + time) of the target tokens, its memory the context encoding; one sequence per
  (context, target);
* masks (data_pipelines/masks/spatial_block.py): per example ``mask.contexts`` random centre
  electrodes; block = electrodes within ``mask.radius`` head radii; ``mask.targets`` targets of
  ``mask.target_channels`` electrodes from each block; drawn per example in the data pipeline;
* loss: MSE over the valid target tokens.

The montage comes from the data (the files' positions or a named standard montage): the
variant reads the dataset's channel list when it is built.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from data_pipelines import sources
from data_pipelines.masks.spatial_block import SpatialBlockMasks, SpatialBlockSpec
from jepax import flops
from jepax.config import ConfigError, require_positive
from jepax.models import s_jepa as model
from jepax.models.layers import normalize_features
from jepax.variants.monitors import collapse_monitors


class SJEPA:
    transfer_paths = ("params/encoder", "target")
    replicated_keys = frozenset()
    eval_inputs = ("eeg",)

    def __init__(self, config):
        validate(config)
        self.config = config
        d = config.data
        from data_pipelines import eeg  # the montage lives in the data

        dataset = eeg.load_dataset(d)
        self.channels, self.positions = dataset.channels, dataset.positions
        self.tokens = model.tokens_per_channel(d.window)
        if self.tokens < 1:
            raise ConfigError(f"data.window={d.window} samples is shorter than the local "
                              f"encoder's receptive field ({model.receptive_field()} samples)")
        try:
            self.masks = SpatialBlockMasks(self.positions, SpatialBlockSpec(
                radius=config.mask.radius, contexts=config.mask.contexts,
                targets=config.mask.targets, target_channels=config.mask.target_channels,
                context_channels=config.mask.context_channels))
        except ValueError as e:
            raise ConfigError(f"{e} (montage of {len(self.channels)} electrodes)") from e

    # -- parameters --------------------------------------------------------------------------
    def init_params(self, key):
        m = self.config.model
        k1, k2 = jax.random.split(key)
        return {"encoder": model.init_encoder(k1, self.positions, dim=m.width, depth=m.depth,
                                              ff=m.ff),
                "predictor": model.init_stack(k2, m.pred_depth, m.width, m.ff, decoder=True)}

    def param_specs(self, mesh, rules):
        """A few million parameters: replicated on every device (data parallel)."""
        return jax.tree.map(lambda _: PartitionSpec(), jax.eval_shape(self.init_params,
                                                                      jax.random.key(0)))

    @staticmethod
    def ema_source(params):
        return params["encoder"]

    @staticmethod
    def eval_params(params, target):
        """Downstream models start from the EMA target encoder."""
        return target

    # -- data --------------------------------------------------------------------------------
    def train_source(self):
        return sources.get(self.config.data, "train")

    def example_fn(self):
        return functools.partial(_with_masks, masks=self.masks)

    def batch_fn(self):
        return None

    def eval_source(self, split):
        return sources.get(self.config.data, split)

    def eval_example_fn(self):
        return None

    # -- objective ---------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        m = self.config.model
        x = batch["eeg"].astype(jnp.float32)
        b, t = x.shape[0], self.tokens
        kw = dict(heads=m.heads)
        # targets: average of the teacher's last layers over every token
        full, _ = model.embed_tokens(target, x)
        _, layers = model.encode(target["transformer"], full, rate=0.0, all_layers=True, **kw)
        h = jax.lax.stop_gradient(normalize_features(sum(layers[-m.target_layers:]) / m.target_layers))
        # context: each context's electrodes, all their time tokens
        enc = params["encoder"]
        pos = model.position_table(enc["channel_embedding"], t)
        tokens = model.local_features(enc["conv"], x) + pos
        ctx_idx, ctx_valid = _token_index(batch["context_channels"], batch["context_valid"], t)
        k, n_ctx = ctx_idx.shape[1:]
        z_in = jnp.take_along_axis(tokens[:, None], ctx_idx[..., None], axis=2)
        k_enc, k_pred = jax.random.split(rng)
        z = model.encode(enc["transformer"], z_in.reshape(b * k, n_ctx, -1),
                         ctx_valid.reshape(b * k, n_ctx), rate=m.dropout, key=k_enc, **kw)
        # predictor: one decoder sequence per (context, target)
        tgt_idx, tgt_valid = _token_index(batch["target_channels"], batch["target_valid"], t)
        n_t, n_tgt = tgt_idx.shape[2:]
        memory = jnp.repeat(z, n_t, axis=0)
        memory_valid = jnp.repeat(ctx_valid.reshape(b * k, n_ctx), n_t, axis=0)
        pred = model.decode(params["predictor"], pos[tgt_idx].reshape(b * k * n_t, n_tgt, -1),
                            memory, memory_valid, tgt_valid.reshape(b * k * n_t, n_tgt),
                            rate=m.dropout, key=k_pred, **kw).reshape(b, k, n_t, n_tgt, -1)
        goal = jnp.take_along_axis(h[:, None, None], tgt_idx[..., None], axis=3)
        valid = tgt_valid[..., None].astype(jnp.float32)
        loss = jnp.sum(valid * (pred - goal) ** 2) / (jnp.sum(valid) * h.shape[-1])
        return loss, collapse_monitors(h, pred, tgt_valid)

    # -- evaluation --------------------------------------------------------------------------
    def outputs(self, target, inputs):
        """Mean-pooled contextual features of the target encoder."""
        x = model.contextual_features(target, inputs["eeg"].astype(jnp.float32),
                                      heads=self.config.model.heads)
        return {"features": x.mean(axis=1)}

    @staticmethod
    def baselines():
        """The classical row: its downstream scores come from CSP / xDAWN + LDA fitted on the
        raw epochs (jepax/evaluators/eeg_downstream.py); its 'features' are log band powers."""
        return {"classical (CSP / xDAWN + LDA)": _band_power_features}

    def flops_per_step(self, global_batch: int) -> float:
        m, s = self.config.model, self.masks.spec
        n, t = len(self.channels), self.tokens
        window = self.config.data.window
        conv = 0.0
        length = window
        in_ch = 1
        for out, kernel, stride in model.CONV_SPEC:
            length = (length - kernel) // stride + 1
            conv += 2 * length * out * in_ch * kernel
            in_ch = out
        mlp = m.ff / m.width
        ctx, tgt = self.masks.context_capacity * t, self.masks.target_capacity * t
        teacher = global_batch * n * conv + flops.transformer(global_batch, n * t, m.width,
                                                              m.depth, mlp)
        student = global_batch * n * conv + flops.transformer(global_batch * s.contexts, ctx,
                                                              m.width, m.depth, mlp)
        sequences = global_batch * s.contexts * s.targets
        predictor = (flops.transformer(sequences, tgt, m.width, m.pred_depth, mlp)
                     + 2 * sequences * m.pred_depth * (2 * (tgt + ctx) * m.width ** 2
                                                       + 2 * tgt * ctx * m.width))  # cross-attn
        return teacher + 3 * (student + predictor)


def _with_masks(example, rng, *, masks):
    return {**example, **masks(rng)}


def _token_index(channels, valid, tokens):
    """Channel indices (..., n) -> channel-major token indices (..., n * tokens) + validity."""
    idx = channels[..., None] * tokens + jnp.arange(tokens)
    shape = channels.shape[:-1] + (channels.shape[-1] * tokens,)
    return idx.reshape(shape), jnp.repeat(valid, tokens, axis=-1).reshape(shape)


def _band_power_features(arrays):
    """Log power per channel in the theta, alpha/mu, beta and low-gamma bands."""
    x = np.asarray(arrays["eeg"], np.float64)
    spectrum = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / 128.0)
    bands = [(4, 8), (8, 13), (13, 30), (30, 40)]
    power = [spectrum[..., (freqs >= lo) & (freqs < hi)].mean(-1) for lo, hi in bands]
    return {"features": np.log(np.stack(power, -1) + 1e-12).reshape(len(x), -1).astype(np.float32)}


def validate(config) -> None:
    m, k = config.model, config.mask
    if m.width != model.SPATIAL_DIMS + model.TEMPORAL_DIMS:
        raise ConfigError(f"model.width={m.width}: S-JEPA tokens are {model.SPATIAL_DIMS} "
                          f"channel + {model.TEMPORAL_DIMS} temporal dims = 64")
    if m.width % m.heads:
        raise ConfigError(f"model.width={m.width} is not divisible by model.heads={m.heads}")
    require_positive(m, "model", ("depth", "pred_depth", "ff", "target_layers"))
    if m.target_layers > m.depth:
        raise ConfigError(f"model.target_layers={m.target_layers} exceeds model.depth={m.depth}")
    if not 0 <= m.dropout < 1:
        raise ConfigError(f"model.dropout={m.dropout} must be in [0, 1)")
    if not k.radius > 0:
        raise ConfigError(f"mask.radius={k.radius} must be positive (head radii)")
    require_positive(k, "mask", ("contexts", "targets", "target_channels"))
