"""Functional gradients of a group connectivity matrix: the diffusion-map embedding as BrainSpace
(``GradientMaps(approach='dm')``) computes it, used by Brain-JEPA for its ROI positions.

1. Row-wise sparsification: each row keeps its ``int(n * (1 - sparsity))`` largest entries
   (BrainSpace's default sparsity 0.9 keeps the top 10%), the rest are zeroed.
2. Affinity between rows: cosine similarity (Brain-JEPA's choice; BrainSpace's default kernel
   is the normalized angle, ``1 - arccos(cosine) / pi``), negative values zeroed.
3. Diffusion map (Coifman & Lafon, 2006) with anisotropy ``alpha`` (0.5): W <- D^-a W D^-a,
   P = D^-1 W; the eigenvectors of P after the trivial constant one, each scaled by its
   multi-scale weight lambda / (1 - lambda) (diffusion time 0), signed so that the largest-
   magnitude entry is positive.

The eigenproblem is solved densely through the symmetric matrix D^-1/2 W D^-1/2 (same
eigenvalues as P; P's right eigenvectors are D^-1/2 times its eigenvectors), so the result does
not depend on a random start vector.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.sparse.csgraph import connected_components

from data_pipelines.errors import DataError


def sparsify_rows(x: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep each row's int(n * (1 - sparsity)) largest entries."""
    n = x.shape[1]
    keep = int(n * (1.0 - sparsity))
    if not 0 < keep <= n:
        raise DataError(f"sparsity={sparsity} keeps {keep} of {n} entries per row (BrainSpace's "
                        "int(n * (1 - sparsity))); use a lower sparsity (--sparsity, or "
                        "data.gradient_sparsity for the run's own gradients)")
    top = np.argpartition(x, n - keep, axis=1)[:, -keep:]
    out = np.zeros_like(x)
    rows = np.arange(len(x))[:, None]
    out[rows, top] = x[rows, top]
    return out


def affinity(fc: np.ndarray, sparsity: float = 0.9, kernel: str = "cosine") -> np.ndarray:
    x = sparsify_rows(np.asarray(fc, np.float64), sparsity)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise DataError("a row of the sparsified FC matrix is all zeros (a ROI whose strongest "
                        "connections are <= 0): check the FC matrix for constant or empty ROIs")
    a = (x / norms) @ (x / norms).T
    if kernel == "normalized_angle":
        a = 1.0 - np.arccos(np.clip(a, -1.0, 1.0)) / np.pi
    elif kernel != "cosine":
        raise DataError(f"kernel={kernel!r}: use 'cosine' or 'normalized_angle'")
    a[a < 0] = 0.0
    return a


def diffusion_map(a: np.ndarray, k: int, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) gradients and their k multi-scale eigenvalues (descending) of affinity `a`."""
    n = a.shape[0]
    if not 1 <= k < n:
        raise DataError(f"{k} gradients of a {n}-ROI matrix: choose 1 <= k < {n}")
    parts, _ = connected_components(a > 0, directed=False)
    if parts > 1:  # eigenvalue 1 repeats: the "gradients" would only label the components
        raise DataError(f"the sparsified affinity graph falls into {parts} disconnected parts; "
                        "keep more connections per ROI (a lower --sparsity or "
                        "data.gradient_sparsity)")
    d = a.sum(axis=1)
    w = a / np.outer(d ** alpha, d ** alpha)
    d = w.sum(axis=1)
    s = w / np.sqrt(np.outer(d, d))
    s = (s + s.T) / 2
    lam, u = scipy.linalg.eigh(s, subset_by_index=(n - k - 1, n - 1))
    lam, u = lam[::-1], u[:, ::-1]
    v = u / np.sqrt(d)[:, None]               # right eigenvectors of P = D^-1 W
    v, lam = v / v[:, [0]], lam / lam[0]       # trivial first pair: ones and eigenvalue 1
    v, lam = v[:, 1:], lam[1:]
    lam = lam / (1.0 - lam)                    # diffusion time 0: all scales
    v = v * lam[None, :]
    v *= np.sign(v[np.abs(v).argmax(axis=0), np.arange(k)])
    return v, lam


def gradients(fc: np.ndarray, k: int = 30, *, sparsity: float = 0.9, kernel: str = "cosine",
              alpha: float = 0.5) -> np.ndarray:
    """(ROI, k) float32 functional gradients of a group FC matrix."""
    fc = np.asarray(fc, np.float64)
    if fc.ndim != 2 or fc.shape[0] != fc.shape[1]:
        raise DataError(f"an FC matrix must be square, got {fc.shape}")
    if not np.isfinite(fc).all():
        raise DataError("the FC matrix has NaN or infinite entries (a constant ROI's correlation)")
    return diffusion_map(affinity(fc, sparsity, kernel), k, alpha)[0].astype(np.float32)
