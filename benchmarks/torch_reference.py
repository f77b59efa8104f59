"""PyTorch reference of one I-JEPA training step, for side-by-side timing against jepax.

Same architecture and work as ``jepax.variants.ijepa``: ViT context encoder on the gathered
context tokens, EMA target encoder on the full image (parameter-free LayerNorm on its output),
narrow predictor running all target blocks in one batched call, smooth-L1 loss, AdamW (decay
only on matrices), EMA update. Written the way a PyTorch user would: fused qkv, SDPA, fused /
foreach AdamW, foreach EMA, autocast for bf16, optional ``torch.compile``.

Timed against jepax by ``benchmarks/ijepa_step.py``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INIT_STD = 0.02


def trunc_normal_(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # Cut at +-2 std, as jax.nn.initializers.truncated_normal (jepax) does.
    return nn.init.trunc_normal_(tensor, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD,
                                 generator=generator)


def sincos_2d(dim: int, grid_h: int, grid_w: int) -> torch.Tensor:
    """(grid_h * grid_w, dim) fixed embedding, row-major tokens. MAE convention: the first half
    of the channels encodes the column (w), the second the row (h); each half is sin then cos of
    position * 1 / 10000^(2i / half)."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs dim divisible by 4, got {dim}")
    half = dim // 2
    omega = 1.0 / 10000 ** (torch.arange(half // 2, dtype=torch.float64) / (half / 2.0))
    rows, cols = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64),
                                torch.arange(grid_w, dtype=torch.float64), indexing="ij")

    def embed(pos):
        angles = pos.reshape(-1, 1) * omega
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([embed(cols), embed(rows)], dim=1).float()


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x: (B, N, D), idx: (B, K) -> (B, K, D)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """I-JEPA init: trunc-normal weights, zero biases, unit LayerNorms, then each block's
    residual output projections scaled by 1 / sqrt(2 * layer_id)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            trunc_normal_(m.weight, generator)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, Transformer):
            for layer_id, block in enumerate(m.blocks, start=1):
                block.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))


class Encoder(nn.Module):
    """Conv patch embedding + fixed 2-D sin-cos positions + transformer; no class token."""

    def __init__(self, image_size, patch_size, channels, dim, depth, heads, mlp_ratio):
        super().__init__()
        grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)
        self.register_buffer("pos", sincos_2d(dim, grid, grid), persistent=False)
        self.transformer = Transformer(dim, depth, heads, mlp_ratio)

    def forward(self, images, keep_idx=None):
        x = self.patch_embed(images).flatten(2).transpose(1, 2) + self.pos
        if keep_idx is not None:
            x = gather_tokens(x, keep_idx)
        return self.transformer(x)


class Predictor(nn.Module):
    """[context ; mask token + position per target patch] -> predicted target embeddings; the M
    target blocks of each image run as one batch of B * M sequences."""

    def __init__(self, grid, in_dim, dim, depth, heads, mlp_ratio):
        super().__init__()
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos", sincos_2d(dim, grid, grid), persistent=False)
        self.transformer = Transformer(dim, depth, heads, mlp_ratio)
        self.proj = nn.Linear(dim, in_dim)

    def forward(self, z, ctx_idx, tgt_idx):
        """z: (B, Nc, D), ctx_idx: (B, Nc), tgt_idx: (B, M, Nt) -> (B, M, Nt, D)."""
        b, m, t = tgt_idx.shape
        x = self.embed(z) + self.pos[ctx_idx]
        queries = (self.mask_token + self.pos[tgt_idx.reshape(b * m, t)]).to(x.dtype)
        x = x.repeat_interleave(m, dim=0)  # (B*M, Nc, Dp), image-major like tgt_idx
        out = self.transformer(torch.cat([x, queries], dim=1))[:, -t:]
        return self.proj(out).view(b, m, t, -1)


class TorchIJEPA:
    def __init__(self, *, image_size, patch_size, channels, width, depth, heads, pred_width,
                 pred_depth, pred_heads, lr, weight_decay, ema, device, bf16, compile, seed,
                 mlp_ratio=4.0):
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} not divisible by patch_size {patch_size}")
        self.device = torch.device(device)
        self.ema = float(ema)
        self.autocast = bf16 and self.device.type == "cuda"
        gen = torch.Generator().manual_seed(seed)
        self.encoder = Encoder(image_size, patch_size, channels, width, depth, heads, mlp_ratio)
        self.predictor = Predictor(image_size // patch_size, width, pred_width, pred_depth,
                                   pred_heads, mlp_ratio)
        with torch.no_grad():
            init_weights(self.encoder, gen)
            init_weights(self.predictor, gen)
            trunc_normal_(self.predictor.mask_token, gen)
        self.encoder.to(self.device)
        self.predictor.to(self.device)
        self.target = copy.deepcopy(self.encoder).requires_grad_(False)

        decay, no_decay = [], []
        for module in (self.encoder, self.predictor):
            for name, p in module.named_parameters():
                # mask_token is a vector stored as (1, 1, Dp): jepax keeps it (Dp,), so undecayed.
                vector = p.ndim <= 1 or name.endswith("bias") or name == "mask_token"
                (no_decay if vector else decay).append(p)
        fast = {"fused": True} if self.device.type == "cuda" else {"foreach": True}
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=lr, betas=(0.9, 0.999), eps=1e-8, **fast)
        self._online = list(self.encoder.parameters())
        self._target = list(self.target.parameters())
        self._loss = torch.compile(self._forward_loss) if compile else self._forward_loss

    def _forward_loss(self, images, context_idx, target_idx):
        b, m, t = target_idx.shape
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=self.autocast):
            with torch.no_grad():
                h = self.target(images).float()
                h = F.layer_norm(h, h.shape[-1:])  # default eps 1e-5, as I-JEPA and jepax
                h = gather_tokens(h, target_idx.reshape(b, m * t)).view(b, m, t, -1)
            z = self.encoder(images, context_idx)
            pred = self.predictor(z, context_idx, target_idx)
        return F.smooth_l1_loss(pred.float(), h)

    def step(self, images, context_idx, target_idx) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(images, context_idx, target_idx)
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            torch._foreach_mul_(self._target, self.ema)
            torch._foreach_add_(self._target, self._online, alpha=1.0 - self.ema)
        return loss.detach()

    def to_device(self, images_np, context_idx_np, target_idx_np):
        images = torch.as_tensor(np.asarray(images_np))
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        images = images.float().permute(0, 3, 1, 2).sub(0.5).div(0.5).contiguous()
        to = dict(device=self.device, non_blocking=True)
        return (images.to(**to),
                torch.as_tensor(np.asarray(context_idx_np), dtype=torch.long).to(**to),
                torch.as_tensor(np.asarray(target_idx_np), dtype=torch.long).to(**to))

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def build(*, image_size, patch_size, channels, width, depth, heads, pred_width, pred_depth,
          pred_heads, lr=1e-3, weight_decay=0.04, ema=0.996, device="cpu", bf16=False,
          compile=False, seed=0) -> TorchIJEPA:
    return TorchIJEPA(image_size=image_size, patch_size=patch_size, channels=channels,
                      width=width, depth=depth, heads=heads, pred_width=pred_width,
                      pred_depth=pred_depth, pred_heads=pred_heads, lr=lr,
                      weight_decay=weight_decay, ema=ema, device=device, bf16=bf16,
                      compile=compile, seed=seed)


def random_batch(rng: np.random.Generator, batch, image_size, channels, num_tokens,
                 num_context, num_targets, target_len):
    """Random NHWC uint8 images and valid indices; each target block is disjoint from the
    context (target blocks may overlap each other, as in I-JEPA)."""
    if num_context + target_len > num_tokens:
        raise ValueError("context and one target block do not fit in the grid")
    images = rng.integers(0, 256, (batch, image_size, image_size, channels), dtype=np.uint8)
    perm = np.argsort(rng.random((batch, num_tokens)), axis=1)
    context, rest = perm[:, :num_context], perm[:, num_context:]
    pick = np.argsort(rng.random((batch, num_targets, rest.shape[1])), axis=2)[..., :target_len]
    targets = np.take_along_axis(rest[:, None, :], pick, axis=2)
    return images, context, targets

