"""Multi-process runtime: call :func:`maybe_initialize` before anything touches devices.

Modes (``config.distributed.mode``):
* ``off`` (default): one process, all local devices;
* ``auto``: ``jax.distributed.initialize()`` detects the cluster (TPU pod slices, SLURM,
  Kubernetes/GKE, Open MPI environment);
* ``explicit``: coordinator address, process count and this process's id from the config or the
  ``JEPAX_COORDINATOR_ADDRESS`` / ``JEPAX_NUM_PROCESSES`` / ``JEPAX_PROCESS_ID`` environment.

On CPU, cross-process collectives use gloo.
"""

from __future__ import annotations

import logging
import os

import jax

from jepax.config import ConfigError

log = logging.getLogger(__name__)


def _explicit_args(d) -> dict:
    address = d.coordinator_address or os.environ.get("JEPAX_COORDINATOR_ADDRESS", "")
    num = d.num_processes or int(os.environ.get("JEPAX_NUM_PROCESSES", "0"))
    pid = d.process_id if d.process_id >= 0 else int(os.environ.get("JEPAX_PROCESS_ID", "-1"))
    if not address or num < 1 or not 0 <= pid < num:
        raise ConfigError(
            "distributed.mode='explicit' needs a coordinator address (host:port of process 0), "
            "the process count and this process's id in [0, count): set "
            "--config.distributed.coordinator_address/num_processes/process_id or the "
            f"JEPAX_COORDINATOR_ADDRESS/NUM_PROCESSES/PROCESS_ID environment (got {address!r}, "
            f"{num}, {pid})")
    return {"coordinator_address": address, "num_processes": num, "process_id": pid}


def maybe_initialize(config) -> None:
    d = config.distributed
    if d.mode == "off" or jax.distributed.is_initialized():
        return
    if d.mode not in ("auto", "explicit"):
        raise ConfigError(f"distributed.mode={d.mode!r}: use off, auto or explicit")
    kwargs = _explicit_args(d) if d.mode == "explicit" else {}
    # Only the CPU backend reads this; accelerators use their own collectives.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(initialization_timeout=d.initialization_timeout,
                               heartbeat_timeout_seconds=d.heartbeat_timeout, **kwargs)
    log.info("distributed: process %d of %d, %d local / %d global devices", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count())
