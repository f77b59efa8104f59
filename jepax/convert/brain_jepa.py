"""Brain-JEPA checkpoints of the official code (Eric-LRL/Brain-JEPA ``.pth.tar``: ``encoder``,
``predictor`` and ``target_encoder`` state dicts saved from DistributedDataParallel, as
I-JEPA's; a bare encoder state dict is taken as both encoders) -> jepax's Brain-JEPA parameters.

Layouts (PyTorch -> jepax), beyond I-JEPA's transformer blocks (jepax.convert.ijepa):

* ``patch_embed.proj``: a Conv2d with kernel (1, p) over the (ROI, time) image, weight
  (D, 1, 1, p) -> the time-patch projection's kernel (p, D);
* ``pos_embed_proj`` (encoder) / ``predictor_2dpe_proj`` (predictor), the code's GradTs_2dPE:
  ``emb_h`` is the fixed sin-cos table of the time-patch index (checked against jepax's, which
  catches another ROI count or time-patch count); with the code's ``add_w='mapping'`` (the
  paper), ``predictor_pos_embed_proj`` is the gradient projection (D/2, k) -> positions' kernel
  (k, D/2) (``model.positions='gradient'``); with ``add_w='origin'`` the fixed ``emb_w`` table
  of the ROI index (``model.positions='sincos'``, checked). ``model.positions='anatomy'`` has
  no counterpart in the code and is refused.

The gradients themselves are not in the file (the code reads them from a CSV at start-up,
``gradient_mapping_450.csv`` in its repository): set ``data.gradients`` to the file the
checkpoint was trained with, or the converted projection sees other inputs.
"""

from __future__ import annotations

import numpy as np

from jepax.convert import ConvertError, StateDict
from jepax.convert.ijepa import convert_parts, linear, predictor, transformer
from jepax.models.posemb import sincos_1d

# the code's add_w setting that stores each positions mode
ADD_W = {"gradient": "mapping", "sincos": "origin"}


def from_torch(checkpoint: dict, variant) -> dict:
    m = variant.config.model
    if m.positions not in ADD_W:
        raise ConvertError(f"model.positions={m.positions!r} has no counterpart in the official "
                           "Brain-JEPA code; its checkpoints have 'gradient' (add_w='mapping') or "
                           "'sincos' (add_w='origin') positions")
    return convert_parts(
        checkpoint, variant,
        lambda sd, shapes: _encoder(sd, shapes, m.heads, variant),
        lambda sd, shapes: _predictor(sd, shapes, m.pred_heads, variant))


def _encoder(sd: StateDict, shapes, heads: int, variant) -> dict:
    patch, width = shapes["tokenizer"]["proj"]["kernel"].shape
    conv = sd.take("patch_embed.proj.weight", (width, 1, 1, patch))
    out = {"tokenizer": {"proj": {"kernel": conv.reshape(width, patch).T,
                                  "bias": sd.take("patch_embed.proj.bias", (width,))}},
           "transformer": transformer(sd, "blocks", "norm", shapes["transformer"], heads)}
    positions = _positions(sd, "pos_embed_proj", width, shapes, variant)
    if positions:
        out["positions"] = positions
    sd.check()
    return out


def _predictor(sd: StateDict, shapes, heads: int, variant) -> dict:
    out = predictor(sd, shapes, heads)
    positions = _positions(sd, "predictor_2dpe_proj", shapes["embed"]["kernel"].shape[1], shapes,
                           variant)
    if positions:
        out["positions"] = positions
    sd.check()
    return out


def _positions(sd: StateDict, prefix: str, width: int, shapes, variant) -> dict:
    """The positions' parameters ({} for fixed sin-cos ones), after checking the fixed tables."""
    rois, time_patches = variant.grid
    mode = variant.config.model.positions
    stored = "mapping" if f"{prefix}.predictor_pos_embed_proj.weight" in sd.arrays else (
        "origin" if f"{prefix}.emb_w" in sd.arrays else None)
    if stored is not None and stored != ADD_W[mode]:
        other = {v: k for k, v in ADD_W.items()}[stored]
        raise ConvertError(f"{sd.where}/{prefix} holds add_w='{stored}' positions; set "
                           f"model.positions={other} (this config has {mode})")
    half = width // 2
    _check_table(sd, f"{prefix}.emb_h", sincos_1d(half, np.tile(np.arange(time_patches), rois)),
                 "the time-patch index")
    if mode == "sincos":
        _check_table(sd, f"{prefix}.emb_w",
                     sincos_1d(half, np.repeat(np.arange(rois), time_patches)), "the ROI index")
        return {}
    k = shapes["positions"]["proj"]["kernel"].shape[0]
    return {"proj": linear(sd, f"{prefix}.predictor_pos_embed_proj", k, half)}


def _check_table(sd: StateDict, key: str, expected: np.ndarray, what: str) -> None:
    fits = np.shape(sd.arrays.get(key)) == expected.shape
    table = sd.take(key, expected.shape)  # a missing or misshapen table is listed by check()
    if fits and not np.allclose(table, expected, atol=1e-4):
        raise ConvertError(f"{sd.where}/{key} is not the sin-cos table of {what} on this "
                           f"{expected.shape[0]}-token grid; set data.rois, data.frames and "
                           "model.patch to the checkpoint's")
