"""One XLA CPU device per core (opt-in): call :func:`configure` before anything touches devices.

By default XLA's CPU backend is one device that splits each op across the cores. The small
matrices of CPU-sized models split poorly; with one device per core the mesh runs the step data
parallel instead (each device steps on its share of the batch at the same time). On the 2-core
benchmark machine the cpu-tiny I-JEPA step was 3-20% faster this way (seven interleaved
comparisons, ~10% on average) but compiled 2.5-5 s slower, so it is not the default
(benchmarks/README.md). Only the CPU backend reads this setting: harmless on GPU and TPU hosts.

``config.mesh.cpu_devices``:
* ``0`` (default): XLA's default (one device, multi-threaded ops);
* ``"auto"``: one device per core this process may run on, fewer if the per-process batch does
  not split evenly; single-process runs only (multi-process runs keep one device per process);
* ``N``: N devices.

It cannot change devices JAX has already created (e.g. in a notebook that already ran JAX
code), and a device count set by the user (``--xla_force_host_platform_device_count`` in
``XLA_FLAGS`` or ``jax_num_cpu_devices``) wins; both are logged and left alone.
"""

from __future__ import annotations

import logging
import os

import jax
from jax._src import xla_bridge

from jepax.config import ConfigError

log = logging.getLogger(__name__)


def requested(config) -> int:
    """The device count the config asks for (0: XLA's default)."""
    setting = config.get("mesh", {}).get("cpu_devices", 0)  # studies have no mesh section
    if setting != "auto":
        if not isinstance(setting, int) or setting < 0:
            raise ConfigError(f"mesh.cpu_devices={setting!r}: use 'auto', 0 (XLA's default) or "
                              "a positive device count")
        return setting
    if config.get("distributed", {}).get("mode", "off") != "off":
        return 0
    cores = len(os.sched_getaffinity(0))
    batch = int(config.get("train", {}).get("batch_size", 1))
    return max(n for n in range(1, cores + 1) if batch % n == 0)


def configure(config) -> int:
    """Apply the config's CPU device count; returns the count set (0 when left alone)."""
    count = requested(config)
    if count == 0:
        return 0
    if xla_bridge.backends_are_initialized():
        log.info("mesh.cpu_devices: JAX already created its devices; keeping them")
        return 0
    if ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
            or jax.config.jax_num_cpu_devices != -1):
        log.info("mesh.cpu_devices: the CPU device count was set by the user; keeping it")
        return 0
    jax.config.update("jax_num_cpu_devices", count)
    return count
