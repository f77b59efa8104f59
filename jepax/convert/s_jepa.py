"""S-JEPA checkpoints in braindecode's layout (``SignalJEPA`` / ``SignalJEPA_Contextual`` state
dicts, as braindecode and the paper's released weights save them) -> jepax's S-JEPA parameters.
The layout mapping lives beside the model (``jepax.models.s_jepa.from_torch_state_dict``); here
the file is checked against this model: every key used or a known downstream head, every array
the shape this config needs (channel count, depth, width, feed-forward size)."""

from __future__ import annotations

import jax

from jepax.convert import ConvertError, StateDict, check_shapes
from jepax.models import s_jepa as model

PARTS = ("feature_encoder.", "pos_encoder.", "transformer.encoder.", "transformer.decoder.")
HEADS = ("final_layer.", "spatial_conv.")  # a fine-tuned model's downstream head: not loaded


def from_torch(checkpoint: dict, variant) -> dict:
    state = StateDict(checkpoint.get("state_dict", checkpoint), "signal_jepa")
    unexpected = sorted(k for k in state.arrays if not k.startswith(PARTS + HEADS))
    if unexpected:
        raise ConvertError(f"the checkpoint does not fit this model: unexpected "
                           f"{', '.join(unexpected[:8])}; pass a braindecode SignalJEPA state dict")
    try:
        params = model.from_torch_state_dict(state.arrays)
    except KeyError as e:
        raise ConvertError(f"the checkpoint does not fit this model: missing signal_jepa/"
                           f"{e.args[0]}; pass a braindecode SignalJEPA state dict") from e
    expected = jax.eval_shape(variant.init_params, jax.random.key(0))
    check_shapes(params["encoder"], expected["encoder"], "encoder")
    if "predictor" in params:
        check_shapes(params["predictor"], expected["predictor"], "predictor")
    return {"params": params, "target": params["encoder"]}
