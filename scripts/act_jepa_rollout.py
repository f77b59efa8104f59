"""Render closed-loop rollouts of a trained ACT-JEPA (or baseline) policy on point pushing as
an animated GIF: one panel per seed, tasks alternating push / reach.

    python scripts/act_jepa_rollout.py --workdir=runs/act_jepa --out=results/act_jepa_rollout.gif
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ml_collections
import numpy as np
from PIL import Image

from jepax import checkpoint, variants


def load_policy(workdir: Path):
    """(variant, policy) of the run in `workdir`, from its newest checkpoint."""
    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    variant = variants.build(config)
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", read_only=True)
    state = ckpt.restore_params()
    ckpt.close()
    return variant, variant.eval_params(state["params"], state["target"])


def frames(workdir: Path, seeds: np.ndarray, max_steps: int, execute: int):
    variant, policy = load_policy(workdir)
    out = variant.rollouts(policy, seeds, seeds % 2, max_steps=max_steps, execute=execute,
                           frames=True)
    return out["frames"], out["success"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/act_jepa_rollout.gif"))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--first_seed", type=int, default=10**9)
    parser.add_argument("--max_steps", type=int, default=100)
    parser.add_argument("--execute", type=int, default=10)
    args = parser.parse_args()
    seeds = args.first_seed + np.arange(args.seeds)
    video, success = frames(args.workdir, seeds, args.max_steps, args.execute)
    panels = np.concatenate(list(video), axis=2)  # (T, H, seeds * W, 3), side by side
    args.out.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in panels[::2]]
    images[0].save(args.out, save_all=True, append_images=images[1:], duration=80, loop=0)
    print(f"wrote {args.out} ({len(images)} frames); solved: {success.tolist()}")


if __name__ == "__main__":
    main()
