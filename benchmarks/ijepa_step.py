"""Side-by-side timing of one I-JEPA train step: jepax vs the PyTorch reference
(benchmarks/torch_reference.py), same model, shapes, masks and batch, in one process.

    python -m benchmarks.ijepa_step --preset=cpu-tiny            # CPU, fp32
    python -m benchmarks.ijepa_step --preset=gpu-vitb            # GPU, bf16, + torch.compile

Prints one JSON line per preset. Both sides get identical masks: every example has exactly
`context` context tokens and `num_targets` blocks of `target` tokens (drawn with jepax's
multi-block sampler, kept only when no list was truncated), so neither side pads. Timed blocks
of steps alternate between the two implementations to share the machine's drift.
"""

from __future__ import annotations

import argparse
import json
import time

import jax

from jepax.models.layers import ATTENTION_IMPLEMENTATIONS, resolve_attention
import numpy as np

PRESETS = {
    # 64x64 RGB, patch 8 (8x8 grid); context/target sizes are the medians of jepax's sampler.
    "cpu-tiny": dict(image_size=64, patch_size=8, channels=3, width=192, depth=6, heads=3,
                     pred_width=96, pred_depth=4, pred_heads=3, batch=32, context=32,
                     target=12, num_targets=4, dtype="float32"),
    # ViT-B/16 at 224 (14x14 grid); context ~ 98 and targets ~ 29 tokens as I-JEPA's collator.
    "gpu-vitb": dict(image_size=224, patch_size=16, channels=3, width=768, depth=12, heads=12,
                     pred_width=384, pred_depth=6, pred_heads=12, batch=128, context=98,
                     target=29, num_targets=4, dtype="bfloat16"),
    # Seconds on any machine: for tests of this harness, not for reporting.
    "smoke": dict(image_size=32, patch_size=8, channels=3, width=32, depth=1, heads=2,
                  pred_width=16, pred_depth=1, pred_heads=2, batch=8, context=6, target=2,
                  num_targets=2, dtype="float32"),
}


def jepax_config(p: dict, attention: str = "auto", pad_multiple: int = 1, cpu_devices=None,
                 scan_layers="auto"):
    from jepax.config import load_config

    c = load_config("experiments/ijepa.py")
    if cpu_devices is not None:
        c.mesh.cpu_devices = cpu_devices
    c.model.update(patch_size=p["patch_size"], width=p["width"], depth=p["depth"],
                   heads=p["heads"], pred_width=p["pred_width"], pred_depth=p["pred_depth"],
                   pred_heads=p["pred_heads"], dtype=p["dtype"], attention=attention,
                   scan_layers=str(scan_layers).lower(),  # a string field: "auto" / "true"
                   target_norm="layer")  # the paper's targets, as the PyTorch reference step
    c.data.update(image_size=p["image_size"], channels=p["channels"],
                  mean=(0.5,) * p["channels"], std=(0.5,) * p["channels"])
    c.mask.update(num_targets=p["num_targets"], context_capacity=p["context"],
                  target_capacity=p["target"], min_context=p["context"],
                  pad_multiple=pad_multiple)
    c.train.batch_size = p["batch"]
    return c


def fixed_batch(p: dict, capacities: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """A batch with exactly `context` / `target` valid tokens in every list (longer draws are
    subsampled, shorter ones redrawn), padded with invalid entries up to `capacities`."""
    from jepax.variants.ijepa import IJEPA

    sampler = IJEPA(jepax_config(p)).masks
    rng = np.random.default_rng(seed)
    examples = []
    while len(examples) < p["batch"]:
        ex = sampler(rng)
        if ex["context_valid"].all() and ex["target_valid"].all():
            examples.append(ex)
    batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
    for key, cap in (("context", capacities[0]), ("target", capacities[1])):
        pad = [(0, 0)] * (batch[f"{key}_idx"].ndim - 1) + [(0, cap - batch[f"{key}_idx"].shape[-1])]
        batch[f"{key}_idx"] = np.pad(batch[f"{key}_idx"], pad)
        batch[f"{key}_valid"] = np.pad(batch[f"{key}_valid"], pad)
    batch["image"] = rng.integers(0, 256, (p["batch"], p["image_size"], p["image_size"],
                                           p["channels"]), dtype=np.uint8)
    return batch


class JepaxStep:
    """The real jepax train step (same code path as jepax.train), on all local devices."""

    def __init__(self, p: dict, attention: str = "auto", pad_multiple: int = 1,
                 cpu_devices=None, scan_layers="auto"):
        from jepax import cpu_devices as cpu_devices_lib, experiment, sharding
        from jepax.variants.ijepa import IJEPA

        self.config = jepax_config(p, attention, pad_multiple, cpu_devices, scan_layers)
        cpu_devices_lib.configure(self.config)  # as jepax.main does, before devices exist
        self.variant = IJEPA(self.config)
        masks = self.variant.masks
        self.batch_np = fixed_batch(p, (masks.context_capacity, masks.target_capacity))
        self.setup = experiment.build(self.config, self.variant, total_steps=1000)
        with self.setup.active():
            self.batch = self.setup.global_batch(self.batch_np)
            # As jepax.train does: the initializer compiles alongside the step.
            t0 = time.perf_counter()
            self.compiled, init = self.setup.compile(sharding.abstract_like(self.batch))
            self.compile_s = time.perf_counter() - t0
            self.state = init()
        # Useful work only: padded tokens (pad_multiple > 1) cost time but are not counted.
        self.flops = IJEPA(jepax_config(p)).flops_per_step(p["batch"])
        self.peak_bytes = experiment.peak_bytes(self.compiled)

    def run(self, steps: int) -> float:
        """Seconds per step over `steps` steps (synchronised at the end)."""
        t0 = time.perf_counter()
        for _ in range(steps):
            self.state, metrics = self.compiled(self.state, self.batch)
        jax.block_until_ready(metrics)
        return (time.perf_counter() - t0) / steps


class TorchStep:
    def __init__(self, p: dict, batch_np: dict, *, compile: bool):
        import torch

        from benchmarks import torch_reference

        gpu = torch.cuda.is_available()
        self.model = torch_reference.build(
            image_size=p["image_size"], patch_size=p["patch_size"], channels=p["channels"],
            width=p["width"], depth=p["depth"], heads=p["heads"], pred_width=p["pred_width"],
            pred_depth=p["pred_depth"], pred_heads=p["pred_heads"],
            device="cuda" if gpu else "cpu", bf16=p["dtype"] == "bfloat16", compile=compile)
        # PyTorch gets the lists without jepax's padding (all entries up to the counts are valid).
        self.inputs = self.model.to_device(batch_np["image"],
                                           batch_np["context_idx"][:, :p["context"]],
                                           batch_np["target_idx"][..., :p["target"]])

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = self.model.step(*self.inputs)
        loss.item()
        self.model.sync()
        return (time.perf_counter() - t0) / steps


def cpu_matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Achieved fp32 FLOP/s of one large XLA matmul: the CPU's practical peak (no spec sheet)."""
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def alternate(runners: dict, rounds: int, steps: int, warmup: int) -> dict[str, float]:
    """Median seconds/step per runner over `rounds` interleaved blocks of `steps` steps."""
    for r in runners.values():
        r.run(warmup)
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, r in runners.items():
            times[name].append(r.run(steps))
    return {name: float(np.median(t)) for name, t in times.items()}


def bench(preset: str, rounds: int, steps: int, warmup: int, attention: str,
          torch_compile: bool | None, pad_multiple: int = 1, cpu_devices=None) -> dict:
    from jepax.flops import peak_flops_per_device

    p = PRESETS[preset]
    jx = JepaxStep(p, attention, pad_multiple, cpu_devices)
    runners = {"jepax": jx}
    try:
        import torch

        on_gpu = torch.cuda.is_available()
        runners["torch"] = TorchStep(p, jx.batch_np, compile=False)
        if torch_compile if torch_compile is not None else on_gpu:
            runners["torch_compile"] = TorchStep(p, jx.batch_np, compile=True)
    except ImportError:
        on_gpu = False  # torch is the optional [bench] extra
    sec = alternate(runners, rounds, steps, warmup)
    device = jax.devices()[0]
    peak = peak_flops_per_device()
    peak_source = "spec table (jepax.flops)"
    if peak is None and device.platform == "cpu":
        peak, peak_source = cpu_matmul_peak() / jax.device_count(), "measured 2048^3 fp32 matmul"
    out = {
        "preset": preset, "device": device.device_kind, "num_devices": jax.device_count(),
        "cpu_devices": jx.config.mesh.cpu_devices,
        "attention": resolve_attention(attention), "pad_multiple": pad_multiple,
        "jepax_ms": round(sec["jepax"] * 1e3, 2),
        "jepax_compile_s": round(jx.compile_s, 2),
        "flops_per_step": jx.flops, "tflops_per_s": round(jx.flops / sec["jepax"] / 1e12, 4),
        "mfu": round(jx.flops / sec["jepax"] / (peak * jax.device_count()), 4) if peak else None,
        "peak_flops_per_device": peak, "peak_source": peak_source,
        "peak_memory_mib": None if jx.peak_bytes is None else round(jx.peak_bytes / 2 ** 20, 1),
    }
    for name in ("torch", "torch_compile"):
        if name in sec:
            out[f"{name}_ms"] = round(sec[name] * 1e3, 2)
            out["ratio" if name == "torch" else "ratio_compile"] = round(sec[name] / sec["jepax"], 3)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), action="append")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--attention", default="auto", choices=ATTENTION_IMPLEMENTATIONS)
    parser.add_argument("--pad-multiple", type=int, default=1,
                        help="round jepax's token capacities up (e.g. 16 keeps cuDNN attention "
                             "usable); padding is masked and not counted as useful FLOPs")
    parser.add_argument("--torch-compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also time torch.compile (default: on GPU only)")
    parser.add_argument("--cpu-devices", type=cpu_devices_arg, default=None,
                        help="jepax's mesh.cpu_devices (default: the config's): auto (one "
                             "device per core), 0 (XLA's one multi-threaded device) or a count")
    args = parser.parse_args(argv)
    for preset in args.preset or ["cpu-tiny"]:
        print(json.dumps(bench(preset, args.rounds, args.steps, args.warmup, args.attention,
                               args.torch_compile, args.pad_multiple, args.cpu_devices)),
              flush=True)


def preset_parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark script's argument parser with the shared --preset flag (default cpu-tiny)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-tiny")
    return parser


def preset_main(doc: str, measure, argv, **counts: int) -> None:
    """Command line for `measure(preset, **counts)`: integer flags with the given defaults,
    the result printed as one JSON line."""
    parser = preset_parser(doc)
    for name, default in counts.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    print(json.dumps(measure(**vars(parser.parse_args(argv)))))


def cpu_devices_arg(value: str):
    return value if value == "auto" else int(value)


if __name__ == "__main__":
    main()
