"""Two local processes (jax.distributed on 127.0.0.1, gloo CPU collectives) train the same
global batch as one process, with the same losses."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from jepax import train
from jepax.metrics import read_metrics
from tests.helpers import IJEPA, ROOT, small_flags, small_ijepa


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_two(workdir, extra=(), port=None, slurm_job=None):
    """Two local processes of one run: explicit coordinates, or (`slurm_job`) the environment
    SLURM's srun gives each task, read by distributed.mode=auto."""
    port = port or free_port()
    procs = []
    for pid in range(2):
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
               "JAX_PLATFORMS": "cpu"}
        if slurm_job is None:
            mode = ["--config.distributed.mode=explicit",
                    f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                    "--config.distributed.num_processes=2",
                    f"--config.distributed.process_id={pid}"]
        else:
            mode = ["--config.distributed.mode=auto"]
            env.update(SLURM_JOB_ID=str(slurm_job), SLURM_STEP_NODELIST="localhost",
                       SLURM_NTASKS="2", SLURM_PROCID=str(pid), SLURM_LOCALID=str(pid),
                       SLURM_STEP_NUM_NODES="1")
        args = [sys.executable, "-m", "jepax.main", f"--config={IJEPA}:tiny",
                f"--workdir={workdir}", *small_flags(), *mode, *extra]
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def slurm_job_with_free_port() -> int:
    """A job id whose coordinator port (JAX: 61440 + id mod 4096) is free here."""
    for job in range(1000 + os.getpid() % 3000, 1000 + 4096):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 61440 + job % 4096))
                return job
            except OSError:
                continue
    raise RuntimeError("no free port in 61440-65535")


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The one-process reference run."""
    workdir = tmp_path_factory.mktemp("single")
    train.run(small_ijepa(), workdir)
    return workdir


def finish(procs):
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


def test_two_processes_match_one(single, tmp_path):
    multi = tmp_path / "multi"
    outs = finish(launch_two(multi))
    assert "2 processes" in outs[0][1]
    ref = [r["loss"] for r in read_metrics(single)]
    got = [r["loss"] for r in read_metrics(multi)]
    assert len(got) == len(ref) == 6
    np.testing.assert_allclose(got, ref, rtol=2e-5)
    # the data position is the number of global batches drawn, the same for every process
    meta = json.loads((multi / "checkpoints" / "6" / "meta" / "metadata").read_text())
    assert meta["batches_consumed"] == 6


def test_slurm_tasks_find_each_other_with_auto_mode(single, tmp_path):
    """What `srun python -m jepax.main ... --config.distributed.mode=auto` does on a cluster
    (docs/multihost.md): each task reads its rank and the coordinator from SLURM's variables."""
    multi = tmp_path / "slurm"
    outs = finish(launch_two(multi, slurm_job=slurm_job_with_free_port()))
    assert "process 0 of 2" in outs[0][1] and "process 1 of 2" in outs[1][1]
    np.testing.assert_allclose([r["loss"] for r in read_metrics(multi)],
                               [r["loss"] for r in read_metrics(single)], rtol=2e-5)
