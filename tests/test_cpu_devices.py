"""One XLA CPU device per core (jepax.cpu_devices), chosen before JAX starts."""

import os
import re

import pytest

from jepax import cpu_devices
from jepax.config import ConfigError, load_config
from tests.helpers import IJEPA, ROOT, run_main, small_flags, small_ijepa


def test_auto_is_one_device_per_core_dividing_the_batch():
    cores = len(os.sched_getaffinity(0))
    auto = lambda batch: small_ijepa(train__batch_size=batch, mesh__cpu_devices="auto")
    assert cpu_devices.requested(auto(16)) == max(n for n in range(1, cores + 1) if 16 % n == 0)
    assert cpu_devices.requested(auto(7)) in (1, 7)  # 7 is prime


def test_explicit_counts_and_multi_process_runs():
    assert cpu_devices.requested(small_ijepa()) == 0  # XLA's default unless asked
    assert cpu_devices.requested(small_ijepa(mesh__cpu_devices=3)) == 3
    assert cpu_devices.requested(small_ijepa(mesh__cpu_devices="auto",
                                             distributed__mode="auto")) == 0
    assert cpu_devices.requested(load_config(str(ROOT / "experiments" / "deep_linear.py"))) == 0
    with pytest.raises(ConfigError, match="mesh.cpu_devices"):
        cpu_devices.requested(small_ijepa(mesh__cpu_devices="many"))


def test_devices_already_created_are_kept():
    # conftest created 8 fake devices; configure must neither fail nor change them.
    import jax

    assert cpu_devices.configure(small_ijepa(mesh__cpu_devices="auto")) == 0
    assert jax.device_count() == 8


def test_main_trains_on_one_device_per_core(tmp_path):
    expected = cpu_devices.requested(small_ijepa(mesh__cpu_devices="auto"))
    out = run_main([f"--config={IJEPA}:tiny", f"--workdir={tmp_path}", *small_flags(),
                    "--config.mesh.cpu_devices=auto"], env={"XLA_FLAGS": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    mesh = re.search(r"on mesh \{'data': (\d+)", out.stderr)
    assert mesh and int(mesh.group(1)) == expected, out.stderr[-3000:]
