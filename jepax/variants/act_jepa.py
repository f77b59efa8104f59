"""ACT-JEPA (Vujinovic & Kovacevic, "ACT-JEPA: Novel Joint-Embedding Predictive Architecture
for Efficient Policy Representation Learning", 2025): an action-chunking imitation policy whose
encoder is also trained, JEPA-style, to predict the abstract future of the robot's own state.

* context encoder (``models.policy.ObservationEncoder``): [task token, proprio token, image
  tokens of a small CNN] -> transformer;
* target encoder: the EMA of the context encoder applied to the next `chunk` proprio states
  (one token per state, padded steps masked out of attention); the JEPA target is this
  abstract future state trajectory, not images;
* predictor: `chunk` learned queries attending to the context tokens -> one latent per future
  state; action decoder: `chunk` learned queries attending to the context tokens -> the next
  `chunk` actions;
* loss: ``action_weight * L1(actions) + jepa_weight * L1(latents)`` (1:1 by default), each a
  mean over the steps that lie inside the episode (padded steps masked out of both);
  ``model.jepa_weight=0`` is the action-chunking baseline without the JEPA branch (no target
  pass, the predictor unused); ``model.action_weight=0`` trains the JEPA branch alone and
  ``model.freeze_encoder=True`` trains the heads on a frozen (e.g. ``train.init_from``) encoder:
  the transfer experiment.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from data_pipelines import point_push
from data_pipelines.demonstrations import demonstrations
from jepax import flops
from jepax.config import ConfigError, require_positive
from jepax.models.functional import Functional
from jepax.models.layers import ATTENTION_IMPLEMENTATIONS, DTYPES
from jepax.models.policy import ObservationEncoder, QueryDecoder
from jepax.variants.jepa import EncoderPredictorJEPA
from jepax.variants.monitors import collapse_monitors, token_std


class ACTJEPA(EncoderPredictorJEPA):
    """Parameters ``{encoder, predictor, decoder}``; the target is the EMA of the encoder."""

    replicated_keys = frozenset()
    eval_inputs = ("task", "proprio", "image")

    def __init__(self, config):
        validate(config)
        self.config = config
        if config.data.path and "closed_loop" in _selected_evaluator_types(config):
            raise ConfigError(NO_SIMULATOR + "; leave it out: --config.eval.evaluators="
                              "'(\"world_model\",\"rankme\")'")
        self.demos = demonstrations(config.data)
        m, d, demos = config.model, config.data, self.demos
        if demos.image_shape[0] % 2 ** len(m.channels) or demos.image_shape[0] != demos.image_shape[1]:
            raise ConfigError(f"images of {demos.image_shape[:2]} from {demos.folder}: the CNN "
                              f"needs square images whose side is divisible by "
                              f"2^len(model.channels) = {2 ** len(m.channels)}")
        common = dict(heads=m.heads, mlp_ratio=m.mlp_ratio, dtype=DTYPES[m.dtype],
                      attention_impl=m.attention)
        self.encoder = Functional(lambda rngs: ObservationEncoder(
            num_tasks=max(demos.num_tasks, m.num_tasks), proprio_dim=demos.proprio_dim,
            image_size=demos.image_shape[0], channels=tuple(m.channels), dim=m.width,
            depth=m.depth, rngs=rngs, **common))
        self.predictor = Functional(lambda rngs: QueryDecoder(
            d.chunk, in_dim=m.width, dim=m.pred_width, depth=m.pred_depth, out_dim=m.width,
            rngs=rngs, **common))
        self.decoder = Functional(lambda rngs: QueryDecoder(
            d.chunk, in_dim=m.width, dim=m.width, depth=m.dec_depth, out_dim=demos.action_dim,
            rngs=rngs, **common))

    # -- parameters ----------------------------------------------------------------------------
    def init_params(self, key):
        k_enc, k_pred, k_dec = jax.random.split(key, 3)
        return {"encoder": self.encoder.init(k_enc), "predictor": self.predictor.init(k_pred),
                "decoder": self.decoder.init(k_dec)}

    def param_specs(self, mesh, rules):
        return {name: getattr(self, name).specs(mesh, rules)
                for name in ("encoder", "predictor", "decoder")}

    @staticmethod
    def eval_params(params, target):
        """The policy: the trained context encoder and action decoder (the probe reads the
        encoder, the closed-loop evaluator drives both)."""
        return {"encoder": params["encoder"], "decoder": params["decoder"]}

    # -- data ----------------------------------------------------------------------------------
    def example_fn(self):
        return None

    def batch_fn(self):
        return None

    def eval_example_fn(self):
        return None

    # -- networks ------------------------------------------------------------------------------
    def observe(self, encoder, inputs):
        return self.encoder(encoder, inputs["task"], inputs["proprio"], inputs["image"])

    def future_latents(self, target, future, valid):
        """The target encoder's tokens of the future proprio states (no gradient)."""
        module = nnx.merge(self.encoder.graphdef, target)
        return jax.lax.stop_gradient(module.states(future, valid))

    # -- objective -----------------------------------------------------------------------------
    def loss(self, params, target, batch, rng):
        del rng
        m = self.config.model
        encoder = params["encoder"]
        if m.freeze_encoder:
            encoder = jax.lax.stop_gradient(encoder)
        z = self.observe(encoder, batch).astype(jnp.float32)
        actions = self.decoder(params["decoder"], z).astype(jnp.float32)
        action_l1 = masked_l1(actions, batch["actions"], batch["action_valid"])
        metrics = {"action_l1": action_l1, "context_std": token_std(z)}
        total = m.action_weight * action_l1
        if m.jepa_weight > 0:
            h = self.future_latents(target, batch["future"], batch["future_valid"])
            pred = self.predictor(params["predictor"], z).astype(jnp.float32)
            jepa_l1 = masked_l1(pred, h.astype(jnp.float32), batch["future_valid"])
            total = total + m.jepa_weight * jepa_l1
            metrics.update(jepa_l1=jepa_l1,
                           **collapse_monitors(h, pred, batch["future_valid"]))
        return total, metrics

    # -- evaluation ----------------------------------------------------------------------------
    def outputs(self, policy, inputs):
        """The frozen context encoder's tokens, flattened (the world-model probe's input)."""
        z = self.observe(policy["encoder"], inputs)
        return {"features": z.reshape(z.shape[0], -1).astype(jnp.float32)}

    def baselines(self):
        """The probe on the raw observation: proprio state, task one-hot, 8x8 image."""
        num_tasks = self.demos.num_tasks

        def raw(arrays):
            images = arrays["image"].astype(np.float32) / 255.0
            n, h, w, c = images.shape
            small = images.reshape(n, 8, h // 8, 8, w // 8, c).mean((2, 4)).reshape(n, -1)
            return {"features": np.concatenate(
                [arrays["proprio"], np.eye(num_tasks, dtype=np.float32)[arrays["task"]], small], 1)}
        return {"raw observation": raw}

    def act(self, policy, task, proprio, image):
        """(B, chunk, A) actions in the environment's units for observations in its units."""
        s = self.demos.stats
        inputs = {"task": task, "proprio": (proprio - s["proprio_mean"]) / s["proprio_std"],
                  "image": image}
        z = self.observe(policy["encoder"], inputs)
        return self.decoder(policy["decoder"], z) * s["action_std"] + s["action_mean"]

    def rollouts(self, policy, seeds, tasks, *, max_steps: int, execute: int,
                 ensemble: float | None = None, frames=False):
        """Closed-loop episodes of point pushing for `max_steps`: query the policy and run the
        first `execute` actions of its chunk open loop, repeat; or, with `ensemble` = m (ACT's
        temporal ensembling), query it every step and run the average of every chunk's action
        for this step, the chunk predicted i steps ago weighted exp(m * i) (ACT's exp(-m * i)
        with i counted from the oldest). Returns host arrays ``success`` (N,) (the task solved
        at any step) and, with `frames`, ``frames`` (N, T, H, W, 3)."""
        if self.config.data.path:
            raise ConfigError("closed-loop rollouts need the point-pushing environment "
                              "(data.path=''); demonstrations from files have no simulator here")
        size, k = self.demos.image_shape[0], self.config.data.chunk

        def query(state):
            return self.act(policy, state["task"][None], point_push.proprio(state)[None],
                            point_push.render(state, size)[None])[0]

        def advance(state, solved, action):
            state = point_push.step(state, action)
            frame = point_push.render(state, 128) if frames else None
            return (state, solved | point_push.success(state)), frame

        def open_loop(start):
            def chunk(carry, _):
                return jax.lax.scan(lambda c, a: advance(*c, a), carry, query(carry[0])[:execute])
            return jax.lax.scan(chunk, (start, jnp.asarray(False)), None,
                                length=-(-max_steps // execute))

        def ensembled(start):
            def one(carry, t):
                state, solved, chunks = carry
                chunks, action = temporal_ensemble(chunks, query(state), t, ensemble)
                (state, solved), frame = advance(state, solved, action)
                return (state, solved, chunks), frame
            empty = jnp.zeros((k, k, self.demos.action_dim))
            (state, solved, _), images = jax.lax.scan(
                one, (start, jnp.asarray(False), empty), jnp.arange(max_steps))
            return (state, solved), images

        def episode(seed, task):
            start = point_push.reset(jax.random.key(seed), task)
            (_, solved), images = (open_loop if ensemble is None else ensembled)(start)
            return solved, images
        solved, images = jax.jit(jax.vmap(episode))(jnp.asarray(seeds), jnp.asarray(tasks))
        out = {"success": np.asarray(solved)}
        if frames:
            images = np.asarray(images)
            out["frames"] = images.reshape(len(seeds), -1, *images.shape[-3:])
        return out

    def flops_per_step(self, global_batch: int) -> float:
        m, d, b = self.config.model, self.config.data, global_batch
        side, conv, c_in = self.demos.image_shape[0], 0.0, 3
        for c in m.channels:
            side //= 2
            conv += 2.0 * b * side * side * 16 * c_in * c
            c_in = c
        n, k = 2 + side * side, d.chunk
        context = (conv + flops.linear(b * side * side, c_in, m.width)
                   + flops.transformer(b, n, m.width, m.depth, m.mlp_ratio))
        decoder = m.dec_depth * flops.transformer(b, n + k, m.width, 1, m.mlp_ratio, outputs=k)
        total = 3 * (context + decoder)  # backward = 2x forward
        if m.jepa_weight > 0:
            target = flops.transformer(b, k, m.width, m.depth, m.mlp_ratio)
            predictor = (flops.linear(b * n, m.width, m.pred_width)
                         + m.pred_depth * flops.transformer(b, n + k, m.pred_width, 1,
                                                            m.mlp_ratio, outputs=k))
            total += target + 3 * predictor
        return total


NO_SIMULATOR = ("the closed_loop evaluator rolls policies out in the point-pushing simulator "
                "(data.path=''); demonstrations from files have no simulator here")


def _selected_evaluator_types(config) -> set[str]:
    names = config.eval.evaluators
    names = list(config.evals) if names is None else names
    return {config.evals[n]["type"] for n in names if n in config.evals}


def temporal_ensemble(chunks, new_chunk, t, decay):
    """ACT's temporal ensembling at step `t`: `chunks` (K, K, A) holds in row i the chunk
    predicted i steps ago; push `new_chunk` (K, A) in as row 0 and return the new buffer and
    the average of the entries for step t (entry i of row i) over the chunks predicted so far,
    the one predicted i steps ago weighted exp(decay * i), so older predictions weigh more
    (ACT's exp(-decay * j), j counted from the oldest)."""
    chunks = jnp.concatenate([new_chunk[None], chunks[:-1]])
    age = jnp.arange(chunks.shape[0])
    weights = jnp.where(age <= t, jnp.exp(decay * age), 0.0)
    return chunks, weights @ chunks[age, age] / weights.sum()


def masked_l1(pred, target, valid):
    """Mean |pred - target| over the valid steps (B, K) and every feature."""
    weights = valid[..., None].astype(jnp.float32)
    return (jnp.abs(pred - target) * weights).sum() / jnp.maximum(weights.sum() * pred.shape[-1], 1.0)


def validate(config) -> None:
    m, d = config.model, config.data
    require_positive(m, "model", ("width", "depth", "heads", "pred_width", "pred_depth",
                                  "dec_depth"))
    if m.width % m.heads or m.pred_width % m.heads or m.width % 4:
        raise ConfigError(f"model.width={m.width} and pred_width={m.pred_width} must be divisible "
                          f"by model.heads={m.heads} (and width by 4 for sin-cos positions)")
    if m.jepa_weight < 0 or m.action_weight < 0 or m.jepa_weight + m.action_weight == 0:
        raise ConfigError("model.jepa_weight and model.action_weight must be >= 0, not both 0")
    if m.attention not in ATTENTION_IMPLEMENTATIONS:
        raise ConfigError(f"model.attention={m.attention!r}: use one of "
                          f"{list(ATTENTION_IMPLEMENTATIONS)}")
    if m.dtype not in DTYPES:
        raise ConfigError(f"model.dtype={m.dtype!r}: use one of {sorted(DTYPES)}")
    if d.chunk <= 0:
        raise ConfigError(f"data.chunk={d.chunk} must be positive (the paper uses 30)")
