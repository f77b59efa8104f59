"""S-JEPA / Signal-JEPA networks (Guetschel, Moreau, Tangermann, 2024) as pure functions of
parameter dicts, laid out like braindecode's ``SignalJEPA`` so its state dicts convert
one-to-one (:func:`from_torch_state_dict`).

* local encoder: the same five Conv1d layers for every EEG channel (no bias, GELU, GroupNorm
  after the first only); one 64-d token per channel per second at 128 Hz, channel-major
  (token index = channel * tokens_per_channel + time);
* positions: 30 learnable channel-embedding dims initialised from the electrode's 3-D
  position + 34 fixed temporal sin-cos dims (base 600 s);
* contextual encoder / predictor: PyTorch ``nn.Transformer``'s post-LN encoder and decoder
  (ReLU, dropout 0.1 also on the attention weights, LayerNorm eps 1e-5, a final LayerNorm).

Dropout runs when a key is given (training) and not without one (evaluation, parity).
"""

from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jepax.models.layers import gelu  # exact (erf) GELU, as torch.nn.GELU

CONV_SPEC = ((8, 32, 8), (16, 2, 2), (32, 2, 2), (64, 2, 2), (64, 2, 2))  # (out, kernel, stride)
SPATIAL_DIMS, TEMPORAL_DIMS, MAX_SECONDS = 30, 34, 600


def tokens_per_channel(samples: int, spec=CONV_SPEC) -> int:
    """Output length of the local encoder for `samples` input samples ('valid' convolutions)."""
    for _, kernel, stride in spec:
        samples = (samples - kernel) // stride + 1
    return samples


def receptive_field(spec=CONV_SPEC) -> int:
    """The fewest samples that give one token (152 at the paper's spec: 1.19 s at 128 Hz)."""
    field = 1
    for _, kernel, stride in reversed(spec):
        field = (field - 1) * stride + kernel
    return field


# -- positions ---------------------------------------------------------------------------------
def channel_embedding_init(positions: np.ndarray, dim: int = SPATIAL_DIMS) -> np.ndarray:
    """(C, 3) electrode positions -> (C, dim) initial channel embeddings: dim / 3 dims per
    coordinate, interleaved sin/cos of x / (10 max|x|) at frequencies exp(2 pi (1 - 2i / n))."""
    positions = np.asarray(positions, np.float64)
    per = dim // positions.shape[1]
    if per * positions.shape[1] != dim or per % 2:
        raise ValueError(f"channel embedding width {dim} must be an even multiple of "
                         f"{positions.shape[1]} coordinates")
    freqs = np.exp((1 - np.arange(0, per, 2) / per) * 2 * math.pi)
    scaled = positions / (10 * np.abs(positions).max())
    angles = scaled[:, :, None] * freqs                           # (C, 3, per / 2)
    out = np.stack([np.sin(angles), np.cos(angles)], -1)          # interleave sin, cos
    return out.reshape(len(positions), dim).astype(np.float32)


def temporal_encoding(tokens: int, dim: int = TEMPORAL_DIMS, base: float = MAX_SECONDS):
    """(tokens, dim) fixed sin-cos encoding, frequencies base^(-2i / dim), interleaved."""
    freqs = np.exp(np.arange(0, dim, 2) * (-math.log(base) / dim))
    angles = np.arange(tokens)[:, None] * freqs
    return np.stack([np.sin(angles), np.cos(angles)], -1).reshape(tokens, dim).astype(np.float32)


def position_table(channel_embedding, tokens: int):
    """(C * T, 64) positional encoding of every channel-major token."""
    c = channel_embedding.shape[0]
    spatial = jnp.repeat(channel_embedding, tokens, axis=0)
    temporal = jnp.tile(jnp.asarray(temporal_encoding(tokens)), (c, 1))
    return jnp.concatenate([spatial, temporal], -1)


# -- initialisation ----------------------------------------------------------------------------
def _xavier(key, fan_in, fan_out):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -bound, bound)


def _dense(key, fan_in, fan_out):
    return {"kernel": _xavier(key, fan_in, fan_out), "bias": jnp.zeros(fan_out)}


def _norm(dim):
    return {"scale": jnp.ones(dim), "bias": jnp.zeros(dim)}


def _attention_init(key, dim):
    k1, k2 = jax.random.split(key)
    return {"qkv": {"kernel": _xavier(k1, dim, 3 * dim), "bias": jnp.zeros(3 * dim)},
            "out": _dense(k2, dim, dim)}


def init_conv(key, spec=CONV_SPEC, in_channels: int = 1) -> dict:
    """Kaiming-normal (fan in, gain sqrt 2) kernels in torch's (out, in, kernel) layout."""
    layers = []
    for i, ((out, kernel, _), k) in enumerate(zip(spec, jax.random.split(key, len(spec)))):
        std = math.sqrt(2.0 / (in_channels * kernel))
        layer = {"kernel": std * jax.random.normal(k, (out, in_channels, kernel))}
        if i == 0:
            layer["norm"] = _norm(out)
        layers.append(layer)
        in_channels = out
    return {f"layer{i}": layer for i, layer in enumerate(layers)}


def init_encoder_layer(key, dim, ff):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"self_attn": _attention_init(k1, dim), "ff1": _dense(k2, dim, ff),
            "ff2": _dense(k3, ff, dim), "norm1": _norm(dim), "norm2": _norm(dim)}


def init_decoder_layer(key, dim, ff):
    k1, k2 = jax.random.split(key)
    layer = init_encoder_layer(k1, dim, ff)
    return {**layer, "cross_attn": _attention_init(k2, dim), "norm3": _norm(dim)}


def init_stack(key, depth, dim, ff, decoder: bool = False) -> dict:
    make = init_decoder_layer if decoder else init_encoder_layer
    keys = jax.random.split(key, depth)
    return {"layers": {f"layer{i}": make(keys[i], dim, ff) for i in range(depth)},
            "norm": _norm(dim)}


def init_encoder(key, positions, *, dim=64, depth=8, ff=2048) -> dict:
    """Local encoder + channel embedding + contextual transformer encoder."""
    if dim != SPATIAL_DIMS + TEMPORAL_DIMS:
        raise ValueError(f"S-JEPA's token width is {SPATIAL_DIMS} channel + {TEMPORAL_DIMS} "
                         f"temporal dims = {SPATIAL_DIMS + TEMPORAL_DIMS}, got {dim}")
    k1, k2 = jax.random.split(key)
    return {"conv": init_conv(k1), "channel_embedding": jnp.asarray(channel_embedding_init(positions)),
            "transformer": init_stack(k2, depth, dim, ff)}


# -- layers ------------------------------------------------------------------------------------
def layer_norm(p, x, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"]


def dropout(x, rate, key):
    if key is None or rate == 0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


class _Keys:
    """Distinct dropout keys drawn in order from one key (None: no dropout)."""

    def __init__(self, key):
        self.key, self.count = key, 0

    def __call__(self):
        if self.key is None:
            return None
        self.count += 1
        return jax.random.fold_in(self.key, self.count)


def local_features(conv, signals, spec=CONV_SPEC):
    """(B, C, L) signals -> (B, C * T, 64) channel-major tokens; every channel alone."""
    b, c, length = signals.shape
    x = signals.reshape(b * c, 1, length)
    for i, (_, kernel, stride) in enumerate(spec):
        layer = conv[f"layer{i}"]
        x = jax.lax.conv_general_dilated(x, layer["kernel"], (stride,), "VALID",
                                         dimension_numbers=("NCH", "OIH", "NCH"))
        if "norm" in layer:  # GroupNorm with one group per feature: normalise over time
            mean = x.mean(-1, keepdims=True)
            var = ((x - mean) ** 2).mean(-1, keepdims=True)
            x = (x - mean) * jax.lax.rsqrt(var + 1e-5)
            x = x * layer["norm"]["scale"][:, None] + layer["norm"]["bias"][:, None]
        x = gelu(x)
    tokens = x.shape[-1]
    return x.reshape(b, c, -1, tokens).transpose(0, 1, 3, 2).reshape(b, c * tokens, -1)


def attention(p, queries, keys_values, key_mask, heads, rate, keys: _Keys):
    """nn.MultiheadAttention: fused in-projection, dropout on the attention weights."""
    dim = queries.shape[-1]
    w, bias = p["qkv"]["kernel"], p["qkv"]["bias"]
    q = queries @ w[:, :dim] + bias[:dim]
    k = keys_values @ w[:, dim:2 * dim] + bias[dim:2 * dim]
    v = keys_values @ w[:, 2 * dim:] + bias[2 * dim:]
    split = lambda t: t.reshape(*t.shape[:-1], heads, dim // heads)
    logits = jnp.einsum("bqhd,bkhd->bhqk", split(q), split(k)) / math.sqrt(dim // heads)
    if key_mask is not None:
        logits = jnp.where(key_mask[:, None, None, :], logits, jnp.finfo(logits.dtype).min)
    weights = dropout(jax.nn.softmax(logits, -1), rate, keys())
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, split(v)).reshape(queries.shape)
    return out @ p["out"]["kernel"] + p["out"]["bias"]


def _feed_forward(p, x, rate, keys):
    h = dropout(jax.nn.relu(x @ p["ff1"]["kernel"] + p["ff1"]["bias"]), rate, keys())
    return h @ p["ff2"]["kernel"] + p["ff2"]["bias"]


def encode(stack, x, key_mask=None, *, heads=8, rate=0.1, key=None, all_layers=False):
    """nn.TransformerEncoder (post-LN layers + final LayerNorm). With `all_layers`, also the
    list of every layer's output (before the final norm), for data2vec-style targets."""
    keys, outputs = _Keys(key), []
    for i in range(len(stack["layers"])):
        p = stack["layers"][f"layer{i}"]
        a = attention(p["self_attn"], x, x, key_mask, heads, rate, keys)
        x = layer_norm(p["norm1"], x + dropout(a, rate, keys()))
        x = layer_norm(p["norm2"], x + dropout(_feed_forward(p, x, rate, keys), rate, keys()))
        outputs.append(x)
    final = layer_norm(stack["norm"], x)
    return (final, outputs) if all_layers else final


def decode(stack, queries, memory, memory_mask=None, query_mask=None, *, heads=8, rate=0.1,
           key=None):
    """nn.TransformerDecoder (post-LN layers + final LayerNorm), no causal mask."""
    keys, x = _Keys(key), queries
    for i in range(len(stack["layers"])):
        p = stack["layers"][f"layer{i}"]
        a = attention(p["self_attn"], x, x, query_mask, heads, rate, keys)
        x = layer_norm(p["norm1"], x + dropout(a, rate, keys()))
        a = attention(p["cross_attn"], x, memory, memory_mask, heads, rate, keys)
        x = layer_norm(p["norm2"], x + dropout(a, rate, keys()))
        x = layer_norm(p["norm3"], x + dropout(_feed_forward(p, x, rate, keys), rate, keys()))
    return layer_norm(stack["norm"], x)


def embed_tokens(encoder, signals):
    """Local features + positions of every token: (B, C * T, 64), and T."""
    local = local_features(encoder["conv"], signals)
    tokens = local.shape[1] // signals.shape[1]
    return local + position_table(encoder["channel_embedding"], tokens), tokens


def contextual_features(encoder, signals, *, heads=8):
    """SignalJEPA.forward: (B, C, L) -> (B, C * T, 64), no dropout."""
    x, _ = embed_tokens(encoder, signals)
    return encode(encoder["transformer"], x, heads=heads, rate=0.0)


# -- downstream heads (the paper's three) -----------------------------------------------------
HEADS = ("contextual", "post_local", "pre_local")


def _uniform(key, shape, fan_in):
    bound = 1.0 / math.sqrt(fan_in)  # torch's default for Conv / Linear
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def init_head(key, head: str, channels: int, tokens: int, classes: int, filters: int = 4,
              dim: int = 64) -> dict:
    """A spatial filter (`filters` learned combinations of the `channels`) + a linear layer
    over the filtered tokens. contextual / post_local filter tokens (braindecode's Conv3d
    over channels), pre_local filters the raw signals (its Conv2d) before the local encoder."""
    k = jax.random.split(key, 4)
    features = filters * tokens * dim
    return {"spatial": {"kernel": _uniform(k[0], (channels, filters), channels),
                        "bias": _uniform(k[1], (filters,), channels)},
            "linear": {"kernel": _uniform(k[2], (features, classes), features),
                       "bias": _uniform(k[3], (classes,), features)}}


def head_logits(head: str, encoder, head_params, signals, *, heads=8, key=None, rate=0.1):
    """Class logits of a downstream model: `encoder` is the (pre)trained S-JEPA encoder (only
    its 'conv' part for the local heads)."""
    b, c, _ = signals.shape
    if head == "pre_local":
        spatial = head_params["spatial"]
        filtered = jnp.einsum("bcl,cf->bfl", signals, spatial["kernel"])
        tokens = local_features(encoder["conv"], filtered + spatial["bias"][None, :, None])
        return tokens.reshape(b, -1) @ head_params["linear"]["kernel"] + head_params["linear"]["bias"]
    return filtered_logits(head_params, head_tokens(head, encoder, signals, heads=heads, key=key,
                                                    rate=rate))


def head_tokens(head: str, encoder, signals, *, heads=8, key=None, rate=0.1):
    """(B, C, T, 64) tokens the contextual / post-local heads filter: contextual outputs or
    local features."""
    b, c, _ = signals.shape
    if head == "contextual":
        x, _ = embed_tokens(encoder, signals)
        x = encode(encoder["transformer"], x, heads=heads, rate=rate, key=key)
    elif head == "post_local":
        x = local_features(encoder["conv"], signals)
    else:
        raise ValueError(f"head {head!r} filters no tokens; use contextual or post_local")
    return x.reshape(b, c, -1, x.shape[-1])


def filtered_logits(head_params, tokens):
    """Spatial filter over the channels of (B, C, T, 64) tokens, then the linear layer."""
    spatial, linear = head_params["spatial"], head_params["linear"]
    x = jnp.einsum("bctd,cf->bftd", tokens, spatial["kernel"]) + spatial["bias"][:, None, None]
    return x.reshape(len(tokens), -1) @ linear["kernel"] + linear["bias"]


def head_from_torch_state_dict(state: Mapping[str, np.ndarray]) -> dict:
    """The head of a braindecode SignalJEPA_Contextual / _PostLocal (final_layer.spat_conv,
    final_layer.linear) or _PreLocal (spatial_conv.1, final_layer.1) state dict."""
    s = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, np.float32)
         for k, v in state.items()}
    if "spatial_conv.1.weight" in s:
        w, b, lin = s["spatial_conv.1.weight"], s["spatial_conv.1.bias"], "final_layer.1"
    else:
        w, b, lin = s["final_layer.spat_conv.weight"], s["final_layer.spat_conv.bias"], \
            "final_layer.linear"
    filters = w.shape[0]
    return jax.tree.map(jnp.asarray, {
        "spatial": {"kernel": w.reshape(filters, -1).T, "bias": b},
        "linear": {"kernel": s[lin + ".weight"].T, "bias": s[lin + ".bias"]}})


# -- braindecode state dicts -------------------------------------------------------------------
def from_torch_state_dict(state: Mapping[str, np.ndarray]) -> dict:
    """braindecode ``SignalJEPA`` (or ``SignalJEPA_Contextual``) state dict -> the
    ``{'encoder', 'predictor'}`` parameters of this module (predictor only when the state dict
    has the transformer decoder). Tensors may be torch tensors or arrays."""
    s = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, np.float32)
         for k, v in state.items()}
    conv = {}
    for i in range(len(CONV_SPEC)):
        conv[f"layer{i}"] = {"kernel": s[f"feature_encoder.{i + 1}.0.weight"]}
    conv["layer0"]["norm"] = {"scale": s["feature_encoder.1.2.weight"],
                              "bias": s["feature_encoder.1.2.bias"]}
    encoder = {"conv": conv, "channel_embedding": s["pos_encoder.pos_encoder_spat.weight"],
               "transformer": _torch_stack(s, "transformer.encoder")}
    out = {"encoder": encoder}
    if any(k.startswith("transformer.decoder.") for k in s):
        out["predictor"] = _torch_stack(s, "transformer.decoder")
    return jax.tree.map(jnp.asarray, out)


def _torch_stack(s, prefix):
    dense = lambda name: {"kernel": s[name + ".weight"].T, "bias": s[name + ".bias"]}
    norm = lambda name: {"scale": s[name + ".weight"], "bias": s[name + ".bias"]}
    attn = lambda name: {"qkv": {"kernel": s[name + ".in_proj_weight"].T,
                                 "bias": s[name + ".in_proj_bias"]},
                         "out": dense(name + ".out_proj")}
    layers, i = {}, 0
    while f"{prefix}.layers.{i}.linear1.weight" in s:
        p = f"{prefix}.layers.{i}"
        layer = {"self_attn": attn(p + ".self_attn"), "ff1": dense(p + ".linear1"),
                 "ff2": dense(p + ".linear2"), "norm1": norm(p + ".norm1"),
                 "norm2": norm(p + ".norm2")}
        if f"{p}.multihead_attn.in_proj_weight" in s:
            layer.update(cross_attn=attn(p + ".multihead_attn"), norm3=norm(p + ".norm3"))
        layers[f"layer{i}"] = layer
        i += 1
    return {"layers": layers, "norm": norm(prefix + ".norm")}


def count_params(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))
