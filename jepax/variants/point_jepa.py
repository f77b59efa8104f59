"""Point-JEPA (Saito & Poovvancheri, 2024): JEPA on point-cloud patches, with a
sequencer that makes context and target blocks contiguous regions of the shape.

* tokens: FPS centres + kNN patches embedded by a mini-PointNet, positions from an MLP of the
  centres added before every encoder block (jepax.variants.point_family);
* sequencer: order the centres greedily from the one with the smallest x + y + z to the
  nearest unvisited one (jepax.models.point_ops.nearest_neighbour_order);
* masks (data_pipelines/masks/sequence_blocks.py), drawn once per batch as the reference:
  4 targets of 9-12 consecutive sequence positions (ratio 0.15-0.2 of 64), the context a
  contiguous run of 40-75% of the remaining positions;
* predictor: narrow transformer over [context ; mask token + position per target patch],
  all target blocks batched (the reference loops over them);
* loss: smooth-L1 (beta 2) against the EMA teacher's last block output, layer-normed
  (`model.target_layers=k`: the mean of its last k blocks, each normalized, as point2vec);
* evaluation: the student (context) encoder, as the reference's SVM validation
  (`model.eval_encoder=teacher`: the EMA teacher).

``model.official=True`` reproduces a quirk of the reference: its EMA teacher is a copy of the
transformer blocks only, and embeds patches with the *online* mini-PointNet and position MLP.
By default the whole encoder (tokenizer, positions, blocks) is tracked by the EMA.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from data_pipelines.masks.sequence_blocks import SequenceBlocks
from jepax.models.point_ops import gather_points, nearest_neighbour_order
from jepax.models.point_transformer import PointPredictor
from jepax.variants.point_family import PointFamily

MASK_KEYS = ("context_idx", "context_valid", "target_idx", "target_valid")


class PointJEPA(PointFamily):
    predictor_class = PointPredictor
    mask_class = SequenceBlocks
    replicated_keys = frozenset(MASK_KEYS)  # one mask table per batch

    def tokenize(self, points):
        groups, centres = self.split(points)
        order = nearest_neighbour_order(centres)
        return jnp.take_along_axis(groups, order[:, :, None, None], axis=1), \
            gather_points(centres, order)

    def batch_fn(self):
        def masks(batch, rng):
            return {**batch, **self.blocks(rng)}
        return masks

    def masks(self, batch, centres, rng):
        b = centres.shape[0]
        ctx_idx, ctx_valid, tgt_idx, tgt_valid = (
            jnp.broadcast_to(batch[k], (b,) + batch[k].shape) for k in MASK_KEYS)
        return ctx_idx, ctx_valid, tgt_idx, tgt_valid

    def teacher(self, params, target):
        if not self.config.model.official:
            return target
        online = jax.lax.stop_gradient(params["encoder"])
        return {**target, "tokenizer": online["tokenizer"], "pos": online["pos"]}
