"""Test setup: 8 fake CPU devices, set before jax is imported anywhere."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

assert jax.device_count() == 8, "tests expect 8 fake CPU devices"



import pytest  # noqa: E402


@pytest.fixture(scope="module")
def shared_compiles(tmp_path_factory):
    """A module that marks itself with `pytestmark = pytest.mark.usefixtures("shared_compiles")`
    shares compiled programs between its runs (see tests.helpers.compilation_cache)."""
    from tests.helpers import compilation_cache

    with compilation_cache(tmp_path_factory.mktemp("xla_cache")):
        yield
