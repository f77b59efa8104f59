"""Write MC-JEPA's results table (flow EPE on the synthetic-ground-truth pairs and the
Middlebury motorcycle stereo pair, Farneback and zero flow beside it; the content linear probe;
with and without the other objective) between `<results>` markers, and save the pretrained
model's flow fields as `.flo` files and colour-wheel PNGs.

    python scripts/record_mc_jepa.py --joint=runs/mc_jepa [--flow-only=runs/mc_jepa_flow] \\
        [--content-only=runs/mc_jepa_content] --into=experiments/mc_jepa.py \\
        [--flows=results/mc_jepa] [--note="shared 2-core machine"]

Reads the newest results/eval_step*.json of each run; a run not given is a '-' column.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages
sys.path.insert(0, str(Path(__file__).parent))
from record_results import (cpu_name, newest_eval, training_minutes,  # noqa: E402
                            write_between_markers)


METRICS = {"synthetic_epe": "synthetic pairs: EPE all (px)",
           "synthetic_epe_noc": "synthetic pairs: EPE non-occluded (px)",
           "synthetic_fl": "synthetic pairs: Fl (EPE > 3 px and > 5%)",
           "stereo_epe": "motorcycle stereo: EPE (px)",
           "linear_probe_acc": "Fashion-MNIST linear probe acc",
           "rankme": "RankMe (test features)"}
BASELINES = ("Farneback (OpenCV)", "zero flow", "raw pixels")


def columns(joint: dict, flow_only: dict | None, content_only: dict | None) -> dict[str, dict]:
    out = {"MC-JEPA (both)": joint.get("pretrained", {}),
           "flow only": (flow_only or {}).get("pretrained", {}),
           "content only": (content_only or {}).get("pretrained", {}),
           "random init": joint.get("random init", {})}
    out.update({name: joint.get(name, {}) for name in BASELINES})
    return out


def table(joint_dir: Path, flow_dir: Path | None, content_dir: Path | None, note: str) -> list[str]:
    joint = newest_eval(joint_dir)
    cols = columns(joint, newest_eval(flow_dir) if flow_dir else None,
                   newest_eval(content_dir) if content_dir else None)
    fmt = lambda row, key: (f"{row[key]:.3f}" if isinstance(row.get(key), (int, float)) else "-")
    lines = ["| metric | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for key, what in METRICS.items():
        lines.append(f"| {what} | " + " | ".join(fmt(row, key) for row in cols.values()) + " |")
    lines.append("")
    config = json.loads((joint_dir / "config.json").read_text())
    minutes = training_minutes(joint_dir)
    lines.append(f"{joint['step']} steps of batch {config['train']['batch_size']} "
                 f"({minutes:.1f} min of training) on {cpu_name()}" + (f"; {note}" if note else "")
                 + ". '-': not measured (that run was not given).")
    return lines


def load_run(workdir: Path):
    """The run's variant (its saved config over the experiment's defaults) and final params."""
    from jepax import variants
    from jepax.checkpoint import Checkpointer
    from jepax.config import load_config

    saved = json.loads((workdir / "config.json").read_text())
    config = load_config(str(ROOT / "experiments" / "mc_jepa.py"))
    with config.unlocked():
        for section in ("model", "data", "loss"):
            config[section].update({k: tuple(v) if isinstance(v, list) else v
                                    for k, v in saved[section].items()})
    variant = variants.build(config)
    ckpt = Checkpointer(workdir / "checkpoints", read_only=True)
    params = ckpt.restore_params()["params"]
    ckpt.close()
    return variant, params


def save_flows(workdir: Path, out: Path, pairs: int = 4) -> list[Path]:
    """The first `pairs` synthetic pairs and the stereo pair: estimated flow (.flo + PNG),
    the ground truth's PNG on the same colour scale, and the first frame."""
    import jax
    from PIL import Image

    from data_pipelines.flow_io import save_flow_png, write_flo

    variant, params = load_run(workdir)
    eval_params = variant.eval_params(params, None)
    outputs = jax.jit(variant.outputs)
    prepare = variant.eval_example_fn()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for split, count in (("synthetic_flow", pairs), ("stereo", 1)):
        source = variant.eval_source(split)
        for i in range(min(count, len(source))):
            ex = prepare(source[i])
            flow = np.asarray(outputs(eval_params, {"frames": ex["frames"][None]})["flow"][0])
            scale = float(np.linalg.norm(ex["flow_gt"], axis=-1)[ex["flow_valid"]].max())
            stem = out / f"{split}_{i}"
            write_flo(f"{stem}_flow.flo", flow)
            save_flow_png(f"{stem}_flow.png", flow, scale)
            save_flow_png(f"{stem}_truth.png", np.where(ex["flow_valid"][..., None], ex["flow_gt"], 0), scale)
            Image.fromarray(ex["frames"][0]).save(f"{stem}_frame1.png")
            written += [Path(f"{stem}_{k}") for k in ("flow.flo", "flow.png", "truth.png", "frame1.png")]
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--joint", required=True, type=Path)
    parser.add_argument("--flow-only", type=Path, default=None)
    parser.add_argument("--content-only", type=Path, default=None)
    parser.add_argument("--into", type=Path, default=None)
    parser.add_argument("--flows", type=Path, default=None, help="folder for .flo files + PNGs")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    lines = table(args.joint, args.flow_only, args.content_only, args.note)
    print("\n".join(lines))
    if args.into:
        write_between_markers(args.into, lines)
    if args.flows:
        for path in save_flows(args.joint, args.flows):
            print(path)


if __name__ == "__main__":
    main()
