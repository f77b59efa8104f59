"""What Point-JEPA and 3D-JEPA share: the point-cloud data path, the patch tokenizer and encoder,
the JEPA loss on patch tokens, the evaluation features, the D2 baseline, FLOPs and the common
config sections. Each variant adds its masks (and Point-JEPA its sequencer) and its predictor.

One training step (both variants)::

    points (B, 1024, 3) -> FPS centres + kNN patches (B, G, K, 3), centres (B, G, 3)
      [Point-JEPA: reorder patches along the nearest-neighbour sequence]
      -> masks: context (B, C) and M target blocks (B, M, T) of patch indices
      -> teacher: EMA encoder on all patches, last block's output, LayerNorm (no parameters)
      -> student: encoder on the context patches only -> predictor(context features, centres
         of context and targets) -> loss on the valid target tokens

Evaluation features: the max and the mean of the student encoder's output tokens, concatenated
(as the papers' linear SVM); `seed_features` repeat them for `data.eval_seeds` random 1024-point
subsets of each stored cloud (the reference evaluates 10 seeds).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data_pipelines import points as points_lib
from data_pipelines import sources
from data_pipelines.masks.multiblock import MaskConfigError
from jepax import evaluators, flops
from jepax.config import ConfigError, base_config, require_positive
from jepax.models.functional import Functional
from jepax.models.layers import ATTENTION_IMPLEMENTATIONS, DTYPES, normalize_features
from jepax.models.point_ops import gather_points, group_points
from jepax.models.point_transformer import PointEncoder
from jepax.models.tokenizers import PointPatchEmbed
from jepax.models.vit import gather_tokens
from jepax.variants.jepa import EncoderPredictorJEPA
from jepax.variants.monitors import collapse_monitors

LOSSES = ("smooth_l1", "cosine")


# The papers' model (Point-JEPA, 3D-JEPA and Point-MAE share it).
PAPER_MODEL = dict(pointnet=(128, 256, 512), width=384, depth=12, heads=6,
                   pred_width=192, pred_depth=6, pred_heads=6)
# ShapeNet-55 as the papers pretrain on it: the .npy point sets are y-up.
SHAPENET = dict(dataset="shapenet_npy", path="", up_axis=1)
SHAPENET_TRAIN_SHAPES = 41952


def point_config():
    """The config sections Point-JEPA and 3D-JEPA share, sized for about 30 minutes (with the
    evaluation) on 2 idle CPU cores (:func:`paper` restores the papers' sizes), with the default
    shapes folder as data and the SVM / few-shot / retrieval / RankMe evaluations."""
    c = base_config()
    c.model = dict(
        num_groups=64, group_size=32,
        pointnet=(32, 64, 128),     # mini-PointNet widths: per-point MLP 3->h1->h2, then 2*h2->h3->width
        width=128, depth=4, heads=4, mlp_ratio=4.0,
        pos_hidden=128,             # position MLP 3 -> pos_hidden -> width
        pos_every_layer=True,       # add the positions before every encoder block (point2vec)
        pointnet_norm="layer",      # layer | frozen_batch (the reference's BatchNorm at inference)
        norm_eps=1e-6,              # transformer LayerNorm eps (the reference: torch's 1e-5)
        pred_width=64, pred_depth=2, pred_heads=4,
        loss="smooth_l1", loss_beta=2.0,
        target_layers=1,            # teacher targets: mean of the last k blocks (point2vec: 6 of 12)
        eval_encoder="student",     # student | teacher (the EMA encoder) is evaluated
        dtype="float32", attention="auto",
    )
    c.data.update(
        dataset="mesh_folder",      # mesh_folder | points_h5 | shapenet_npy (data_pipelines/points.py)
        path="",                    # mesh_folder: '' = the default shapes folder (data_pipelines/shapes.py)
        shapes="full",              # size of that default folder: full | small
        h5_train="*train*.h5", h5_test="*test*.h5",  # points_h5: file patterns in data.path
        points=1024,                # points per cloud fed to the model
        sample_points=2048,         # points stored per shape (each use subsamples `points`)
        up_axis=2,                  # 2: z-up (.off meshes, the shapes folder); 1: y-up (ShapeNet, ModelNet h5)
        augment=("scale", "rotate"),  # any of data_pipelines.points.AUGMENTATIONS
        scale=(0.8, 1.2), translate=0.2,
        eval_seeds=10,              # random evaluation subsets; the SVM reports mean +- std
        eval_dataset="", eval_path="",  # evaluate on other data (e.g. ModelNet40 h5); '': the training data
    )
    c.train.update(steps=3000, batch_size=32, checkpoint_every=500)
    # Point-JEPA's optimizer: AdamW lr 1e-3, constant weight decay 0.05, and its slow EMA
    # teacher (a faster one, 0.996 -> 1, let the targets collapse towards one vector in
    # 200-step probes here: target std over tokens 0.26 -> 0.18).
    c.optim.update(lr=1e-3, final_lr=1e-6, warmup_steps=200, weight_decay=0.05,
                   final_weight_decay=0.05, ema=(0.9995, 0.99999))
    c.eval.batch_size = 64
    c.evals = dict(
        svm=evaluators.block("linear_svm"),
        few_shot=evaluators.block("few_shot"),
        retrieval=evaluators.block("retrieval"),
        rankme=evaluators.block("rankme", examples=None),
    )
    return c


def tiny(c):
    """The `:tiny` presets: about a minute on 2 CPU cores, on the small shapes folder."""
    c.model.update(num_groups=32, group_size=16, pointnet=(32, 64, 64), width=64, depth=2,
                   heads=2, pred_width=32, pred_depth=2, pred_heads=2)
    c.data.update(shapes="small", points=512, sample_points=1024, eval_seeds=2)
    c.train.update(steps=40, batch_size=16, log_every=10, checkpoint_every=20)
    c.optim.update(warmup_steps=5, ema=(0.99, 0.999))  # a short run needs a faster teacher
    c.evals.few_shot.episodes = 4


def paper(c, *, epochs: int, batch_size: int, warmup_epochs: int, **eval_data):
    """The papers' runs, for accelerators: their model, ShapeNet-55 pretraining (data.path) and
    evaluation on other files (`eval_data`: data.eval_* settings) with raw SVM features."""
    steps_per_epoch = SHAPENET_TRAIN_SHAPES // batch_size
    c.model.update(PAPER_MODEL)
    c.data.update(SHAPENET, **eval_data)
    c.train.update(steps=epochs * steps_per_epoch, batch_size=batch_size, checkpoint_every=2000)
    c.optim.warmup_steps = warmup_epochs * steps_per_epoch
    c.evals.svm.standardize = False


class PointFamily(EncoderPredictorJEPA):
    """Base of the point-cloud JEPAs. Subclasses provide `predictor_class`, `mask_class` (a
    sampler built from the patch count and config.mask) and `masks`, and may override
    `tokenize` (Point-JEPA's sequencer), `batch_fn`, `teacher` and `eval_params`."""

    replicated_keys = frozenset()
    eval_inputs = ("points",)
    predictor_class: type
    mask_class: type

    def __init__(self, config):
        validate(config)
        self.config = config
        m, d = config.model, config.data
        dtype = DTYPES[m.dtype]
        common = dict(mlp_ratio=m.mlp_ratio, dtype=dtype, attention_impl=m.attention,
                      norm_eps=m.norm_eps)
        self.encoder = Functional(lambda rngs: PointEncoder(
            PointPatchEmbed(m.num_groups, m.group_size, m.width, tuple(m.pointnet), dtype=dtype,
                            rngs=rngs, norm=m.pointnet_norm),
            dim=m.width, depth=m.depth, heads=m.heads, pos_hidden=m.pos_hidden,
            pos_every_layer=m.pos_every_layer, rngs=rngs, **common))
        self.predictor = Functional(lambda rngs: self.predictor_class(
            in_dim=m.width, dim=m.pred_width, depth=m.pred_depth, heads=m.pred_heads,
            pos_hidden=m.pos_hidden, rngs=rngs, **common))
        # The tokenizer's parameter-free half (FPS + kNN), computed once per cloud per step.
        self.split = functools.partial(group_points, num_groups=m.num_groups,
                                       group_size=m.group_size)
        self.subsets = points_lib.seed_subsets(d.sample_points, d.points, d.eval_seeds)
        k = config.mask
        try:
            self.blocks = self.mask_class(m.num_groups, k.num_targets, tuple(k.target_ratio),
                                          tuple(k.context_ratio))
        except MaskConfigError as e:
            raise ConfigError(str(e)) from e

    # -- parameters (init, specs, EMA source: EncoderPredictorJEPA) ---------------------------
    def teacher(self, params, target):
        """Parameters of the target encoder's forward pass."""
        return target

    # -- data (train_source: EncoderPredictorJEPA) ---------------------------------------------
    def eval_source(self, split):
        d = self.config.data
        if not d.eval_dataset:
            return sources.get(d, split)
        data = d.copy_and_resolve_references()
        with data.unlocked():
            data.dataset, data.path = d.eval_dataset, d.eval_path
        return sources.get(data, split)

    def example_fn(self):
        d = self.config.data
        ops, scale, translate, up = tuple(d.augment), tuple(d.scale), d.translate, d.up_axis

        def transform(example, rng):
            return {"points": points_lib.augment(example["points"], rng, ops=ops, count=d.points,
                                                 scale=scale, translate=translate, up_axis=up)}
        return transform

    def batch_fn(self):
        return None

    def eval_example_fn(self):
        return None

    # -- objective ---------------------------------------------------------------------------
    def tokenize(self, points):
        """Patches (B, G, K, 3) and centres (B, G, 3) in the order the masks index."""
        return self.split(points)

    def masks(self, batch, centres, rng):
        """(context_idx, context_valid) (B, C) and (target_idx, target_valid) (B, M, T)."""
        raise NotImplementedError

    def loss(self, params, target, batch, rng):
        groups, centres = self.tokenize(batch["points"])
        ctx_idx, ctx_valid, tgt_idx, tgt_valid = self.masks(batch, centres, rng)
        b, m, t = tgt_idx.shape
        h = self.encoder(self.teacher(params, target), groups, centres, final_norm=False,
                         average_last=self.config.model.target_layers)
        grid = normalize_features(jax.lax.stop_gradient(h).astype(jnp.float32))
        h = gather_tokens(grid, tgt_idx.reshape(b, m * t)).reshape(b, m, t, -1)
        z = self.encoder(params["encoder"], groups, centres, ctx_idx, ctx_valid)
        pred = self.predictor(params["predictor"], z, gather_tokens(centres, ctx_idx), ctx_valid,
                              gather_points(centres, tgt_idx), tgt_valid).astype(jnp.float32)
        valid = tgt_valid.astype(jnp.float32)
        per_token = token_loss(pred, h, self.config.model.loss, self.config.model.loss_beta)
        loss = (per_token * valid).sum() / valid.sum()
        return loss, {**collapse_monitors(grid, pred, valid),
                      "context_patches": ctx_valid.sum(-1).mean().astype(jnp.float32)}

    # -- evaluation --------------------------------------------------------------------------
    def eval_params(self, params, target):
        """The student (context) encoder by default, as Point-JEPA's reference validates its SVM
        (with the slow EMA the teacher still carries much of its initialisation in a short run);
        `model.eval_encoder='teacher'` evaluates the EMA teacher, as I-JEPA does."""
        if self.config.model.eval_encoder == "teacher":
            return self.teacher(params, target)
        return params["encoder"]

    def features(self, encoder, points):
        """Max + mean pooled encoder tokens of (B, N, 3) clouds -> (B, 2 * width)."""
        x = self.encoder(encoder, *self.split(points)).astype(jnp.float32)
        return jnp.concatenate([x.max(axis=1), x.mean(axis=1)], axis=-1)

    def outputs(self, encoder, inputs):
        pts = inputs["points"]
        subsets = points_lib.normalize(pts[:, self.subsets])  # (B, S, N, 3)
        b, s = subsets.shape[:2]
        feats = self.features(encoder, subsets.reshape(b * s, *subsets.shape[2:]))
        feats = feats.reshape(b, s, -1)
        return {"features": feats[:, 0], "seed_features": feats}

    def baselines(self):
        subsets = self.subsets

        def d2(arrays):
            hist = points_lib.d2_histogram(points_lib.normalize(arrays["points"][:, subsets]))
            return {"features": hist[:, 0], "seed_features": hist}
        return {"D2 shape distribution": d2}

    # -- cost --------------------------------------------------------------------------------
    def mask_capacity(self) -> tuple[int, int, int]:
        """(context, targets, per-target) token capacities."""
        return self.blocks.context_capacity, self.blocks.num_targets, self.blocks.target_capacity

    def flops_per_step(self, global_batch: int) -> float:
        m = self.config.model
        c, n_t, t = self.mask_capacity()
        h1, h2, h3 = m.pointnet
        per_patch = m.group_size * (flops.linear(1, 3, h1) + flops.linear(1, h1, h2)
                                    + flops.linear(1, 2 * h2, h3) + flops.linear(1, h3, m.width))
        position = lambda rows, width: flops.linear(rows, 3, m.pos_hidden) + flops.linear(
            rows, m.pos_hidden, width)

        def encoder(tokens):
            rows = global_batch * tokens
            return (rows * per_patch + position(rows, m.width)
                    + flops.transformer(global_batch, tokens, m.width, m.depth, m.mlp_ratio))

        queries = global_batch * n_t * t
        predictor = (position(global_batch * c + queries, m.pred_width)
                     + flops.linear(queries, m.pred_width, m.width)
                     + self.predictor_layers_flops(global_batch, c, n_t, t))
        return encoder(m.num_groups) + 3 * (encoder(c) + predictor)

    def predictor_layers_flops(self, batch: int, c: int, n_t: int, t: int) -> float:
        """The plain predictor's context embedding and transformer layers."""
        m = self.config.model
        return (flops.linear(batch * c, m.width, m.pred_width)
                + flops.transformer(batch * n_t, c + t, m.pred_width, m.pred_depth, m.mlp_ratio,
                                    outputs=t))


def token_loss(pred, target, kind: str, beta: float):
    """Per-token loss (..., D) -> (...): smooth-L1 (beta) averaged over channels, or
    1 - cosine similarity."""
    if kind == "cosine":
        cos = jnp.sum(pred * target, -1) / (
            jnp.linalg.norm(pred, axis=-1) * jnp.linalg.norm(target, axis=-1) + 1e-6)
        return 1.0 - cos
    return optax.huber_loss(pred, target, delta=beta).mean(-1) / beta  # == smooth-L1(beta)


def validate(config) -> None:
    m, d = config.model, config.data
    require_positive(m, "model", ("num_groups", "group_size", "width", "depth", "heads",
                                  "pred_width", "pred_depth", "pred_heads", "pos_hidden"))
    if m.width % m.heads or m.pred_width % m.pred_heads:
        raise ConfigError(f"model widths ({m.width}, {m.pred_width}) must be divisible by their "
                          f"heads ({m.heads}, {m.pred_heads})")
    if not 1 <= m.target_layers <= m.depth:
        raise ConfigError(f"model.target_layers={m.target_layers}: average between 1 and "
                          f"model.depth={m.depth} of the teacher's last blocks")
    if m.eval_encoder not in ("student", "teacher"):
        raise ConfigError(f"model.eval_encoder={m.eval_encoder!r}: use 'student' or 'teacher'")
    if m.pointnet_norm not in PointPatchEmbed.NORMS:
        raise ConfigError(f"model.pointnet_norm={m.pointnet_norm!r}: use one of "
                          f"{PointPatchEmbed.NORMS}")
    if not m.norm_eps > 0:
        raise ConfigError(f"model.norm_eps={m.norm_eps} must be positive")
    if len(m.pointnet) != 3 or min(m.pointnet) <= 0:
        raise ConfigError(f"model.pointnet={tuple(m.pointnet)}: give three positive widths")
    if m.num_groups > d.points or m.group_size > d.points:
        raise ConfigError(f"model.num_groups={m.num_groups} and model.group_size={m.group_size} "
                          f"must not exceed data.points={d.points}")
    if d.sample_points < d.points:
        raise ConfigError(f"data.sample_points={d.sample_points} must be >= data.points={d.points}")
    if m.loss not in LOSSES:
        raise ConfigError(f"model.loss={m.loss!r}: use one of {LOSSES}")
    if m.dtype not in DTYPES:
        raise ConfigError(f"model.dtype={m.dtype!r}: use one of {sorted(DTYPES)}")
    if m.attention not in ATTENTION_IMPLEMENTATIONS:
        raise ConfigError(f"model.attention={m.attention!r}: use one of "
                          f"{list(ATTENTION_IMPLEMENTATIONS)}")
    unknown = set(d.augment) - set(points_lib.AUGMENTATIONS)
    if unknown:
        raise ConfigError(f"data.augment has unknown {sorted(unknown)}; use any of "
                          f"{points_lib.AUGMENTATIONS}")
    if d.up_axis not in (0, 1, 2):
        raise ConfigError(f"data.up_axis={d.up_axis}: use 0 (x), 1 (y) or 2 (z)")
    if d.eval_seeds < 1:
        raise ConfigError(f"data.eval_seeds={d.eval_seeds} must be >= 1")
    if np.ndim(d.scale) != 1 or len(d.scale) != 2 or not 0 < d.scale[0] <= d.scale[1]:
        raise ConfigError(f"data.scale={tuple(d.scale)} must be (low, high) with 0 < low <= high")
