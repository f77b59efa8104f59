"""Where the I-JEPA step's time goes, jepax vs the PyTorch reference, stage by stage: the target
encoder's forward, the whole loss forward (target + context encoder + predictor), forward +
backward, and the full step (+ AdamW + EMA). Same preset, batch and masks as
benchmarks/ijepa_step.py; each number is the best of `--repeats` calls, measured stage by
stage (jepax, then PyTorch).

    python -m benchmarks.ijepa_parts --preset=cpu-tiny
"""

from __future__ import annotations

import jax

from benchmarks.gemm import best_ms
from benchmarks.ijepa_step import PRESETS, JepaxStep, TorchStep, preset_main


def jepax_stages(jx: JepaxStep) -> dict:
    variant, batch = jx.variant, jx.batch
    params, target = jx.state.params, jx.state.target
    images = variant.normalize(batch["image"])
    # Arrays go in as arguments: closed-over arrays would be baked into the executables.
    loss = lambda p, t, b: variant.loss(p, t, b, None)[0]
    target_fwd = jax.jit(variant.encoder)
    loss_fwd, fwd_bwd = jax.jit(loss), jax.jit(jax.value_and_grad(loss))

    def step():
        jx.state, metrics = jx.compiled(jx.state, batch)
        jax.block_until_ready(metrics)

    return {"target_forward": lambda: jax.block_until_ready(target_fwd(target, images)),
            "loss_forward": lambda: jax.block_until_ready(loss_fwd(params, target, batch)),
            "forward_backward": lambda: jax.block_until_ready(fwd_bwd(params, target, batch)),
            "step": step}


def torch_stages(ts: TorchStep) -> dict:
    import torch

    model, (images, context_idx, target_idx) = ts.model, ts.inputs

    def no_grad(fn):
        def run():
            with torch.no_grad():
                fn()
            model.sync()
        return run

    def forward_backward():
        model._forward_loss(images, context_idx, target_idx).backward()
        model.sync()

    def step():
        model.step(images, context_idx, target_idx).item()
        model.sync()

    return {"target_forward": no_grad(lambda: model.target(images)),
            "loss_forward": no_grad(lambda: model._forward_loss(images, context_idx, target_idx)),
            "forward_backward": forward_backward, "step": step}


def measure(preset: str, repeats: int) -> dict:
    jx = JepaxStep(PRESETS[preset])
    sides = {"jepax": jepax_stages(jx)}
    try:
        sides["torch"] = torch_stages(TorchStep(PRESETS[preset], jx.batch_np, compile=False))
    except ImportError:
        pass  # torch is the optional [bench] extra
    out = {"parts_preset": preset}
    for stage in sides["jepax"]:
        for side, stages in sides.items():
            out[f"{side}_{stage}_ms"] = round(best_ms(stages[stage], repeats), 1)
    return out


def main(argv=None):
    preset_main(__doc__, measure, argv, repeats=8)


if __name__ == "__main__":
    main()
