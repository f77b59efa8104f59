"""Official Brain-JEPA and Point-JEPA checkpoints -> jepax: the converted encoders (context and
target) and predictors give the official modules' outputs (tests/official_brain_jepa.py,
tests/official_point_jepa.py), train.init_from takes the files, and a partial, mismatched or
differently configured file is an error naming the keys or the setting to change."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

from jepax.config import load_config
from jepax.convert import ConvertError, convert_file
from jepax.models.point_ops import group_points
from jepax.variants.brain_jepa import BrainJEPA
from jepax.variants.point_jepa import PointJEPA
from tests import official_brain_jepa as brain
from tests import official_point_jepa as point
from tests.helpers import ROOT, load_through_init_from
from tests.official_ijepa import ddp_state_dict, randomize

# fp32 rounding: a LayerNorm eps of 1e-6 instead of 1e-5 already moves the outputs by ~7e-6
TOL = dict(atol=2e-6, rtol=1e-5)
ROIS, PATCH, TIME_PATCHES, GRADIENT_DIMS = 8, 4, 10, 3  # the code's positions hard-code 10


def drop(key):
    return lambda sd: {k: v for k, v in sd.items() if k != key}


# -- Brain-JEPA ----------------------------------------------------------------------------
def brain_config(tmp_path, **model):
    gradients = np.random.default_rng(0).normal(size=(ROIS, GRADIENT_DIMS))
    np.savetxt(tmp_path / "gradient_mapping.csv", gradients, delimiter=",")
    c = load_config(str(ROOT / "experiments" / "brain_jepa.py") + ":tiny")
    c.model.update(patch=PATCH, width=32, depth=2, heads=2, pred_width=16, pred_depth=2,
                   pred_heads=2, **model)
    table = str(tmp_path / "gradient_mapping.csv")  # 3 columns: also serves as ROI centres
    c.data.update(rois=ROIS, frames=PATCH * TIME_PATCHES, gradients=table, coordinates=table)
    c.logging.update(progress=False, tensorboard=False)
    return c


def brain_official(tmp_path, add_w="mapping", width=32):
    table = np.loadtxt(tmp_path / "gradient_mapping.csv", delimiter=",")
    gradient, grid = torch.from_numpy(table).float()[None], (ROIS, TIME_PATCHES)
    make = lambda seed: randomize(
        brain.VisionTransformer(gradient, grid, PATCH, width, 2, 2, add_w), seed)
    pred = randomize(brain.VisionTransformerPredictor(gradient, grid, width, 16, 2, 2, add_w), 2)
    return make(0), make(1), pred


def save_brain(path, enc, target, pred, edit=lambda sd: sd):
    torch.save({"encoder": edit(ddp_state_dict(enc)), "predictor": ddp_state_dict(pred),
                "target_encoder": ddp_state_dict(target), "epoch": 300, "lr": 1e-3}, path)
    return path


@pytest.mark.parametrize("positions,add_w", [("gradient", "mapping"), ("sincos", "origin")])
def test_official_brain_jepa_checkpoint_gives_the_official_outputs(tmp_path, positions, add_w):
    v = BrainJEPA(brain_config(tmp_path, positions=positions))
    enc, target, pred = brain_official(tmp_path, add_w)
    converted = convert_file(save_brain(tmp_path / "jepa-ep300.pth.tar", enc, target, pred), v)
    bold = np.random.default_rng(1).normal(size=(2, ROIS, PATCH * TIME_PATCHES)).astype(np.float32)
    as_torch = torch.from_numpy(bold)[:, None]
    with torch.no_grad():
        for ours, theirs in ((converted["params"]["encoder"], enc), (converted["target"], target)):
            np.testing.assert_allclose(np.asarray(jax.jit(v.encoder)(ours, bold)),
                                       theirs(as_torch).numpy(), **TOL)
        ctx = np.tile(np.arange(0, 60, 3, dtype=np.int32), (2, 1))
        tgt = np.tile(np.array([61, 62, 70, 79], np.int32), (2, 1))
        z = enc(as_torch)[:, ctx[0]]
        ours = jax.jit(v.predictor)(converted["params"]["predictor"], z.numpy(), ctx,
                           np.ones(ctx.shape, bool), tgt[:, None], np.ones((2, 1, 4), bool))
        theirs = pred(z, torch.from_numpy(ctx).long(), torch.from_numpy(tgt).long())
        np.testing.assert_allclose(np.asarray(ours)[:, 0], theirs.numpy(), **TOL)


@pytest.mark.parametrize("edit,setting,match", [
    (drop("module.pos_embed_proj.predictor_pos_embed_proj.bias"), {},
     r"missing encoder/pos_embed_proj\.predictor_pos_embed_proj\.bias"),
    (lambda sd: {**sd, "module.fc_norm.weight": torch.zeros(32)}, {},
     r"unexpected encoder/fc_norm\.weight"),
    (None, {"model__positions": "sincos"},
     r"add_w='mapping' positions; set model\.positions=gradient"),
    (None, {"model__positions": "anatomy"}, r"model\.positions='anatomy' has no counterpart"),
    (None, {"model__patch": 8, "data__frames": 80},
     r"patch_embed\.proj\.weight has shape \(32, 1, 1, 4\), this model needs \(32, 1, 1, 8\)"),
    (None, {"data__frames": 48},
     r"pos_embed_proj\.emb_h has shape \(80, 16\), this model needs \(96, 16\)"),
])
def test_partial_or_mismatched_brain_checkpoint_names_the_problem(tmp_path, edit, setting, match):
    c = brain_config(tmp_path)
    for key, value in setting.items():
        section, name = key.split("__")
        c[section][name] = value
    path = save_brain(tmp_path / "bad.pth.tar", *brain_official(tmp_path),
                      edit=edit or (lambda sd: sd))
    with pytest.raises(ConvertError, match=match):
        convert_file(path, BrainJEPA(c))


def test_init_from_an_official_brain_jepa_file_loads_encoder_and_target(tmp_path):
    config = brain_config(tmp_path)
    enc, target, pred = brain_official(tmp_path)
    config.train.init_from = str(save_brain(tmp_path / "jepa-ep300.pth.tar", enc, target, pred))
    v, state = load_through_init_from(config)
    bold = np.random.default_rng(2).normal(size=(2, ROIS, PATCH * TIME_PATCHES)).astype(np.float32)
    with torch.no_grad():
        for ours, theirs in ((state.params["encoder"], enc), (state.target, target)):
            np.testing.assert_allclose(np.asarray(jax.jit(v.encoder)(ours, bold)),
                                       theirs(torch.from_numpy(bold)[:, None]).numpy(), **TOL)
    predictor = state.params["predictor"]["mask_token"]  # not a transferred part: left as it was
    np.testing.assert_array_equal(predictor, np.zeros_like(predictor))


# -- Point-JEPA ----------------------------------------------------------------------------
SIZES = dict(dim=32, depth=2, heads=2, pred_dim=16, pred_depth=2, pred_heads=2, hidden=(8, 16, 24))


def point_config(**overrides):
    c = load_config(str(ROOT / "experiments" / "point_jepa.py") + ":tiny")
    c.model.update(num_groups=16, group_size=8, pointnet=SIZES["hidden"], width=32, depth=2,
                   heads=2, pred_width=16, pred_depth=2, pred_heads=2, pos_hidden=128,
                   pointnet_norm="frozen_batch", norm_eps=1e-5)
    c.data.points = 256
    c.logging.update(progress=False, tensorboard=False)
    for key, value in overrides.items():
        section, name = key.split("__")
        c[section][name] = value
    return c


def save_point(path, model, edit=lambda sd: sd):
    """As Lightning saves it: the state dict beside (here: tensor-only) training metadata."""
    torch.save({"state_dict": edit(model.state_dict()), "epoch": 499, "global_step": 81000}, path)
    return path


@pytest.fixture(scope="module")
def point_file(tmp_path_factory):
    model = point.random_point_jepa(0, **SIZES)
    return model, save_point(tmp_path_factory.mktemp("point_jepa") / "pretrain.ckpt", model)


def test_official_point_jepa_checkpoint_gives_the_official_outputs(point_file):
    model, path = point_file
    v = PointJEPA(point_config())
    converted = convert_file(path, v)
    points = np.random.default_rng(0).normal(size=(2, 256, 3)).astype(np.float32)
    grouped = jax.jit(group_points, static_argnums=(1, 2))(points, 16, 8)
    groups, centres = (np.array(a) for a in grouped)
    g, c = torch.from_numpy(groups), torch.from_numpy(centres)
    with torch.no_grad():
        for ours, teacher in ((converted["params"]["encoder"], False), (converted["target"], True)):
            np.testing.assert_allclose(np.asarray(jax.jit(v.encoder)(ours, groups, centres)),
                                       model.encode(g, c, teacher).numpy(), **TOL)
        ctx, tgt = np.arange(0, 10), np.arange(11, 15)
        z = model.encode(g, c)[:, ctx]
        ours = jax.jit(v.predictor)(converted["params"]["predictor"], z.numpy(),
                                    centres[:, ctx], np.ones((2, 10), bool),
                                    centres[:, None, tgt], np.ones((2, 1, 4), bool))
        theirs = model.predictor(z, c[:, ctx], c[:, tgt])
        np.testing.assert_allclose(np.asarray(ours)[:, 0], theirs.numpy(), **TOL)


@pytest.mark.parametrize("edit,overrides,match", [
    (None, {"model__pointnet_norm": "layer", "model__norm_eps": 1e-6},
     r"model\.pointnet_norm='layer', model\.norm_eps=1e-06 here\); pass "
     r"--config\.model\.pointnet_norm=frozen_batch --config\.model\.norm_eps=1e-05$"),
    (None, {"model__pos_every_layer": False}, r"pass --config\.model\.pos_every_layer=True$"),
    (drop("tokenizer.embedding.encoder.second_conv.1.running_var"),
     {}, r"missing state_dict/tokenizer\.embedding\.encoder\.second_conv\.1\.running_var"),
    (lambda sd: {**sd, "cls_head.0.weight": torch.zeros(4, 64)}, {},
     r"unexpected state_dict/cls_head\.0\.weight"),
    (lambda sd: {**sd, "teacher.online_model.norm.bias": torch.zeros(32)}, {},
     r"teacher\.online_model\.norm\.bias is not a copy of student\.norm\.bias"),
    (None, {"model__depth": 1}, r"more than 1 student\.blocks"),
    (None, {"model__pointnet": (8, 16, 32)},
     r"second_conv\.0\.weight has shape \(24, 32, 1\), this model needs \(32, 32, 1\)"),
])
def test_partial_or_mismatched_point_checkpoint_names_the_problem(point_file, tmp_path, edit,
                                                                 overrides, match):
    model, path = point_file
    if edit is not None:
        path = save_point(tmp_path / "bad.ckpt", model, edit)
    with pytest.raises(ConvertError, match=match):
        convert_file(path, PointJEPA(point_config(**overrides)))


def test_init_from_an_official_point_jepa_file_loads_encoder_and_target(point_file):
    model, path = point_file
    v, state = load_through_init_from(point_config(train__init_from=str(path)))
    target = state.target["blocks"][0]["mlp"]["fc1"]["kernel"]
    np.testing.assert_array_equal(
        target, model.teacher.ema_model.blocks[0].mlp.fc1.weight.detach().numpy().T)
    pointnet = model.tokenizer.embedding.encoder
    np.testing.assert_array_equal(state.params["encoder"]["tokenizer"]["fc4"]["bias"],
                                  pointnet.second_conv[3].bias.detach().numpy())
    with pytest.raises(ConvertError, match="pass --config.model.norm_eps=1e-05"):
        load_through_init_from(point_config(train__init_from=str(path), model__norm_eps=1e-6))
