"""Why the cpu-tiny step is slower than PyTorch on CPU: the same matrix multiplies timed in
XLA (jax.jit), PyTorch and numpy (OpenBLAS), forward and both backward products.

    python -m benchmarks.gemm

Shapes are cpu-tiny's MLP input layers over a whole batch: the target encoder's (32 images x 64
tokens, 192 -> 768) and the predictor's (32 images x 4 target blocks, each a sequence of 32
context + 12 target tokens: 5632 rows, 96 -> 384).
Prints one JSON line per shape with the best of `--repeats` milliseconds per product."""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

SHAPES = {"encoder_mlp": (2048, 192, 768), "predictor_mlp": (5632, 96, 384)}


def best_ms(fn, repeats: int) -> float:
    """Best of `repeats` timed calls after one warm-up call, in milliseconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def measure(m: int, k: int, n: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    x, w, g = (rng.standard_normal(s, dtype=np.float32) for s in ((m, k), (k, n), (m, n)))
    products = {"fwd": (lambda a, b, c: a @ b), "dw": (lambda a, b, c: a.T @ c),
                "dx": (lambda a, b, c: c @ b.T)}
    out = {"m": m, "k": k, "n": n}
    jx = [jnp.asarray(v) for v in (x, w, g)]
    for name, f in products.items():
        jitted = jax.jit(f)
        out[f"xla_{name}_ms"] = round(best_ms(lambda: jitted(*jx).block_until_ready(), repeats), 3)
        out[f"numpy_{name}_ms"] = round(best_ms(lambda: f(x, w, g), repeats), 3)
    try:
        import torch
    except ImportError:
        return out
    tx = [torch.from_numpy(v) for v in (x, w, g)]
    for name, f in products.items():
        out[f"torch_{name}_ms"] = round(best_ms(lambda: f(*tx), repeats), 3)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    for name, shape in SHAPES.items():
        print(json.dumps({"gemm": name, **measure(*shape, args.repeats)}))


if __name__ == "__main__":
    main()
