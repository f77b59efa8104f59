"""Test-only PyTorch modules named as the official Point-JEPA code names its parameters
(Ayumu-J-S/Point-JEPA pointjepa/models/point_jepa.py, modules/tokenizer.py, Pointnet.py,
transformer.py, EMA.py): the `state_dict` of its Lightning checkpoints. Written here from those
names and the code's forward pass: a mini-PointNet of kernel-1 Conv1d layers with BatchNorm
(evaluated at its running statistics), a centre-position MLP added before every encoder block,
pre-LN blocks with torch's LayerNorm eps (1e-5), an EMA teacher holding a copy of the blocks,
and a predictor whose context and mask tokens get their positions once."""

from __future__ import annotations

import copy

import torch
from torch import nn

from tests.official_ijepa import Block, randomize


class PointNetSmall(nn.Module):
    def __init__(self, dim, hidden=(128, 256, 512)):
        super().__init__()
        h1, h2, h3 = hidden
        self.first_conv = nn.Sequential(nn.Conv1d(3, h1, 1, bias=False), nn.BatchNorm1d(h1),
                                        nn.ReLU(), nn.Conv1d(h1, h2, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(2 * h2, h3, 1, bias=False),
                                         nn.BatchNorm1d(h3), nn.ReLU(), nn.Conv1d(h3, dim, 1))

    def forward(self, points):  # (B, K, 3) -> (B, dim)
        feature = self.first_conv(points.transpose(2, 1))
        pooled = feature.max(dim=2, keepdim=True).values
        feature = self.second_conv(torch.cat([pooled.expand(-1, -1, feature.shape[2]), feature], 1))
        return feature.max(dim=2).values


class Tokenizer(nn.Module):  # the code's PointcloudTokenizer: grouping has no parameters
    def __init__(self, dim, hidden):
        super().__init__()
        self.embedding = nn.Module()
        self.embedding.encoder = PointNetSmall(dim, hidden)

    def forward(self, groups):  # (B, G, K, 3) -> (B, G, dim)
        b, g, k, _ = groups.shape
        return self.embedding.encoder(groups.reshape(b * g, k, 3)).reshape(b, g, -1)


def position_mlp(dim):
    return nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))


class TransformerEncoder(nn.Module):
    def __init__(self, dim, depth, heads, pos_every_layer):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, eps=1e-5) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.pos_every_layer = pos_every_layer

    def forward(self, x, pos):
        if not self.pos_every_layer:
            x = x + pos
        for block in self.blocks:
            x = block(x + pos if self.pos_every_layer else x)
        return self.norm(x)


class TransformerPredictor(nn.Module):
    def __init__(self, dim, pred_dim, depth, heads):
        super().__init__()
        self.predictor_embed = nn.Linear(dim, pred_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, pred_dim))
        self.positional_encoding = position_mlp(pred_dim)
        self.predictor_norm = nn.LayerNorm(pred_dim)  # defined, unused by the forward pass
        self.predictor_proj = nn.Linear(pred_dim, dim)
        self.predictor = TransformerEncoder(pred_dim, depth, heads, pos_every_layer=False)

    def forward(self, z, ctx_centres, tgt_centres):  # add_target_pos=True, as the paper's config
        x = self.predictor_embed(z)
        b, t = tgt_centres.shape[:2]
        queries = self.positional_encoding(tgt_centres) + self.mask_token.repeat(b, t, 1)
        pos = torch.cat([self.positional_encoding(ctx_centres), queries], dim=1)
        x = torch.cat([x, torch.zeros(b, t, x.shape[-1])], dim=1)
        return self.predictor_proj(self.predictor(x, pos)[:, z.shape[1]:])


class EMA(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.online_model = model
        self.ema_model = copy.deepcopy(model)
        self.register_buffer("initted", torch.Tensor([True]))
        self.register_buffer("step", torch.tensor([0]))


class PointJepa(nn.Module):
    def __init__(self, dim, depth, heads, pred_dim, pred_depth, pred_heads, hidden):
        super().__init__()
        self.positional_encoding = position_mlp(dim)
        self.tokenizer = Tokenizer(dim, hidden)
        self.mask_token = nn.Parameter(torch.zeros(dim))  # defined, unused by the forward pass
        self.student = TransformerEncoder(dim, depth, heads, pos_every_layer=True)
        self.predictor = TransformerPredictor(dim, pred_dim, pred_depth, pred_heads)
        self.teacher = EMA(self.student)

    def encode(self, groups, centres, teacher=False):
        """The student's (or the teacher's) output tokens of patches (B, G, K, 3)."""
        encoder = self.teacher.ema_model if teacher else self.student
        return encoder(self.tokenizer(groups), self.positional_encoding(centres))


def random_point_jepa(seed, **sizes) -> PointJepa:
    """Random weights everywhere (the teacher's differ from the student's) and random BatchNorm
    statistics, in eval mode (BatchNorm at its running statistics, as the code evaluates)."""
    model = randomize(PointJepa(**sizes), seed)
    randomize(model.teacher.ema_model, seed + 1)
    gen = torch.Generator().manual_seed(seed + 2)
    for bn in (model.tokenizer.embedding.encoder.first_conv[1],
               model.tokenizer.embedding.encoder.second_conv[1]):
        bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=gen) * 0.1)
        bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=gen) + 0.5)
    return model.eval()
