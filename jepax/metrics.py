"""Metric writers: JSONL (always), TensorBoard (tensorboardX) and a console progress bar.

Only process 0 writes. Per-step device metrics are fetched one step late (after the next step
is dispatched), so logging never stalls the accelerator queue.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

log = logging.getLogger(__name__)


def _scalar(v):
    v = np.asarray(v)
    return v.item() if v.ndim == 0 else v.tolist()


class MetricsWriter:
    def __init__(self, workdir: str | Path, *, total_steps: int, start_step: int,
                 tensorboard: bool, progress: bool, log_every: int):
        self.active = jax.process_index() == 0
        self.path = Path(workdir) / "metrics.jsonl"
        self.log_every = log_every
        self.total_steps = total_steps
        self.tb = None
        self.bar = None
        if not self.active:
            return
        self._truncate_after(start_step)
        self.file = open(self.path, "a", buffering=1)
        if tensorboard:
            from tensorboardX import SummaryWriter
            self.tb = SummaryWriter(str(Path(workdir) / "tensorboard"))
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                            file=sys.stderr, mininterval=1.0)

    def _truncate_after(self, step: int) -> None:
        """Drop records past `step` (written by a run that died before its next checkpoint), so
        the file holds one record per step after a resume."""
        if not self.path.exists():
            return
        kept = [json.dumps(r) for r in _records(self.path) if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(self.path)

    def rewind(self, step: int) -> None:
        """Forget records past `step` (after a rollback to an earlier checkpoint)."""
        if self.active:
            self.file.close()
            self._truncate_after(step)
            self.file = open(self.path, "a", buffering=1)
            if self.bar is not None:
                self.bar.n = step

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.active:
            return
        record = {"step": step, "time": time.time(),
                  **{k: _scalar(v) for k, v in metrics.items() if v is not None}}
        self.file.write(json.dumps(record) + "\n")
        if step % self.log_every == 0 or step == self.total_steps:
            if self.tb is not None:
                for k, v in record.items():
                    if k not in ("step", "time") and isinstance(v, (int, float)) and math.isfinite(v):
                        self.tb.add_scalar(k, v, step)
            if self.bar is not None:
                shown = {k: record[k] for k in ("loss", "examples_per_s", "data_wait_frac", "mfu")
                         if record.get(k) is not None}
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def write_event(self, name: str, **values) -> None:
        """A one-off record (compile time, evaluation results, rollbacks)."""
        if self.active:
            self.file.write(json.dumps({"event": name, "time": time.time(), **values}) + "\n")

    def close(self) -> None:
        if not self.active:
            return
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        self.file.close()


def _records(path: Path) -> list[dict]:
    """Parsed lines; a torn last line (the process was killed mid-write) is dropped."""
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def read_metrics(workdir: str | Path) -> list[dict]:
    """Per-step records of a run (events excluded)."""
    return [r for r in _records(Path(workdir) / "metrics.jsonl")
            if "step" in r and "event" not in r]
