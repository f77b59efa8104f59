"""RankMe (Garrido et al., 2023): effective rank of the embedding matrix, a label-free
collapse monitor. exp(entropy of the normalized singular values); ranges over [1, min(N, D)]."""

from __future__ import annotations

import numpy as np


def rankme(features, max_samples: int = 25600) -> dict:
    x = np.asarray(features, np.float64)[:max_samples]
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + 1e-7
    return {"rankme": float(np.exp(-(p * np.log(p)).sum())), "rankme_max": int(min(x.shape))}
