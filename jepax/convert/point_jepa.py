"""Point-JEPA checkpoints of the official code (Ayumu-J-S/Point-JEPA: a PyTorch Lightning
``.ckpt`` whose ``state_dict`` holds the ``PointJepa`` module; a bare state dict works too)
-> jepax's Point-JEPA parameters.

Names (PyTorch -> jepax):

* ``tokenizer.embedding.encoder.{first,second}_conv``: the mini-PointNet, Conv1d (kernel 1)
  weights (out, in, 1) -> kernels (in, out) of fc1..fc4; its two BatchNorms, at their running
  statistics (as the code evaluates them), fold into a per-channel scale and bias: jepax's
  ``model.pointnet_norm='frozen_batch'`` (jepax's default LayerNorm has no counterpart);
* ``positional_encoding.{0,2}``: the centre-position MLP (3 -> 128 -> D);
* ``student.blocks`` / ``student.norm``: the encoder (LayerNorm eps 1e-5, torch's default:
  ``model.norm_eps=1e-5``);
* ``teacher.ema_model.blocks`` / ``.norm``: the EMA target's transformer; it embeds with the
  online tokenizer and positions (the code's teacher copies only the blocks), so the target
  gets the student's tokenizer and position MLP. ``teacher.online_model`` repeats the student
  (checked equal);
* ``predictor.{predictor_embed, mask_token, positional_encoding, predictor.blocks,
  predictor.norm, predictor_proj}``: the predictor.

Not weights, or unused by the code's forward pass, and not loaded: ``mask_token`` (the model's
top-level one), ``predictor.predictor_norm`` (the predictor normalizes with
``predictor.predictor.norm``), ``teacher.initted``, ``teacher.step`` and the BatchNorms'
``num_batches_tracked``. The sequencer and the point grouping have no parameters.
"""

from __future__ import annotations

import jax
import numpy as np

from jepax.convert import ConvertError, StateDict
from jepax.convert.ijepa import linear, transformer
from jepax.layer_stack import unstacked

# the reference's layers: BatchNorm in the PointNet, torch's LayerNorm eps, positions before
# every encoder block (its encoder_add_pos_at_every_layer)
REQUIRED = {"pointnet_norm": "frozen_batch", "norm_eps": 1e-5, "pos_every_layer": True}
UNUSED = ("mask_token", "predictor.predictor_norm.weight", "predictor.predictor_norm.bias",
          "teacher.initted", "teacher.step")
BATCHNORM_EPS = 1e-5  # torch.nn.BatchNorm1d's default, the code's


def from_torch(checkpoint: dict, variant) -> dict:
    m = variant.config.model
    wrong = {k: v for k, v in REQUIRED.items() if m[k] != v}
    if wrong:
        flags = " ".join(f"--config.model.{k}={v}" for k, v in wrong.items())
        raise ConvertError(f"official Point-JEPA weights need the reference's layers "
                           f"({', '.join(f'model.{k}={m[k]!r}' for k in wrong)} here); "
                           f"pass {flags}")
    sd = StateDict(checkpoint.get("state_dict", checkpoint), "state_dict")
    if not any(k.startswith("student.") for k in sd.arrays):
        raise ConvertError("the checkpoint has no student.* weights: pass the state dict (or "
                           "Lightning .ckpt) of Point-JEPA pretraining (a fine-tuned "
                           "classification checkpoint is not converted)")
    # converters fill one entry per block; train.init_from restacks for scan_layers
    shapes = unstacked(jax.eval_shape(variant.init_params, jax.random.key(0)))
    enc = shapes["encoder"]
    embed = {"tokenizer": _pointnet(sd, enc["tokenizer"]),
             "pos": _position_mlp(sd, "positional_encoding", enc["pos"])}
    encoder = {**embed, **transformer(sd, "student.blocks", "student.norm", enc, m.heads)}
    target = {**embed, **transformer(sd, "teacher.ema_model.blocks", "teacher.ema_model.norm",
                                     enc, m.heads)}
    _check_online_copy(sd)
    pred = shapes["predictor"]
    d_enc, d_pred = pred["embed"]["kernel"].shape
    predictor = {"embed": linear(sd, "predictor.predictor_embed", d_enc, d_pred),
                 "mask_token": sd.take("predictor.mask_token", (1, 1, d_pred)).reshape(d_pred),
                 "pos": _position_mlp(sd, "predictor.positional_encoding", pred["pos"]),
                 "transformer": transformer(sd, "predictor.predictor.blocks",
                                            "predictor.predictor.norm", pred["transformer"],
                                            m.pred_heads),
                 "proj": linear(sd, "predictor.predictor_proj", d_pred, d_enc)}
    sd.check(ignore=UNUSED + tuple(k for k in sd.arrays if k.endswith("num_batches_tracked")))
    return {"params": {"encoder": encoder, "predictor": predictor}, "target": target}


def _pointnet(sd: StateDict, shapes) -> dict:
    """The mini-PointNet; Conv1d weights (out, in, 1), BatchNorms folded per channel."""
    p = "tokenizer.embedding.encoder"

    def conv(name, layer, bias=True):
        d_in, d_out = shapes[layer]["kernel"].shape
        out = {"kernel": sd.take(f"{p}.{name}.weight", (d_out, d_in, 1))[:, :, 0].T}
        if bias:
            out["bias"] = sd.take(f"{p}.{name}.bias", (d_out,))
        return out

    def batch_norm(name, layer):
        d = shapes[layer]["scale"].shape[0]
        get = lambda stat: sd.take(f"{p}.{name}.{stat}", (d,))
        scale = get("weight") / np.sqrt(get("running_var") + BATCHNORM_EPS)
        return {"scale": scale, "bias": get("bias") - get("running_mean") * scale}

    return {"fc1": conv("first_conv.0", "fc1", bias=False),
            "norm1": batch_norm("first_conv.1", "norm1"), "fc2": conv("first_conv.3", "fc2"),
            "fc3": conv("second_conv.0", "fc3", bias=False),
            "norm2": batch_norm("second_conv.1", "norm2"), "fc4": conv("second_conv.3", "fc4")}


def _position_mlp(sd: StateDict, prefix: str, shapes) -> dict:
    d_in, hidden = shapes["fc1"]["kernel"].shape
    return {"fc1": linear(sd, f"{prefix}.0", d_in, hidden),
            "fc2": linear(sd, f"{prefix}.2", hidden, shapes["fc2"]["kernel"].shape[1])}


def _check_online_copy(sd: StateDict) -> None:
    """teacher.online_model.* is the student saved twice: used only if it is that copy."""
    for key in [k for k in sd.arrays if k.startswith("teacher.online_model.")]:
        twin = "student." + key[len("teacher.online_model."):]
        if twin not in sd.arrays or not np.array_equal(sd.arrays[key], sd.arrays[twin]):
            raise ConvertError(f"state_dict/{key} is not a copy of {twin}, as the official "
                               "code saves it; pass a Point-JEPA checkpoint")
        sd.used.add(key)
