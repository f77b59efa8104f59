"""The PyTorch I-JEPA benchmark reference (benchmarks/torch_reference.py): training behaviour,
EMA, weight-decay groups, positional embedding and init."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import torch_reference as tr  # noqa: E402
from jepax.models.posemb import sincos_2d as jax_sincos_2d  # noqa: E402

TINY = dict(image_size=32, patch_size=8, channels=3, width=64, depth=2, heads=2,
            pred_width=32, pred_depth=2, pred_heads=2)
GRID = 4  # 32 / 8
BATCH, NC, M, NT = 8, 8, 3, 4


def make(**overrides):
    return tr.build(**{**TINY, **overrides})


def inputs(model, seed=0):
    return model.to_device(*tr.random_batch(np.random.default_rng(seed), BATCH, 32, 3,
                                            GRID * GRID, NC, M, NT))


def test_loss_finite_and_decreasing():
    model = make(lr=1e-3)
    batch = inputs(model)
    losses = [model.step(*batch).item() for _ in range(20)]
    assert all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < 0.8 * losses[0], losses


def test_target_gets_no_gradient_and_follows_ema():
    model = make(ema=0.9)
    old = [p.detach().clone() for p in model.target.parameters()]
    model.step(*inputs(model))
    for p in model.target.parameters():
        assert not p.requires_grad and p.grad is None
    new_online = list(model.encoder.parameters())
    changed = 0
    for t, o, p in zip(model.target.parameters(), old, new_online):
        torch.testing.assert_close(t, 0.9 * o + 0.1 * p.detach(), rtol=1e-5, atol=1e-7)
        changed += int(not torch.equal(t, o))
    assert changed > 0
    # The online encoder moved, so the target now differs from it.
    assert not all(torch.equal(t, p) for t, p in zip(model.target.parameters(), new_online))


def test_weight_decay_only_on_matrices():
    lr, wd = 0.1, 0.5
    model = make(lr=lr, weight_decay=wd)
    decay, no_decay = (g["params"] for g in model.optimizer.param_groups)
    named = {**{f"enc.{n}": p for n, p in model.encoder.named_parameters()},
             **{f"pred.{n}": p for n, p in model.predictor.named_parameters()}}
    ids = {id(p) for p in decay}
    for name, p in named.items():
        is_vector = p.ndim == 1 or name.endswith("bias") or name.endswith("mask_token")
        assert (id(p) in ids) != is_vector, name
    assert len(decay) + len(no_decay) == len(named)
    assert [g["weight_decay"] for g in model.optimizer.param_groups] == [wd, 0.0]
    # With zero gradients Adam's update is 0: only decoupled decay moves the parameters.
    before = {n: p.detach().clone() for n, p in named.items()}
    for p in named.values():
        p.grad = torch.zeros_like(p)
    model.optimizer.step()
    for name, p in named.items():
        factor = 1.0 if id(p) not in ids else 1.0 - lr * wd
        torch.testing.assert_close(p.detach(), before[name] * factor, msg=name)


def test_sincos_2d_halves_and_parity_with_jax():
    dim = 32
    pos = tr.sincos_2d(dim, 3, 5)
    grid = pos.view(3, 5, dim)
    # first half: column only (same for every row); second half: row only.
    assert torch.equal(grid[:, :, : dim // 2], grid[:1, :, : dim // 2].expand(3, -1, -1))
    assert torch.equal(grid[:, :, dim // 2:], grid[:, :1, dim // 2:].expand(-1, 5, -1))
    assert not torch.equal(grid[0, 0, : dim // 2], grid[0, 1, : dim // 2])
    # sin then cos, lowest frequency 1 for the first channel of each quarter.
    torch.testing.assert_close(grid[0, 2, 0], torch.tensor(math.sin(2.0)))
    torch.testing.assert_close(grid[2, 0, dim // 2 + dim // 4], torch.tensor(math.cos(2.0)))
    np.testing.assert_allclose(pos.numpy(), jax_sincos_2d(dim, 3, 5), atol=1e-6)


def test_residual_projections_rescaled_per_layer():
    model = make(width=128, depth=4, heads=4)
    for layer_id, block in enumerate(model.encoder.transformer.blocks, start=1):
        base = block.attn.qkv.weight.std().item()
        expected = 1.0 / math.sqrt(2.0 * layer_id)
        assert block.attn.proj.weight.std().item() / base == pytest.approx(expected, rel=0.05)
        assert block.mlp.fc2.weight.std().item() / base == pytest.approx(expected, rel=0.05)
        assert block.mlp.fc1.weight.std().item() / base == pytest.approx(1.0, rel=0.05)
    # Truncated at 2 std (as jepax): std of a N(0,1) truncated to [-2, 2] is 0.8796.
    w = model.encoder.transformer.blocks[0].attn.qkv.weight
    assert w.abs().max().item() <= 0.04 + 1e-7
    assert w.std().item() == pytest.approx(0.02 * 0.8796, rel=0.03)


def test_batched_predictor_matches_one_block_at_a_time():
    model = make()
    images, ctx, tgt = inputs(model, seed=1)
    with torch.no_grad():
        z = model.encoder(images, ctx)
        batched = model.predictor(z, ctx, tgt)
        for j in range(M):
            single = model.predictor(z, ctx, tgt[:, j: j + 1])[:, 0]
            torch.testing.assert_close(batched[:, j], single, rtol=1e-4, atol=1e-5)


def test_to_device_and_random_batch():
    images, ctx, tgt = tr.random_batch(np.random.default_rng(2), BATCH, 32, 3, GRID * GRID,
                                       NC, M, NT)
    for b in range(BATCH):
        assert len(set(ctx[b])) == NC
        for j in range(M):
            assert len(set(tgt[b, j])) == NT and not set(tgt[b, j]) & set(ctx[b])
    x, c, t = make().to_device(images, ctx, tgt)
    assert x.shape == (BATCH, 3, 32, 32) and x.dtype == torch.float32
    assert c.dtype == t.dtype == torch.long and t.shape == (BATCH, M, NT)
    torch.testing.assert_close(x[0, 1, 2, 3], torch.tensor(images[0, 2, 3, 1] / 127.5 - 1.0,
                                                             dtype=torch.float32))
