"""One run per workdir: an exclusive lock held for the whole run.

``<workdir>/lock`` names its owner (pid, host, start time, command). The lock itself is an
``flock`` on that file, which the kernel drops when the owner dies, however it dies, so a
killed run never blocks the next one: its leftover file is reported as stale and taken over.
Where the file system cannot lock (``ENOLCK``/``EOPNOTSUPP``: some network file systems), the
record decides: a live process on this host, or any process on another host, holds the lock
(the message says how to clear it if that run is gone).

In a multi-process run process 0 holds the lock for all of them.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import sys
from pathlib import Path

log = logging.getLogger("jepax")

LOCK_NAME = "lock"


class WorkdirLocked(RuntimeError):
    """Another run is using the workdir."""


def _describe(owner: dict) -> str:
    return (f"pid {owner.get('pid')} on host {owner.get('host')} (started "
            f"{owner.get('started')}: {owner.get('command')})")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class WorkdirLock:
    """acquire() (WorkdirLocked if another run holds it) ... release(); see exclusive()."""

    def __init__(self, workdir: str | Path):
        self.path = Path(workdir) / LOCK_NAME
        self.fd: int | None = None

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def _refuse(self, owner: dict, how: str) -> WorkdirLocked:
        return WorkdirLocked(
            f"workdir {self.path.parent} is in use by another run: {_describe(owner)}{how}. "
            "Wait for it to finish or stop it, or pass another --workdir")

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked_by_kernel = True
            except BlockingIOError:
                os.close(fd)
                raise self._refuse(self._read(), "") from None
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    os.close(fd)
                    raise
                locked_by_kernel = False
            try:  # an owner that released the lock may have unlinked the file meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        owner = self._read()
        if owner and owner.get("pid") != os.getpid():
            on_this_host = owner.get("host") == socket.gethostname()
            if not locked_by_kernel and (not on_this_host or _alive(int(owner.get("pid", 0)))):
                os.close(fd)
                raise self._refuse(owner, (
                    f"; this file system cannot lock files, so if that run is gone, delete "
                    f"{self.path} and rerun"))
            log.warning("taking over a stale lock of %s: that run ended without releasing it "
                        "(killed or crashed)", _describe(owner))
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now().isoformat(timespec="seconds"),
                  "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()  # while still locked: the next run creates a fresh file
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


@contextlib.contextmanager
def exclusive(workdir: str | Path):
    """Hold the workdir's lock for the block (process 0 of a multi-process run, for all);
    WorkdirLocked on every process if another run holds it."""
    import jax

    workdir_lock = WorkdirLock(workdir)
    refusal = None
    if jax.process_index() == 0:
        try:
            workdir_lock.acquire()
        except WorkdirLocked as e:
            refusal = e
    if jax.process_count() > 1:
        import numpy as np
        from jax.experimental import multihost_utils

        if not multihost_utils.broadcast_one_to_all(np.int32(refusal is None)):
            refusal = refusal or WorkdirLocked(
                f"workdir {workdir} is in use by another run (process 0 says which)")
    if refusal is not None:
        raise refusal
    try:
        yield
    finally:
        workdir_lock.release()
