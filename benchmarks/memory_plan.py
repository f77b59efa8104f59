"""On paper: the largest ViT whose I-JEPA train step fits an 80 GB GPU with FSDP across 8 devices.

    python -m benchmarks.memory_plan            # the plan (JSON lines), no compiling
    python -m benchmarks.memory_plan --check    # + the model against XLA's memory_analysis

Per-device bytes of one train step, FSDP over `devices` (parameters, AdamW moments, EMA target
sharded; every weight all-gathered for compute):
  * state: fp32 parameters + two AdamW moments (12 B/param) + the EMA target of the encoder
    (4 B/param), divided by the device count;
  * gathered weights: every weight in the compute dtype, kept from the forward to the backward;
  * gradients: fp32, full size (not yet reduce-scattered);
  * activations kept for the backward, per token of each trained block: 8 width-sized tensors
    (layer-norm inputs and outputs, q/k/v, attention output, residual) and 2 MLP-hidden-sized
    ones (fc1 and GELU outputs) in the compute dtype, plus attention logits and probabilities
    (2 x heads x sequence) unless attention is flash (cuDNN on GPU keeps only row statistics).
    With `model.remat` each block keeps only its input, and one block's activations are live
    while it is recomputed. The target encoder's forward keeps nothing (stop-gradient).
`--check` compiles the real jepax step for 8 (fake) CPU devices with FSDP in fp32 at two encoder
depths and compares XLA's per-device memory with this model (XLA:CPU computes bf16 in fp32, so
the check is in fp32). The result is a plan, not a measurement on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

GB = 1e9
GPU_GB = 80
USABLE = 0.9  # of the GPU's memory: CUDA context, cuDNN workspaces and fragmentation take the rest

# Standard ViTs (width, depth, heads, MLP hidden): Dosovitskiy et al. 2021 (B, L, H),
# Zhai et al. 2022 (g, G, e), Dehghani et al. 2023 (22B).
VITS = {
    "ViT-B": (768, 12, 12, 3072), "ViT-L": (1024, 24, 16, 4096), "ViT-H": (1280, 32, 16, 5120),
    "ViT-g": (1408, 40, 16, 6144), "ViT-G": (1664, 48, 16, 8192), "ViT-e": (1792, 56, 16, 15360),
    "ViT-22B": (6144, 48, 48, 24576),
}
# I-JEPA's predictor for its large encoders (width 384, depth 12), 224x224 images, patch 14:
# 256 tokens, a context of half of them and 4 target blocks of 15% (the collator's medians).
PREDICTOR = (384, 12, 12, 1536)
PATCH, CONTEXT, TARGET, NUM_TARGETS = 14, 128, 38, 4


def block_params(width: int, hidden: int) -> int:
    return 4 * width * width + 2 * width * hidden + 9 * width + hidden


def params(width, depth, hidden, patch_dim=3 * PATCH * PATCH, pred=PREDICTOR):
    enc = depth * block_params(width, hidden) + patch_dim * width + 3 * width
    pw, pd, _, ph = pred
    predictor = pd * block_params(pw, ph) + 2 * width * pw + 4 * pw + width
    return enc, predictor


def activation_bytes(width, hidden, heads, seq, compute_bytes, flash):
    """Bytes one token of one trained block keeps for the backward."""
    return compute_bytes * (8 * width + 2 * hidden + (0 if flash else 2 * heads * seq))


def plan(vit, batch_per_device: int, *, devices=8, remat=False, flash=True, compute_bytes=2,
         pred=PREDICTOR, context=CONTEXT, target=TARGET, num_targets=NUM_TARGETS,
         patch_dim=3 * PATCH * PATCH) -> dict:
    width, depth, heads, hidden = vit
    pw, pd, pheads, ph = pred
    enc, predictor = params(width, depth, hidden, patch_dim, pred)
    total = enc + predictor
    encoder_tokens = batch_per_device * context
    predictor_seq = context + target
    predictor_tokens = batch_per_device * num_targets * predictor_seq
    per_layer = [(depth, encoder_tokens, activation_bytes(width, hidden, heads, context,
                                                          compute_bytes, flash), width),
                 (pd, predictor_tokens, activation_bytes(pw, ph, pheads, predictor_seq,
                                                         compute_bytes, flash), pw)]
    if remat:  # block inputs, plus the largest block's activations while it is recomputed
        acts = sum(n * tok * compute_bytes * w for n, tok, _, w in per_layer)
        acts += max(tok * a for _, tok, a, _ in per_layer)
    else:
        acts = sum(n * tok * a for n, tok, a, _ in per_layer)
    parts = {"state": (12 * total + 4 * enc) / devices, "gathered_weights": compute_bytes * total,
             "gradients": 4 * total, "activations": acts}
    return {"params": total, "per_device_gb": round(sum(parts.values()) / GB, 2),
            **{f"{k}_gb": round(v / GB, 2) for k, v in parts.items()}}


def largest_fitting(batch_per_device: int, remat: bool) -> dict:
    rows = {name: plan(vit, batch_per_device, remat=remat) for name, vit in VITS.items()}
    fits = [name for name, r in rows.items() if r["per_device_gb"] <= USABLE * GPU_GB]
    return {"memory_plan": f"{GPU_GB} GB GPU, FSDP over 8, bf16 compute, fp32 master, flash "
                           "attention",
            "batch_per_device": batch_per_device, "remat": remat,
            "largest_fitting": fits[-1] if fits else None,
            "per_device_gb": {name: r["per_device_gb"] for name, r in rows.items()},
            "params_billion": {name: round(r["params"] / 1e9, 2) for name, r in rows.items()}}


# --check: XLA's per-device memory for the real step at the gpu-vitb shapes, two encoder depths.
CHECK_DEPTHS = (2, 4)


def xla_bytes(depth: int) -> int:
    """Per-device bytes (arguments + temporaries - aliased) of the compiled step at gpu-vitb's
    shapes in fp32 with FSDP over the 8 devices (run with 8 CPU devices: see `_xla_bytes`)."""
    from benchmarks.ijepa_step import PRESETS, fixed_batch, jepax_config
    from jepax import experiment, sharding
    from jepax.variants.ijepa import IJEPA

    p = dict(PRESETS["gpu-vitb"], depth=depth, dtype="float32")
    c = jepax_config(p, attention="xla")
    c.mesh.update(data=1, fsdp=8)
    variant = IJEPA(c)
    batch = fixed_batch(p, (variant.masks.context_capacity, variant.masks.target_capacity))
    setup = experiment.build(c, variant, total_steps=1000)
    with setup.active():
        compiled, _ = setup.compile(sharding.abstract_like(setup.global_batch(batch)),
                                    with_init=False)
    m = compiled.memory_analysis()
    return m.argument_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes


def _xla_bytes(depth: int) -> int:
    """`xla_bytes` in a fresh process with 8 CPU devices (set before JAX starts)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    out = subprocess.run([sys.executable, "-m", "benchmarks.memory_plan",
                          f"--xla-bytes-at-depth={depth}"], env=env, check=True, text=True,
                         stdout=subprocess.PIPE).stdout
    return int(out.strip().splitlines()[-1])


def check() -> dict:
    from benchmarks.ijepa_step import PRESETS

    p = PRESETS["gpu-vitb"]
    vit = lambda depth: (p["width"], depth, p["heads"], 4 * p["width"])
    pred = (p["pred_width"], p["pred_depth"], p["pred_heads"], 4 * p["pred_width"])
    shapes = dict(pred=pred, context=p["context"], target=p["target"],
                  num_targets=p["num_targets"], patch_dim=3 * p["patch_size"] ** 2)
    model = [plan(vit(d), p["batch"] // 8, compute_bytes=4, flash=False, **shapes)
             for d in CHECK_DEPTHS]
    xla = [_xla_bytes(d) / GB for d in CHECK_DEPTHS]
    layers = CHECK_DEPTHS[1] - CHECK_DEPTHS[0]
    return {"memory_check": "gpu-vitb shapes, fp32, 8 CPU devices, FSDP 8",
            "depths": list(CHECK_DEPTHS),
            "xla_gb": [round(x, 3) for x in xla],
            "model_gb": [m["per_device_gb"] for m in model],
            "xla_per_layer_mb": round((xla[1] - xla[0]) / layers * 1e3, 1),
            "model_per_layer_mb": round((model[1]["per_device_gb"] - model[0]["per_device_gb"])
                                        / layers * 1e3, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="also compile the real step on 8 CPU devices and compare")
    parser.add_argument("--xla-bytes-at-depth", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.xla_bytes_at_depth:
        print(xla_bytes(args.xla_bytes_at_depth))
        return
    for batch in (16, 128):  # gpu-vitb's 128 over 8 devices; I-JEPA's ViT-H/14 batch per GPU
        for remat in (False, True):
            print(json.dumps(largest_fitting(batch, remat)), flush=True)
    if args.check:
        print(json.dumps(check()), flush=True)


if __name__ == "__main__":
    main()
