"""Official PyTorch checkpoints -> jepax: conversion matches the official modules' outputs,
and a partial or mismatched file is an error naming the keys."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jepax import train
from jepax.config import ConfigError
from jepax.convert import ConvertError, convert_file
from jepax.variants.ijepa import IJEPA
from tests import official_ijepa as official
from tests.helpers import saved_params, small_ijepa

DEPTH, PRED_DEPTH = 2, 2


def variant(**overrides):
    return IJEPA(small_ijepa(model__depth=DEPTH, model__pred_depth=PRED_DEPTH, **overrides))


def official_modules(width=32):
    enc = official.randomize(official.VisionTransformer(28, 4, 1, width, DEPTH, 2), 0)
    target = official.randomize(official.VisionTransformer(28, 4, 1, width, DEPTH, 2), 1)
    pred = official.randomize(official.VisionTransformerPredictor(7, width, 16, PRED_DEPTH, 2), 2)
    return enc, target, pred


def save(path, enc, target, pred, edit=lambda sd: sd):
    torch.save({"encoder": edit(official.ddp_state_dict(enc)),
                "predictor": official.ddp_state_dict(pred),
                "target_encoder": official.ddp_state_dict(target),
                "epoch": 300, "lr": 1e-3}, path)
    return path


def test_official_ijepa_checkpoint_gives_the_official_outputs(tmp_path):
    enc, target, pred = official_modules()
    v = variant()
    converted = convert_file(save(tmp_path / "IN1K.pth.tar", enc, target, pred), v)
    images = np.random.default_rng(0).normal(size=(3, 28, 28, 1)).astype(np.float32)
    as_torch = torch.from_numpy(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        for ours, theirs in ((converted["params"]["encoder"], enc), (converted["target"], target)):
            np.testing.assert_allclose(np.asarray(v.encoder(ours, jnp.asarray(images))),
                                       theirs(as_torch).numpy(), atol=2e-5, rtol=1e-4)
        ctx = np.tile(np.arange(0, 40, 2, dtype=np.int32), (3, 1))
        tgt = np.tile(np.array([41, 42, 43, 45], np.int32), (3, 1))
        z = enc(as_torch)[:, ctx[0]]  # context features, as the predictor receives them
        ours = v.predictor(converted["params"]["predictor"], jnp.asarray(z.numpy()), ctx,
                           np.ones(ctx.shape, bool), tgt[:, None], np.ones((3, 1, 4), bool))
        theirs = pred(z, torch.from_numpy(ctx).long(), torch.from_numpy(tgt).long())
        np.testing.assert_allclose(np.asarray(ours)[:, 0], theirs.numpy(), atol=2e-5, rtol=1e-4)


def test_bare_encoder_state_dict_is_the_encoder_and_its_target(tmp_path):
    enc, _, _ = official_modules()
    path = tmp_path / "encoder.pth"
    torch.save(enc.state_dict(), path)
    converted = convert_file(path, variant())
    np.testing.assert_array_equal(converted["target"]["transformer"]["norm"]["scale"],
                                  enc.norm.weight.detach().numpy())
    assert "predictor" not in converted["params"]


@pytest.mark.parametrize("edit,match", [
    (lambda sd: {k: v for k, v in sd.items() if k != "module.blocks.1.mlp.fc2.bias"},
     r"missing encoder/blocks\.1\.mlp\.fc2\.bias"),
    (lambda sd: {**sd, "module.head.weight": torch.zeros(10, 32)}, r"unexpected encoder/head\.weight"),
    (lambda sd: {**sd, "module.blocks.0.attn.qkv.bias": torch.zeros(95)},
     r"encoder/blocks\.0\.attn\.qkv\.bias has shape \(95,\), this model needs \(96,\)"),
    (lambda sd: {**sd, "module.pos_embed": sd["module.pos_embed"] * 2},
     r"pos_embed is not jepax's 2-D sin-cos table for a 7x7 grid"),
])
def test_partial_or_mismatched_checkpoint_names_the_keys(tmp_path, edit, match):
    path = save(tmp_path / "bad.pth.tar", *official_modules(), edit=edit)
    with pytest.raises(ConvertError, match=match):
        convert_file(path, variant())


def test_deeper_or_wider_checkpoint_is_refused(tmp_path):
    path = save(tmp_path / "wide.pth.tar", *official_modules(width=64))
    with pytest.raises(ConvertError, match="patch_embed.proj.weight has shape"):
        convert_file(path, variant())
    with pytest.raises(ConvertError, match="more than 1 blocks"):
        convert_file(save(tmp_path / "deep.pth.tar", *official_modules()),
                     IJEPA(small_ijepa(model__depth=1, model__pred_depth=PRED_DEPTH)))


def test_unreadable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pth.tar"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConvertError, match="not a readable PyTorch checkpoint"):
        convert_file(path, variant())


def test_init_from_a_published_file_starts_training_from_its_weights(tmp_path):
    enc, target, pred = official_modules()
    path = save(tmp_path / "IN1K.pth.tar", enc, target, pred)
    config = small_ijepa(model__depth=DEPTH, model__pred_depth=PRED_DEPTH,
                         train__init_from=str(path), train__run_steps=1)
    train.run(config, tmp_path / "run")
    ours = saved_params(tmp_path / "run", 1)["target"]["transformer"]["blocks"]["0"]["mlp"]
    official = target.blocks[0].mlp.fc1.weight.detach().numpy().T
    # one EMA step near 0.996 keeps the loaded target within 1% of the file's weights
    assert np.abs(ours["fc1"]["kernel"] - official).max() < 0.01 * np.abs(official).max()
    with pytest.raises(ConvertError, match="more than 1 blocks"):  # before any training
        train.run(small_ijepa(train__init_from=str(path)), tmp_path / "shallow")
    assert not (tmp_path / "shallow" / "checkpoints").exists()


def test_init_from_a_file_of_another_kind_is_a_clear_error(tmp_path):
    path = tmp_path / "weights.npz"
    path.write_bytes(b"numpy")
    with pytest.raises(ConfigError, match=r"is a file jepax cannot read; pass a run's --workdir"):
        train.run(small_ijepa(train__init_from=str(path)), tmp_path / "run")
