"""I-JEPA checkpoints of the official code (facebookresearch/ijepa ``.pth.tar``: ``encoder``,
``predictor`` and ``target_encoder`` state dicts saved from DistributedDataParallel, so keys
start with ``module.``) -> jepax's I-JEPA parameters. A bare encoder state dict is taken as
both the encoder and its target.

Layouts (PyTorch -> jepax): Linear (out, in) -> kernel (in, out); fused qkv (3D, D) -> (D, 3,
heads, head_dim); attention output (D, D) -> (heads, head_dim, D); patch conv (D, C, p, p) ->
(p * p * C, D) in jepax's (row, column, channel) patch order; LayerNorm weight -> scale; the
predictor's mask token (1, 1, Dp) -> (Dp,). The fixed sin-cos position tables in the file are
not parameters in jepax: they are checked against jepax's, which catches a different grid.
"""

from __future__ import annotations

import jax
import numpy as np

from jepax.convert import ConvertError, StateDict
from jepax.layer_stack import unstacked
from jepax.models.posemb import sincos_nd

ENCODER_KEYS = ("encoder", "target_encoder", "predictor")


def from_torch(checkpoint: dict, variant) -> dict:
    heads = variant.config.model.heads, variant.config.model.pred_heads
    return convert_parts(
        checkpoint, variant,
        lambda sd, shapes: _encoder(sd, shapes, heads[0], variant.grid),
        lambda sd, shapes: _predictor(sd, shapes, heads[1], variant.grid))


def convert_parts(checkpoint: dict, variant, encoder, predictor) -> dict:
    """The I-JEPA file layout (also Brain-JEPA's): `encoder(state_dict, shapes)` converts the
    `encoder` and `target_encoder` state dicts, `predictor(...)` the `predictor`; other entries
    (optimizer, epoch, ...) are not weights. A bare encoder state dict is both encoders."""
    # converters fill one entry per block; train.init_from restacks for scan_layers
    shapes = unstacked(jax.eval_shape(variant.init_params, jax.random.key(0)))
    if not any(k in checkpoint for k in ENCODER_KEYS):
        checkpoint = {"encoder": checkpoint, "target_encoder": checkpoint}  # a bare encoder
    params, target = {}, None
    if "encoder" in checkpoint:
        params["encoder"] = encoder(StateDict(checkpoint["encoder"], "encoder"),
                                    shapes["encoder"])
    if "target_encoder" in checkpoint:
        target = encoder(StateDict(checkpoint["target_encoder"], "target_encoder"),
                         shapes["encoder"])
    if "predictor" in checkpoint:
        params["predictor"] = predictor(StateDict(checkpoint["predictor"], "predictor"),
                                        shapes["predictor"])
    return {"params": params, "target": target}


def _encoder(sd: StateDict, shapes, heads: int, grid) -> dict:
    kernel = shapes["tokenizer"]["proj"]["kernel"].shape  # (p * p * C, D)
    width = kernel[1]
    conv = sd.take("patch_embed.proj.weight")
    if conv.ndim != 4 or conv.shape[0] != width or conv.shape[2] * conv.shape[3] * conv.shape[1] != kernel[0]:
        raise ConvertError(f"encoder/patch_embed.proj.weight has shape {conv.shape}; this model "
                           f"embeds patches of {kernel[0]} values into {width} (set "
                           "model.patch_size, data.channels and model.width to the checkpoint's)")
    out = {"tokenizer": {"proj": {
        "kernel": conv.transpose(2, 3, 1, 0).reshape(kernel),
        "bias": sd.take("patch_embed.proj.bias", (width,))}}}
    _check_positions(sd, "pos_embed", width, grid)
    out["transformer"] = transformer(sd, "blocks", "norm", shapes["transformer"], heads)
    sd.check()
    return out


def _predictor(sd: StateDict, shapes, heads: int, grid) -> dict:
    out = predictor(sd, shapes, heads)
    _check_positions(sd, "predictor_pos_embed", shapes["embed"]["kernel"].shape[1], grid)
    sd.check()
    return out


def predictor(sd: StateDict, shapes, heads: int) -> dict:
    """The predictor's embedding, mask token, blocks and projection (I-JEPA's names, also
    Brain-JEPA's); positions are the caller's."""
    d_enc, d_pred = shapes["embed"]["kernel"].shape
    return {"embed": linear(sd, "predictor_embed", d_enc, d_pred),
            "mask_token": sd.take("mask_token", (1, 1, d_pred)).reshape(d_pred),
            "transformer": transformer(sd, "predictor_blocks", "predictor_norm",
                                       shapes["transformer"], heads),
            "proj": linear(sd, "predictor_proj", d_pred, d_enc)}


def transformer(sd: StateDict, blocks: str, norm: str, shapes, heads: int) -> dict:
    out = {"blocks": {}, "norm": layer_norm(sd, norm, shapes["norm"]["scale"].shape[0])}
    for i, block in shapes["blocks"].items():
        d, hidden = block["mlp"]["fc1"]["kernel"].shape
        p = f"{blocks}.{i}"
        qkv_w = sd.take(f"{p}.attn.qkv.weight", (3 * d, d))
        proj_w = sd.take(f"{p}.attn.proj.weight", (d, d))
        out["blocks"][i] = {
            "norm1": layer_norm(sd, f"{p}.norm1", d),
            "attn": {"qkv": {"kernel": qkv_w.T.reshape(d, 3, heads, d // heads),
                             "bias": sd.take(f"{p}.attn.qkv.bias", (3 * d,)).reshape(
                                 3, heads, d // heads)},
                     "proj": {"kernel": proj_w.T.reshape(heads, d // heads, d),
                              "bias": sd.take(f"{p}.attn.proj.bias", (d,))}},
            "norm2": layer_norm(sd, f"{p}.norm2", d),
            "mlp": {"fc1": linear(sd, f"{p}.mlp.fc1", d, hidden),
                    "fc2": linear(sd, f"{p}.mlp.fc2", hidden, d)},
        }
    depth = len(shapes["blocks"])
    if f"{blocks}.{depth}.norm1.weight" in sd.arrays:
        raise ConvertError(f"the checkpoint has more than {depth} {blocks}; set the depth to the "
                           "checkpoint's")
    return out


def linear(sd: StateDict, name: str, d_in: int, d_out: int) -> dict:
    return {"kernel": sd.take(f"{name}.weight", (d_out, d_in)).T,
            "bias": sd.take(f"{name}.bias", (d_out,))}


def layer_norm(sd: StateDict, name: str, d: int) -> dict:
    return {"scale": sd.take(f"{name}.weight", (d,)), "bias": sd.take(f"{name}.bias", (d,))}


def _check_positions(sd: StateDict, key: str, width: int, grid) -> None:
    n = grid[0] * grid[1]
    fits = np.shape(sd.arrays.get(key)) == (1, n, width)
    table = sd.take(key, (1, n, width))  # a missing or misshapen table is listed by check()
    if fits and not np.allclose(table[0], sincos_nd(width, tuple(grid)), atol=1e-4):
        raise ConvertError(f"{sd.where}/{key} is not jepax's 2-D sin-cos table for a "
                           f"{grid[0]}x{grid[1]} grid; set data.image_size / model.patch_size "
                           "to the checkpoint's")
