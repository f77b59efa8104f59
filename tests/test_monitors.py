"""The collapse monitors every variant logs (jepax/variants/monitors.py) and the loop's warning."""

import json
import logging

import numpy as np
import pytest

from jepax import train
from jepax.variants.monitors import collapse_monitors, token_std
from tests.helpers import small_ijepa

pytestmark = pytest.mark.usefixtures("shared_compiles")


def test_target_std_is_zero_when_every_input_gives_the_same_targets_even_with_positional_spread():
    rng = np.random.default_rng(0)
    per_position = rng.normal(size=(1, 6, 8))            # differs by token, not by input
    same = np.repeat(per_position, 4, axis=0)            # (B=4, N=6, D=8)
    pred = rng.normal(size=(4, 2, 3, 8))
    m = collapse_monitors(same, pred)
    assert float(m["target_std"]) < 1e-6 and float(m["target_std_min"]) < 1e-6
    assert float(token_std(same)) > 0.5                  # a std over all tokens would miss it


def test_target_std_is_measured_on_layer_normed_targets_so_scale_does_not_matter():
    x = np.random.default_rng(1).normal(size=(16, 5, 32))
    a, b = collapse_monitors(x, x), collapse_monitors(1000.0 * x + 7.0, x)
    np.testing.assert_allclose(float(a["target_std"]), float(b["target_std"]), rtol=1e-4)
    # independent unit normals, layer-normed: the std across examples is close to 1
    assert 0.9 < float(a["target_std"]) < 1.1 and float(a["target_std_min"]) < float(a["target_std"])


def test_pred_std_counts_only_valid_tokens():
    pred = np.zeros((2, 3, 4), np.float32)
    pred[:, 2] = np.random.default_rng(2).normal(size=(2, 4)) * 100  # padding slot: garbage
    valid = np.array([[1, 1, 0], [1, 1, 0]], np.float32)
    assert float(token_std(pred, valid)) == 0.0
    assert float(token_std(pred)) > 1.0


class Recorded(logging.Handler):
    """The jepax logger's warnings, kept in a list."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def collapse_warnings(config, workdir):
    handler = Recorded()
    logger = logging.getLogger("jepax")
    logger.addHandler(handler)
    try:
        train.run(config, workdir)
    finally:
        logger.removeHandler(handler)
    return [m for m in handler.messages if "logging.collapse_warning" in m]


def test_the_loop_warns_once_when_target_std_falls_below_the_threshold(tmp_path):
    # I-JEPA's tiny model reads target_std ~0.1 at every step: below 1.0 from the first
    warned = collapse_warnings(small_ijepa(logging__collapse_warning=1.0), tmp_path / "low")
    assert len(warned) == 1 and warned[0].startswith("step 1: target_std="), warned
    events = [json.loads(line) for line in (tmp_path / "low" / "metrics.jsonl").open()]
    assert [e["step"] for e in events if e.get("event") == "collapse_warning"] == [1]
    assert collapse_warnings(small_ijepa(logging__collapse_warning=0.0), tmp_path / "off") == []
