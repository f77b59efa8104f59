"""Test-only PyTorch modules named as the official I-JEPA code names its parameters
(facebookresearch/ijepa src/models/vision_transformer.py): the state dicts its ``.pth.tar``
checkpoints hold. Written here from those names and the architecture (pre-LN ViT, fused qkv
with bias, exact GELU, LayerNorm eps 1e-6, fixed 2-D sin-cos tables stored as parameters)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from jepax.models.posemb import sincos_nd


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, eps=1e-6):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=eps), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=eps), MLP(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, channels, dim):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)


def _positions(grid, dim):
    return nn.Parameter(torch.from_numpy(np.array(sincos_nd(dim, (grid, grid))))[None],
                        requires_grad=False)


class VisionTransformer(nn.Module):
    def __init__(self, image_size, patch, channels, dim, depth, heads):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, channels, dim)
        self.pos_embed = _positions(image_size // patch, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, images):  # (B, C, H, W)
        x = self.patch_embed.proj(images).flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class VisionTransformerPredictor(nn.Module):
    def __init__(self, grid, dim, pred_dim, depth, heads):
        super().__init__()
        self.predictor_embed = nn.Linear(dim, pred_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, pred_dim))
        self.predictor_pos_embed = _positions(grid, pred_dim)
        self.predictor_blocks = nn.ModuleList(Block(pred_dim, heads) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(pred_dim, eps=1e-6)
        self.predictor_proj = nn.Linear(pred_dim, dim)

    def forward(self, z, ctx_idx, tgt_idx):
        """z: (B, C, D) context features, ctx_idx (B, C), tgt_idx (B, T) -> (B, T, D)."""
        pos = self.predictor_pos_embed[0]
        x = self.predictor_embed(z) + pos[ctx_idx]
        x = torch.cat([x, self.mask_token + pos[tgt_idx]], dim=1)
        for block in self.predictor_blocks:
            x = block(x)
        return self.predictor_proj(self.predictor_norm(x)[:, ctx_idx.shape[1]:])


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random values in every trainable parameter (biases and norms too), so a conversion that
    mixes up any of them changes the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if p.ndim == 1 else 0.05))
    return module


def ddp_state_dict(module: nn.Module) -> dict:
    """As the official training saves it: from DistributedDataParallel, keys start 'module.'."""
    return {f"module.{k}": v for k, v in module.state_dict().items()}
