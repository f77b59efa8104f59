"""Two local processes (jax.distributed on 127.0.0.1, gloo CPU collectives) train the same
global batch as one process, with the same losses."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from jepax import train
from jepax.metrics import read_metrics
from tests.helpers import IJEPA, ROOT, small_flags, small_ijepa


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two(workdir, extra=(), port=None):
    port = port or free_port()
    procs = []
    for pid in range(2):
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
               "JAX_PLATFORMS": "cpu"}
        args = [sys.executable, "-m", "jepax.main", f"--config={IJEPA}:tiny",
                f"--workdir={workdir}", *small_flags(), "--config.distributed.mode=explicit",
                f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                "--config.distributed.num_processes=2", f"--config.distributed.process_id={pid}",
                *extra]
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def test_two_processes_match_one(tmp_path):
    single = tmp_path / "single"
    train.run(small_ijepa(), single)
    multi = tmp_path / "multi"
    procs = launch_two(multi)
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "2 processes" in outs[0][1]
    ref = [r["loss"] for r in read_metrics(single)]
    got = [r["loss"] for r in read_metrics(multi)]
    assert len(got) == len(ref) == 6
    np.testing.assert_allclose(got, ref, rtol=2e-5)
    # the data position is the number of global batches drawn, the same for every process
    meta = json.loads((multi / "checkpoints" / "6" / "meta" / "metadata").read_text())
    assert meta["batches_consumed"] == 6
