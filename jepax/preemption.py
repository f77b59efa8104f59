"""Stop requests: SIGTERM (what TPU/GPU schedulers send before eviction) and SIGINT (Ctrl-C)
become a clean stop.

A signal handler only records the request; the train loop polls it before every step (and
evaluation between batches), then checkpoints the current step, waits for the write to commit
and returns. A request that arrives before the loop runs (while modules load, the config is
checked or the step compiles) stops the run before its first step, with nothing written. A
second Ctrl-C exits at once (status 130), as a kill would: commits are atomic, so what is on
disk is complete (in a notebook it raises KeyboardInterrupt instead). ``python -m jepax.main`` installs the handler
at process start (jepax/__init__.py); ``train.run`` installs it for its duration otherwise.

Several processes: all of them must stop at the *same* step, so the decision comes from JAX's
preemption sync service (``multihost_utils.reached_preemption_sync_point``), which propagates a
SIGTERM received by any process and picks a common step; those runs keep the default SIGINT.

No jax import at module level: this module is loaded before anything heavy.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("jepax")

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_requested: int | None = None  # the signal that asked for a stop, until the run handles it
_command_line = False  # set by `python -m jepax.main`: a second Ctrl-C ends the process


class Preempted(Exception):
    """Raised from work outside the step loop (evaluation, start-up) when a stop was requested."""


def _handle(signum, frame):
    global _requested
    if _requested is not None and signum == signal.SIGINT:
        if not _command_line:
            raise KeyboardInterrupt  # a notebook's second interrupt: stop the cell now
        # A second Ctrl-C: exit now, as a kill would (commits are atomic, so every checkpoint
        # on disk is complete); an exception here would surface inside whatever library code
        # is running, with its traceback.
        os.write(2, b"jepax: error: interrupted again: exiting at once, without a final "
                    b"checkpoint; rerun the same command to resume from the last one\n")
        os._exit(130)
    if _requested is None:
        # os.write, not logging: the handler may interrupt the logging module mid-write.
        os.write(2, f"jepax: received {signal.Signals(signum).name}: stopping at the next safe "
                    "point (the checkpoint of the current step); Ctrl-C again exits at once\n"
                    .encode())
    _requested = signum


def install(command_line: bool = False) -> dict:
    """Record SIGTERM/SIGINT instead of dying; returns the previous handlers (for
    :func:`restore`). Does nothing outside the main thread, where Python cannot set handlers.
    `command_line`: this process is `python -m jepax.main` (a second Ctrl-C exits at once;
    elsewhere, e.g. in a notebook, it raises KeyboardInterrupt)."""
    global _command_line
    if threading.current_thread() is not threading.main_thread():
        return {}
    _command_line = _command_line or command_line
    return {sig: signal.signal(sig, _handle) for sig in SIGNALS}


def restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def requested() -> str | None:
    """Name of the signal that asked for a stop (None: no request)."""
    return None if _requested is None else signal.Signals(_requested).name


def clear() -> None:
    """Forget a handled request (the next run in this process starts afresh)."""
    global _requested
    _requested = None


class PreemptionGuard:
    """The stop requests of one run: installs the handler (single process) for its lifetime."""

    def __init__(self, multiprocess: bool):
        self.multiprocess = multiprocess
        # Multi-process runs use JAX's own SIGTERM handling (the preemption sync service).
        self._previous = {} if multiprocess else install()

    @property
    def requested(self) -> str | None:
        return requested()

    def stop_at(self, step: int) -> bool:
        """Call once per step on every process: True when all processes should stop here."""
        if self.multiprocess:
            from jax.experimental import multihost_utils

            return multihost_utils.reached_preemption_sync_point(step)
        return _requested is not None

    def check(self) -> None:
        """Poll from work outside the step loop (single process): raise Preempted if a stop
        was requested."""
        if _requested is not None and not self.multiprocess:
            raise Preempted(requested())

    def close(self) -> None:
        restore(self._previous)
        self._previous = {}
