"""The whole TI-JEPA pipeline in one command, resumable (rerun it after an interruption):

1. the data: the emoji scenes are written once (data_pipelines/emoji_scenes.py);
2. the frozen image encoder: I-JEPA on the scenes' images (experiments/ti_jepa.py:image_encoder);
3. the frozen text encoder: masked-word pretraining on the captions (experiments/text_mlm.py);
4. TI-JEPA on both (experiments/ti_jepa.py), evaluated against a random crosser and the frozen
   encoders' concatenated features, with the fusion check;
5. the results tables written into experiments/ti_jepa.py and experiments/text_mlm.py.

    python scripts/ti_jepa_chain.py [--root=runs/ti_jepa] [--steps=N] [--no-record]

A stage whose run is finished is not trained again (rerunning it only re-evaluates).
``--steps=N`` caps every stage at N steps: a short run, for a busy machine (the recorded tables
name the step they were evaluated at).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jepax import train  # noqa: E402
from jepax.config import load_config  # noqa: E402


def stages(root: Path, steps: int = 0):
    """(workdir, config) of each training run, in order; `steps` > 0 caps their length."""
    ti = load_config(str(ROOT / "experiments/ti_jepa.py"))
    with ti.unlocked():
        ti.model.update(image_encoder=str(root / "image_encoder"),
                        text_encoder=str(root / "text_encoder"))
    runs = [(root / "image_encoder", load_config(str(ROOT / "experiments/ti_jepa.py:image_encoder"))),
            (root / "text_encoder", load_config(str(ROOT / "experiments/text_mlm.py"))),
            (root / "ti_jepa", ti)]
    for _, config in runs:
        if steps > 0:
            config.train.steps = min(config.train.steps, steps)
            config.optim.warmup_steps = min(config.optim.warmup_steps, config.train.steps // 10)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("runs/ti_jepa"))
    parser.add_argument("--steps", type=int, default=0, help="cap every stage at this many steps")
    parser.add_argument("--no-record", action="store_true", help="leave the docstrings alone")
    args = parser.parse_args()
    for workdir, config in stages(args.root, args.steps):
        summary = train.run(config, workdir)
        if summary.get("preempted"):
            raise SystemExit(f"stopped during {workdir}: rerun the same command to resume")
    if args.no_record:
        return
    record = [sys.executable, str(ROOT / "scripts/record_results.py")]
    for workdir, into, tag in ((args.root / "ti_jepa", "experiments/ti_jepa.py", ""),
                               (args.root / "image_encoder", "experiments/ti_jepa.py", "image_encoder"),
                               (args.root / "text_encoder", "experiments/text_mlm.py", "")):
        subprocess.run(record + [f"--workdir={workdir}", f"--into={ROOT / into}"]
                       + ([f"--tag={tag}"] if tag else []), check=True)


if __name__ == "__main__":
    main()
