"""Did a primed arithmetic run learn its primed examples? Exact match of a finished run's last
checkpoint on the long examples primed into its training set, on base training examples, and at
every evaluated length (the study's test split, the same examples its evaluator scored).

    python scripts/arithmetic_primed_fit.py runs/arithmetic/priming/n20000_p50

A primed run that does not generalize to the primed length either fit those examples and did not
carry the rule over (the paper's priming failed) or never fit them (priming did not take: too
few passes over them), and this tells the two apart."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import ml_collections
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data_pipelines import sources  # noqa: E402
from jepax import checkpoint, variants  # noqa: E402


def exact_match(variant, params, source, indices) -> float:
    examples = [source[i] for i in indices]
    batch = {k: np.stack([e[k] for e in examples]) for k in ("inputs", "targets", "loss_mask")}
    return float(np.mean(variant.outputs(params, batch)["correct"]))


def fit(run_dir: Path, base_examples: int = 200) -> dict:
    """{'primed': exact match on the primed training examples (None: the run has none),
    'base': on the first `base_examples` training examples, 'by_length': {digits: exact match}
    on the test split}."""
    rc = ml_collections.ConfigDict(json.loads((run_dir / "config.json").read_text()))
    variant = variants.build(rc)
    state = checkpoint.Checkpointer(run_dir / "checkpoints", keep=3).restore_params()
    params = variant.eval_params(state["params"], None)
    train, test = sources.get(rc.data, "train"), sources.get(rc.data, "test")
    n, lengths = rc.data.train_size, tuple(rc.data.eval_lengths)
    primed = range(n, n + rc.data.prime_count)
    return {
        "primed": exact_match(variant, params, train, primed) if len(primed) else None,
        "base": exact_match(variant, params, train, range(min(base_examples, n))),
        # test example i has eval_lengths[i % len(eval_lengths)] digits
        "by_length": {length: exact_match(variant, params, test,
                                          range(j, len(test), len(lengths)))
                      for j, length in enumerate(lengths)},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    print(json.dumps(fit(parser.parse_args().run_dir), indent=1))


if __name__ == "__main__":
    main()
