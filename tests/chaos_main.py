"""`python -m tests.chaos_main MARKERS <jepax.main flags>`: the real entry point (jepax.main), with
marker files written at the moments the chaos test kills at, so each kill lands where it says.

Markers (files in MARKERS, named <moment>-<pid>-<n>): ``compile`` when the step starts compiling,
``eval`` / ``evaldone`` around each evaluation, ``commit`` after a checkpoint's files are written
and before orbax commits them by renaming the directory; the commit then waits COMMIT_WAIT
seconds, so a kill sent on seeing the marker lands between the write and the commit.
"""

import os
import signal
import sys

# `python -m jepax.main` records SIGTERM/SIGINT from process start (jepax/__init__.py); this
# launcher is located as another module, so it records them itself until jepax is loaded.
_early = []
for _sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(_sig, lambda signum, frame: _early.append(signum))

from jepax import preemption  # noqa: E402 - after the early handler

preemption.install(command_line=True)
for _signum in _early:
    os.kill(os.getpid(), _signum)  # hand what arrived meanwhile to the real handler

import asyncio  # noqa: E402
import itertools  # noqa: E402
from pathlib import Path  # noqa: E402

from orbax.checkpoint._src.path import atomicity  # noqa: E402

from jepax import experiment, main  # noqa: E402
from jepax.evaluators import runner  # noqa: E402

COMMIT_WAIT = 0.3
MARKERS = Path(sys.argv.pop(1))
_count = itertools.count()


def mark(moment: str) -> None:
    (MARKERS / f"{moment}-{os.getpid()}-{next(_count)}").touch()


def _marked(moment, fn, done=None):
    def wrapper(*args, **kwargs):
        mark(moment)
        out = fn(*args, **kwargs)
        if done:
            mark(done)
        return out
    return wrapper


_finalize = atomicity.AtomicRenameTemporaryPath.finalize


async def _finalize_marked(self, *args, **kwargs):
    if self.get_final().name.isdigit():  # the step directory (items are finalized inside it)
        mark("commit")
        await asyncio.sleep(COMMIT_WAIT)
    return await _finalize(self, *args, **kwargs)


experiment.Setup.compile = _marked("compile", experiment.Setup.compile)
runner.EvalRunner.__call__ = _marked("eval", runner.EvalRunner.__call__, done="evaldone")
atomicity.AtomicRenameTemporaryPath.finalize = _finalize_marked

if __name__ == "__main__":
    main.run()
