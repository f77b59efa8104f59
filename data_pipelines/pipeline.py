"""grain pipelines: shuffled, per-process sharded, masked, batched and prefetched.

Order matters for reproducibility across process counts: the per-example random transform
(augmentation + mask sampling) is applied *before* the per-process shard, so example i of the
global stream gets the same crop and masks whether one process or several read it. A global batch
is the union of the processes' local batches (``jepax.sharding.global_batch``).
"""

from __future__ import annotations

from typing import Callable

import grain
import numpy as np
from absl import flags

from data_pipelines.errors import DataError


def train_dataset(source, *, seed: int, global_batch: int,
                  example_fn: Callable[[dict, np.random.Generator], dict] | None = None,
                  batch_fn: Callable[[dict, np.random.Generator], dict] | None = None,
                  num_threads: int = 1, prefetch: int = 4, num_workers: int = 0,
                  shard: tuple[int, int] | None = None, start: int = 0) -> grain.IterDataset:
    """Endless training stream of this process's local batches, from batch `start` on.

    source -> shuffle (new order each epoch) -> repeat -> example_fn (seeded per global index;
    also given that index as ``index=`` if it has ``takes_index = True``) -> shard by process
    -> batch (drop remainder) -> batch_fn (seeded per local batch)
    -> from batch `start` -> threaded read-ahead (and worker processes if num_workers > 0).

    Every batch is a function of the seed and its position, so a run resumes exactly by
    reopening the stream at the number of batches it drew (whatever the threads, read-ahead,
    worker processes or process count).

    `shard` = (index, count) overrides this process's shard (default: grain's
    ShardByJaxProcess, i.e. jax.process_index() of jax.process_count())."""
    if len(source) == 0:
        raise DataError("the training dataset is empty")
    ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat()
    if example_fn is not None:
        if getattr(example_fn, "takes_index", False):
            # It also gets the example's position in the global stream (e.g. to know its
            # training step, for a masking curriculum); resuming restores the position.
            ds = ds.map_with_index(lambda index, example: (index, example))
            ds = ds.random_map(lambda pair, rng: example_fn(pair[1], rng, index=pair[0]))
        else:
            ds = ds.random_map(example_fn)
    if shard is None:
        by_process = grain.sharding.ShardByJaxProcess(drop_remainder=True)
        shard = (by_process.shard_index, by_process.shard_count)
    index, count = shard
    if global_batch % count:
        raise ValueError(f"train.batch_size={global_batch} is not divisible by the {count} "
                         "processes; use a multiple of the process count")
    ds = ds[index::count]
    ds = ds.batch(global_batch // count, drop_remainder=True)
    if batch_fn is not None:
        ds = ds.random_map(batch_fn)
    ds = ds[start:]
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                              prefetch_buffer_size=prefetch))
    if num_workers > 0:
        # grain's workers read absl flags; from Colab / train.run nothing has parsed them.
        if not flags.FLAGS.is_parsed():
            flags.FLAGS.mark_as_parsed()
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return it


def prefetch_to_device(ds: grain.IterDataset, put: Callable[[dict], dict],
                       buffer: int = 2) -> grain.IterDataset:
    """Move batches onto the devices in a background thread, `buffer` batches ahead, so the
    host-to-device copy overlaps the running step instead of sitting on the train loop's path
    (on CPU the copy queues behind the step's busy thread pool). The iterator's state stays
    that of the last batch handed out, so checkpoints resume exactly."""
    return grain.experimental.ThreadPrefetchIterDataset(ds.map(put), prefetch_buffer_size=buffer)


def eval_arrays(source, limit: int | None,
                transform: Callable[[dict], dict] | None = None,
                seed: int = 0) -> dict[str, np.ndarray]:
    """A fixed random subset (all if limit is None) of `source`'s examples, each passed through
    `transform`, stacked key by key: {'image': (N, ...), 'label': (N,), ...}."""
    n = len(source)
    if n == 0:
        raise DataError("the evaluation dataset is empty")
    order = np.random.default_rng(seed).permutation(n)[: n if limit is None else min(limit, n)]
    examples = [source[int(i)] for i in order]
    if transform is not None:
        examples = [transform(e) for e in examples]
    return {key: np.stack([np.asarray(e[key]) for e in examples]) for key in examples[0]}
