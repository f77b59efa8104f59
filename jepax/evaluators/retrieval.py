"""Instance retrieval: find the same object under a new view among every object of a gallery.

The query split and the gallery split hold the same instances (matched by the `key` array,
e.g. 'instance') under different views (for point clouds: the test shapes sampled anew and
rotated about the up axis). Features are z-scored with the gallery's statistics and compared by
cosine similarity; reports the share of queries whose nearest gallery item is their own
instance (top-1) and the mean reciprocal rank of that item.
"""

from __future__ import annotations

import numpy as np

from jepax.evaluators.base import check


class Retrieval:
    DEFAULTS = {"outputs": "features", "key": "instance", "query_split": "test",
                "gallery_split": "test_rotated", "examples": None}
    columns = ("retrieval_top1", "retrieval_mrr")

    def __init__(self, name, config_block):
        self.block = config_block
        self.every = int(config_block["every"])
        check(name, config_block, nonnegative=("every",), positive=("examples",))

    def evaluate(self, row):
        b = self.block
        query = row.data(b["query_split"], b["examples"])
        if b["outputs"] not in query:
            return {}
        gallery = row.data(b["gallery_split"], b["examples"])
        return retrieval(query[b["outputs"]], query[b["key"]], gallery[b["outputs"]],
                         gallery[b["key"]])


def retrieval(query_x, query_key, gallery_x, gallery_key) -> dict:
    query_x, gallery_x = np.asarray(query_x, np.float64), np.asarray(gallery_x, np.float64)
    position = {k: i for i, k in enumerate(np.asarray(gallery_key).tolist())}
    missing = [k for k in np.asarray(query_key).tolist() if k not in position]
    if missing:
        raise ValueError(f"retrieval: {len(missing)} queries have no gallery item with the same "
                         "key; the query and gallery splits must hold the same instances")
    mean, std = gallery_x.mean(0), gallery_x.std(0) + 1e-6

    def unit(x):
        z = (x - mean) / std
        return z / (np.linalg.norm(z, axis=1, keepdims=True) + 1e-12)

    sims = unit(query_x) @ unit(gallery_x).T
    match = np.array([position[k] for k in np.asarray(query_key).tolist()])
    own = sims[np.arange(len(sims)), match]
    rank = (sims > own[:, None]).sum(1)
    return {"retrieval_top1": float(np.mean(rank == 0)),
            "retrieval_mrr": float(np.mean(1.0 / (rank + 1)))}
