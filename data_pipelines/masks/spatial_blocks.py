"""3D-JEPA multi-block masks for point tokens (Hu et al., 2024): spatially compact target
blocks and one context block with the targets removed, I-JEPA's recipe on patch centres.

A block is the k patches whose centres are nearest to a randomly chosen patch centre (a ball on
the shape, the point-cloud analogue of a rectangle on the image grid). Per cloud: `num_targets`
target blocks of ``k_t = max(1, round(G * r_t))`` patches and one context block of
``k_c = max(1, round(G * r_c))`` patches minus every target patch; r_t ~ U(target_ratio) and
r_c ~ U(context_ratio) are drawn once per batch (as I-JEPA's collator draws block sizes),
the block centres per cloud. The paper's own settings are not published with code; the
defaults are I-JEPA's scales (targets 0.15-0.2, context 0.85-1.0, four targets).

The blocks depend on the patch centres, which the tokenizer computes on the device, so this
sampler is a jit-able function of (key, centres) called inside the loss with the step's key
(``fold_in(rng, step)``): reproducible, and exact on resume.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from data_pipelines.masks.multiblock import MaskConfigError
from data_pipelines.masks.patch_blocks import PatchBlocks
from jepax.models.point_ops import squared_distances


@dataclasses.dataclass(frozen=True)
class SpatialBlocks(PatchBlocks):
    def check(self):
        smallest_context = self.size(self.context_ratio[0])
        if smallest_context - self.num_targets * self.target_capacity < 1:
            raise MaskConfigError(
                f"a context block of {smallest_context} patches can be covered entirely by "
                f"{self.num_targets} targets of up to {self.target_capacity}; raise "
                "mask.context_ratio or lower mask.target_ratio / mask.num_targets")

    def size(self, ratio):
        return max(1, round(self.tokens * ratio))

    @property
    def target_capacity(self) -> int:
        return self.size(self.target_ratio[1])

    @property
    def context_capacity(self) -> int:
        # The largest context block minus the smallest target (all targets on one ball).
        return min(self.size(self.context_ratio[1]), self.tokens - self.size(self.target_ratio[0]))

    def __call__(self, key, centres):
        """centres (B, G, 3) -> context_idx / context_valid (B, C), target_idx / target_valid
        (B, M, T): patch indices, nearest to their block's centre first; padded entries are
        marked invalid. Every cloud keeps at least one context patch (checked at build)."""
        b, g, _ = centres.shape
        k_size, k_seed, k_ctx = jax.random.split(key, 3)
        r_t, r_c = jax.random.uniform(k_size, (2,))
        n_t = jnp.maximum(1, jnp.round(g * _between(r_t, self.target_ratio)))
        n_c = jnp.maximum(1, jnp.round(g * _between(r_c, self.context_ratio)))
        dist = squared_distances(centres, centres)  # (B, G, G)
        seeds = jax.random.randint(k_seed, (b, self.num_targets), 0, g)
        near = jnp.take_along_axis(dist, seeds[..., None], axis=1)  # (B, M, G)
        tgt_idx = jax.lax.top_k(-near, self.target_capacity)[1]
        tgt_valid = jnp.broadcast_to(jnp.arange(self.target_capacity) < n_t, tgt_idx.shape)
        covered = jnp.zeros((b, g), bool).at[
            jnp.arange(b)[:, None, None], jnp.where(tgt_valid, tgt_idx, tgt_idx[..., :1])].set(True)
        ctx_seed = jax.random.randint(k_ctx, (b, 1), 0, g)
        rank = jnp.argsort(jnp.argsort(jnp.take_along_axis(dist, ctx_seed[..., None], 1)[:, 0]))
        keep = (rank < n_c) & ~covered  # (B, G)
        # Kept patches first (nearest the context centre first), then padding.
        order = jnp.argsort(jnp.where(keep, rank, g + rank), axis=1)[:, :self.context_capacity]
        return order, jnp.take_along_axis(keep, order, 1), tgt_idx, tgt_valid


def _between(u, bounds):
    lo, hi = bounds
    return lo + (hi - lo) * u
