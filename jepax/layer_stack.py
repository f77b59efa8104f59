"""Transformer blocks stored stacked (one parameter array per kind, a leading layer axis) for
`model.scan_layers`, and conversion between that layout and one entry per block.

Per block: ``.../blocks/{0,1,...}/attn/qkv/kernel`` of shape S; stacked:
``.../blocks/attn/qkv/kernel`` of shape (depth, *S). `relayout` turns a tree of either layout
into the other's, so weights saved with the switch off load into a model with it on (and back):
`train.init_from` and the converters go through it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jepax.sharding import path_key


def stack_modules(modules: list[nnx.Module]) -> nnx.Module:
    """One module of the same structure whose every variable stacks the modules' variables on a
    new leading axis (sharding names get a leading unsharded axis; per-layer init scales are
    kept as a tuple for `functional.draw_deferred`)."""
    graphdef, _ = nnx.split(modules[0])

    def stack(*variables):
        first = variables[0]
        meta = {}
        if getattr(first, "out_sharding", None) is not None:
            meta["out_sharding"] = (None, *first.out_sharding)
        stds = [getattr(v, "init_std", None) for v in variables]
        if stds[0] is not None:
            meta["init_std"] = tuple(stds)
        return first.replace(jnp.stack([v.get_value() for v in variables]), **meta)

    states = [nnx.state(m) for m in modules]
    stacked = jax.tree.map(stack, *states, is_leaf=lambda x: isinstance(x, nnx.Variable))
    return nnx.merge(graphdef, stacked)


def stacked_layers(path) -> bool:
    """Whether the parameter at a jax tree path is stored stacked (a leading layer axis):
    it sits under `blocks` with no block number after it."""
    names = path_key(path).split("/")
    return any(a == "blocks" and not b.isdigit() for a, b in zip(names, names[1:]))


def per_block(tree) -> bool:
    """Whether a `blocks` entry holds one subtree per block (keys 0, 1, ... or '0', '1', ...;
    checkpoints store list indices as strings)."""
    return isinstance(tree, dict) and bool(tree) and all(str(k).isdigit() for k in tree)


def _stack(leaves):
    if all(isinstance(x, (np.ndarray, jax.Array)) for x in leaves):
        return np.stack([np.asarray(x) for x in leaves])
    return jax.ShapeDtypeStruct((len(leaves), *leaves[0].shape), leaves[0].dtype)  # shapes only


def _take(leaf, i: int):
    if isinstance(leaf, (np.ndarray, jax.Array)):
        return leaf[i]
    return jax.ShapeDtypeStruct(tuple(leaf.shape[1:]), leaf.dtype)


def _stacked(blocks: dict):
    return jax.tree.map(lambda *xs: _stack(xs), *(blocks[k] for k in sorted(blocks, key=int)))


def _split(blocks: dict) -> dict:
    depth = jax.tree.leaves(blocks)[0].shape[0]
    return {i: jax.tree.map(lambda x: _take(x, i), blocks) for i in range(depth)}


def _get(tree: dict, key):
    """tree[key], where list indices may be ints in one tree and strings in the other."""
    for k in (key, str(key), *((int(key),) if str(key).isdigit() else ())):
        if k in tree:
            return tree[k]
    return None


def relayout(tree, like):
    """`tree` (nested dicts of arrays, or of anything with .shape and .dtype) with every
    `blocks` entry stacked or split as the same entry of `like` is; everything else as is."""
    if not isinstance(tree, dict) or not isinstance(like, dict):
        return tree
    out = {}
    for key, sub in tree.items():
        other = _get(like, key)
        if key == "blocks" and other is not None:
            if per_block(sub) and not per_block(other):
                sub = _stacked(sub)
            elif per_block(other) and not per_block(sub):
                sub = _split(sub)
        out[key] = sub if other is None else relayout(sub, other)
    return out


def unstacked(tree):
    """`tree` with every stacked `blocks` entry split into one entry per block."""
    if not isinstance(tree, dict):
        return tree
    return {key: unstacked(_split(sub) if key == "blocks" and isinstance(sub, dict)
                           and not per_block(sub) else sub)
            for key, sub in tree.items()}
