"""Evaluators on data with known answers."""

import numpy as np

from jepax.evaluators.knn import knn
from jepax.evaluators.linear_probe import linear_probe
from jepax.evaluators.rankme import rankme


def blobs(n, d=16, classes=4, sep=4.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, sep, (classes, d))
    y = rng.integers(0, classes, n)
    return centers[y] + rng.normal(0, 1, (n, d)), y


def test_linear_probe_separates_blobs_and_fails_on_noise():
    x, y = blobs(600)
    res = linear_probe(x[:400], y[:400], x[400:], y[400:], steps=100)
    assert res["linear_probe_acc"] > 0.95
    rng = np.random.default_rng(1)
    noise = linear_probe(rng.normal(size=(400, 16)), y[:400], rng.normal(size=(200, 16)),
                         y[400:], steps=100)
    assert noise["linear_probe_acc"] < 0.45  # chance is 0.25


def test_linear_probe_needs_a_linear_boundary():
    # XOR of two signs is not linearly separable: a linear probe stays near chance.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 2))
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int32)
    res = linear_probe(x[:600], y[:600], x[600:], y[600:], steps=100)
    assert res["linear_probe_acc"] < 0.65
    assert knn(x[:600], y[:600], x[600:], y[600:], k=10)["knn_acc"] > 0.85  # k-NN is local


def test_knn_on_blobs():
    x, y = blobs(500)
    assert knn(x[:400], y[:400], x[400:], y[400:], k=5)["knn_acc"] > 0.95
    rng = np.random.default_rng(2)
    assert knn(rng.normal(size=(400, 16)), y[:400], rng.normal(size=(100, 16)), y[400:],
               k=5)["knn_acc"] < 0.45


def test_rankme_counts_effective_dimensions():
    rng = np.random.default_rng(0)
    full = rng.normal(size=(2000, 32))
    assert rankme(full)["rankme"] > 28
    collapsed = np.outer(rng.normal(size=2000), rng.normal(size=32))
    assert rankme(collapsed)["rankme"] < 1.1
    four = rng.normal(size=(2000, 4)) @ rng.normal(size=(4, 32))
    assert 2.5 < rankme(four)["rankme"] < 4.1
