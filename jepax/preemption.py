"""Preemption: turn SIGTERM (what TPU/GPU schedulers send before eviction) into a clean stop.

Single process: a signal handler sets a flag that the train loop polls after every step (and
evaluation polls between batches); the loop then checkpoints, waits for the write to commit
and returns. Several processes: all of them must stop at the *same* step, so the decision comes
from JAX's preemption sync service (``multihost_utils.reached_preemption_sync_point``), which
propagates a notice received by any process and picks a common step.
"""

from __future__ import annotations

import logging
import signal
import threading

import jax
from jax.experimental import multihost_utils

log = logging.getLogger("jepax")


class Preempted(Exception):
    """Raised from long non-step work (evaluation) when a stop was requested."""


class PreemptionGuard:
    SIGNALS = (signal.SIGTERM,)

    def __init__(self):
        self.requested = False
        self.multiprocess = jax.process_count() > 1
        self._previous = {}
        # Multi-process runs use JAX's own SIGTERM handling (the preemption sync service);
        # signal handlers can only be installed from the main thread.
        if not self.multiprocess and threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if not self.requested:
            log.warning("received signal %d: finishing the current step, then checkpointing "
                        "and exiting", signum)
        self.requested = True

    def stop_at(self, step: int) -> bool:
        """Call once per step on every process: True when all processes should stop here."""
        if self.multiprocess:
            self.requested = self.requested or multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def check(self) -> None:
        """Poll from work between steps (single process): raise Preempted if a stop was asked."""
        if self.requested and not self.multiprocess:
            raise Preempted()

    def close(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
