"""Device mesh, logical axis names and the rules that map them onto mesh axes.

Parameters and activations are annotated with *logical* names (``embed``, ``mlp``, ``heads``,
``batch``, ...). A config's ``mesh.rules`` maps each logical name to mesh axes, so the same model
runs data-parallel, FSDP or tensor-parallel by changing the config only. A dimension that a mesh
axis does not divide is replicated instead, and the sharding report says so.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# Default rules: data parallel + FSDP (parameters' embed dim split over `fsdp`), tensor
# parallelism over `tensor` for MLP hidden units and attention heads.
DEFAULT_RULES = (
    ("batch", BATCH_AXES),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_heads", "tensor"),
)

log = logging.getLogger(__name__)


class MeshError(ValueError):
    """A mesh config that cannot be built on the devices at hand."""


def mesh_shape(mesh_config, num_devices: int) -> tuple[int, ...]:
    """Resolve the config's (data, fsdp, tensor) sizes; at most one may be -1 (fill)."""
    sizes = [int(mesh_config[a]) for a in MESH_AXES]
    fills = [i for i, s in enumerate(sizes) if s == -1]
    if len(fills) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise MeshError(
            f"mesh sizes {dict(zip(MESH_AXES, sizes))} are invalid: use positive sizes and at most "
            "one -1 (fill with the remaining devices), e.g. --config.mesh.data=-1")
    known = math.prod(s for s in sizes if s != -1)
    if fills:
        if num_devices % known:
            raise MeshError(
                f"mesh {dict(zip(MESH_AXES, sizes))} cannot fill {num_devices} devices: "
                f"{num_devices} is not divisible by {known}; pick sizes that divide the device count")
        sizes[fills[0]] = num_devices // known
    if math.prod(sizes) != num_devices:
        raise MeshError(
            f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices but "
            f"{num_devices} are available; set the sizes so their product is {num_devices} "
            "(or use -1 on one axis to fill)")
    return tuple(sizes)


def make_mesh(mesh_config, devices: Sequence[jax.Device] | None = None) -> Mesh:
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(mesh_config, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES),
                         devices=devices)


def rules_from_config(mesh_config) -> dict[str, Any]:
    rules = mesh_config.get("rules", None)
    return dict(DEFAULT_RULES if rules is None else tuple(tuple(r) for r in rules))


def _axes_size(mesh: Mesh, axes) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else axes
    return math.prod(mesh.shape[a] for a in axes)


def logical_to_spec(logical: Sequence[str | None] | None, shape: Sequence[int], mesh: Mesh,
                    rules: dict[str, Any]) -> P:
    """Map logical names to a PartitionSpec, replicating dims the mesh axes don't divide.

    A mesh axis is used at most once per array (the first dim that claims it wins)."""
    if not logical:
        return P()
    used: set[str] = set()
    spec = []
    for name, dim in zip(logical, shape):
        axes = rules.get(name) if name is not None else None
        if axes is not None:
            flat = (axes,) if isinstance(axes, str) else tuple(axes)
            flat = tuple(a for a in flat if mesh.shape[a] > 1 and a not in used)
            if flat and dim % _axes_size(mesh, flat) == 0:
                used.update(flat)
                spec.append(flat[0] if len(flat) == 1 else flat)
                continue
        spec.append(None)
    return P(*spec)


def param_specs(abstract_state: nnx.State, mesh: Mesh, rules) -> Any:
    """PartitionSpecs (as a pure dict) for an nnx.State carrying `out_sharding` metadata."""
    def one(var):
        names = getattr(var, "out_sharding", None) or getattr(var, "sharding", None)
        return logical_to_spec(names, var.get_value().shape, mesh, rules)

    specs = jax.tree.map(one, abstract_state, is_leaf=lambda x: isinstance(x, nnx.Variable))
    return nnx.to_pure_dict(specs) if isinstance(specs, nnx.State) else specs


def constrain(x: jax.Array, logical: Sequence[str | None]) -> jax.Array:
    """Sharding constraint by logical names; a no-op outside a mesh context (e.g. unit tests)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh is None or mesh.empty or not _ACTIVE_RULES:
        return x
    spec = logical_to_spec(logical, x.shape, mesh, _ACTIVE_RULES[-1])
    return jax.lax.with_sharding_constraint(x, spec)


_ACTIVE_RULES: list[dict[str, Any]] = []


class use_rules:
    """Context manager: activation constraints inside use these logical rules."""

    def __init__(self, rules: dict[str, Any]):
        self.rules = rules

    def __enter__(self):
        _ACTIVE_RULES.append(self.rules)
        return self

    def __exit__(self, *exc):
        _ACTIVE_RULES.pop()


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(local: dict[str, np.ndarray], mesh: Mesh,
                 replicated_keys: frozenset[str] = frozenset()) -> dict[str, jax.Array]:
    """Global arrays from each process's local batch: keys in `replicated_keys` are whole on
    every device (each process holds the same value), the rest are split over the batch axes
    along their leading dim (each process holds its slice)."""
    split, whole = batch_sharding(mesh), replicated(mesh)
    shardings = {k: whole if k in replicated_keys else split for k in local}
    if jax.process_count() == 1:
        # The local batch is the global one: one device_put of the whole tree costs about half
        # of assembling each array from process-local data (it sits on the train loop's path).
        return jax.device_put(local, shardings)
    return {k: jax.tree.map(lambda x, sh=shardings[k]: jax.make_array_from_process_local_data(
        sh, x), v) for k, v in local.items()}


def abstract_like(tree: Any) -> Any:
    """Shapes, dtypes and shardings of a tree of jax.Arrays (for AOT compilation)."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), tree)


def path_key(path) -> str:
    """'encoder/transformer/blocks/0/...' for a jax tree path."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def sharding_report(params: Any) -> str:
    """One line per parameter: path, shape, dtype and PartitionSpec."""
    lines = []
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    total = 0
    for path, leaf in flat:
        name = path_key(path)
        spec = leaf.sharding.spec if isinstance(leaf.sharding, NamedSharding) else leaf.sharding
        total += math.prod(leaf.shape)
        lines.append(f"  {name:60s} {str(tuple(leaf.shape)):18s} {str(jnp.dtype(leaf.dtype)):8s} {spec}")
    lines.append(f"  total parameters: {total:,}")
    return "\n".join(lines)
