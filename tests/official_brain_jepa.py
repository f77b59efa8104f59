"""Test-only PyTorch modules named as the official Brain-JEPA code names its parameters
(Eric-LRL/Brain-JEPA src/models/vision_transformer.py): an I-JEPA ViT (tests/official_ijepa.py's
blocks) on (ROI, time) inputs with a (1, p) patch conv and GradTs_2dPE positions: fixed sin-cos
of the time patch (`emb_h`) beside a min-max rescaled projection of the ROI gradients
(add_w='mapping') or a fixed sin-cos of the ROI index (add_w='origin', `emb_w`). Written here
from those names and the code's forward pass, with its own sin-cos (float64, [sin | cos])."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.official_ijepa import Block


def _sincos(dim, positions):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=float) / (dim / 2.0))
    out = np.einsum("m,d->md", positions.reshape(-1).astype(float), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def _fixed(table):
    return nn.Parameter(torch.from_numpy(table).float(), requires_grad=False)


class GradTs2dPE(nn.Module):
    def __init__(self, gradient_dims, dim, grid, add_w):
        super().__init__()
        rois, time_patches = grid
        # the code's meshgrid(w, h): row 0 holds the time-patch index, row 1 the ROI index
        time, roi = np.meshgrid(np.arange(time_patches), np.arange(rois))
        self.time_patches, self.add_w = time_patches, add_w
        self.emb_h = _fixed(_sincos(dim // 2, time))
        if add_w == "mapping":
            self.predictor_pos_embed_proj = nn.Linear(gradient_dims, dim // 2)
        else:
            self.emb_w = _fixed(_sincos(dim // 2, roi))

    def forward(self, gradient):  # (1, ROI, k) -> (1, ROI * time_patches, dim)
        if self.add_w == "mapping":
            w = self.predictor_pos_embed_proj(gradient).squeeze()
            w = w.repeat_interleave(self.time_patches, dim=0)
            w = (w - w.min()) / (w.max() - w.min()) * 2 - 1
        else:
            w = self.emb_w
        return torch.cat([self.emb_h, w], dim=1)[None]


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=(1, patch), stride=(1, patch))


class VisionTransformer(nn.Module):
    def __init__(self, gradient, grid, patch, dim, depth, heads, add_w="mapping"):
        super().__init__()
        self.gradient_pos_embed = gradient  # a plain tensor: not in the state dict
        self.patch_embed = PatchEmbed(patch, dim)
        self.pos_embed_proj = GradTs2dPE(gradient.shape[-1], dim, grid, add_w)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, bold):  # (B, 1, ROI, T)
        x = self.patch_embed.proj(bold).flatten(2).transpose(1, 2)
        x = x + self.pos_embed_proj(self.gradient_pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class VisionTransformerPredictor(nn.Module):
    def __init__(self, gradient, grid, dim, pred_dim, depth, heads, add_w="mapping"):
        super().__init__()
        self.gradient_pos_embed = gradient
        self.predictor_embed = nn.Linear(dim, pred_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, pred_dim))
        self.predictor_2dpe_proj = GradTs2dPE(gradient.shape[-1], pred_dim, grid, add_w)
        self.predictor_blocks = nn.ModuleList(Block(pred_dim, heads) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(pred_dim, eps=1e-6)
        self.predictor_proj = nn.Linear(pred_dim, dim)

    def forward(self, z, ctx_idx, tgt_idx):
        """z: (B, C, D) context features, ctx_idx (B, C), tgt_idx (B, T) -> (B, T, D)."""
        pos = self.predictor_2dpe_proj(self.gradient_pos_embed)[0]
        x = self.predictor_embed(z) + pos[ctx_idx]
        x = torch.cat([x, self.mask_token + pos[tgt_idx]], dim=1)
        for block in self.predictor_blocks:
            x = block(x)
        return self.predictor_proj(self.predictor_norm(x)[:, ctx_idx.shape[1]:])
