"""Render benchmark JSON lines as the results table of benchmarks/README.md.

    python -m benchmarks.table --results benchmarks/results/cpu.jsonl --into=benchmarks/README.md

Run by benchmarks/cpu.sh and benchmarks/gpu.sh right after their measurements; each results
file names the machine that produced it (its first line, written by the script)."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from scripts.record_results import cpu_name, write_between_markers


def machine_line() -> str:
    """A JSON line naming this machine (CPU, accelerator) and the PyTorch build."""
    import jax

    try:
        import torch
        torch_version = f"torch {torch.__version__}"
    except ImportError:
        torch_version = "torch not installed"
    device = jax.devices()[0]
    accelerator = "" if device.platform == "cpu" else f"{device.device_kind}, "
    return json.dumps({"machine": f"{accelerator}{cpu_name()} ({platform.machine()}), "
                                  f"jax {jax.__version__}, {torch_version}"})


# The speed issue's targets, by preset.
RATIO_TARGET = {"cpu-tiny": ">= 1.2 over eager", "gpu-vitb": "~1.5 over torch.compile"}
MFU_TARGET = {"gpu-vitb": ">= 40%"}


def rows(records: list[dict]) -> list[tuple[str, str, str]]:
    """(what, measured, target) for every record kind the CPU and GPU scripts print."""
    out = []
    for r in records:
        if "failed" in r:  # gpu.sh: a measurement that timed out or broke
            out.append((f"FAILED: {r['failed']}", f"exit {r['exit']} (limit {r['limit_s']} s)", ""))
        elif "profile_preset" in r:
            top = ", ".join(f"{k} {v:.0f}" for k, v in list(r["ms_per_step_by_kind"].items())[:6])
            out.append((f"{r['profile_preset']} XLA op time per step by kind (ms, summed over "
                        "concurrent ops)", f"{r['ops_ms_per_step']:.0f} in all, "
                        f"{r['dot_share']:.0%} in matrix multiplies; {top}", ""))
        elif "parts_preset" in r:
            stages = [k[len("jepax_"):-len("_ms")] for k in r if k.startswith("jepax_")]
            for stage in stages:
                mine, theirs = r[f"jepax_{stage}_ms"], r.get(f"torch_{stage}_ms")
                vs = f" / {theirs:.0f} ms (ratio {theirs / mine:.2f})" if theirs else ""
                out.append((f"{r['parts_preset']} {stage.replace('_', ' ')}: jepax / PyTorch",
                            f"{mine:.0f} ms{vs}", ""))
        elif "memory_plan" in r:
            name = r["largest_fitting"]
            sizes = ", ".join(f"{k} {v:.0f}" for k, v in r["per_device_gb"].items())
            out.append((f"largest ViT for an 80 GB GPU, FSDP over 8 (on paper): batch "
                        f"{r['batch_per_device']} per device, remat {'on' if r['remat'] else 'off'}",
                        f"{name} ({r['params_billion'].get(name, 0):.1f}B params); GB per "
                        f"device: {sizes}", ""))
        elif "memory_check" in r:
            out.append((f"memory model vs XLA's memory_analysis ({r['memory_check']}, encoder "
                        f"depth {r['depths'][0]} / {r['depths'][1]})",
                        f"model {r['model_gb'][0]:.2f} / {r['model_gb'][1]:.2f} GB vs XLA "
                        f"{r['xla_gb'][0]:.2f} / {r['xla_gb'][1]:.2f} GB; per encoder layer "
                        f"{r['model_per_layer_mb']:.0f} vs {r['xla_per_layer_mb']:.0f} MB", ""))
        elif "gemm" in r:
            libs = [lib for lib in ("xla", "torch", "numpy") if f"{lib}_fwd_ms" in r]
            out.append((f"GEMM {r['m']}x{r['k']} @ {r['k']}x{r['n']}: forward / dW / dx, "
                        + " vs ".join(libs),
                        " vs ".join("/".join(f"{r[f'{lib}_{p}_ms']:.2f}" for p in ("fwd", "dw", "dx"))
                                    for lib in libs) + " ms", ""))
        elif "jepax_ms" in r:
            p = r["preset"]
            torch = f"{r['torch_ms']:.0f} ms" if r.get("torch_ms") else "not run"
            # A comparison run with one CPU device per core (mesh.cpu_devices, not the default).
            per_core = r.get("cpu_devices", 0) != 0
            setup = f"{r['attention']} attention" + (
                f", mesh.cpu_devices={r['cpu_devices']}: {r['num_devices']} devices" if per_core
                else "")
            out += [
                (f"{p} step ({setup}): jepax / PyTorch eager",
                 f"{r['jepax_ms']:.0f} ms / {torch}", ""),
                (f"{p} speed ratio ({setup})", f"{r.get('ratio', float('nan')):.2f}",
                 "" if per_core else RATIO_TARGET.get(p, "")),
            ]
            if per_core:
                continue
            out += [
                (f"{p} analytic FLOPs per step, throughput, MFU",
                 f"{r['flops_per_step'] / 1e9:.1f} GFLOP, {r['tflops_per_s']:.3f} TFLOP/s, "
                 f"{r['mfu']:.1%} of {r['peak_source']}", MFU_TARGET.get(p, "")),
                (f"{p} peak device memory of the compiled step", f"{r['peak_memory_mib']:.0f} MiB",
                 ""),
            ]
            if r.get("torch_compile_ms"):
                out.append((f"{p} PyTorch torch.compile", f"{r['torch_compile_ms']:.0f} ms", ""))
        elif "time_to_first_step_s" in r:
            runs = r.get("time_to_first_step_runs_s", [r["time_to_first_step_s"]])
            spread = (f"; median of {len(runs)} fresh processes: "
                      + ", ".join(f"{t:.1f}" for t in runs) + " s") if len(runs) > 1 else ""
            out += [(f"{r['preset']} time to first step (tracing + compiling step and init "
                     "side by side)",
                     f"{r['time_to_first_step_s']:.1f} s ({r['compile_s']:.1f} s{spread})",
                     "<= 15 s"),
                    (f"{r['preset']} compilations during {r['next_steps']} steps after the first",
                     str(r["compiles_during_next_steps"]), "0")]
        elif "scan_compile" in r:
            layout = "scanned (model.scan_layers)" if r["scan_layers"] else "unrolled"
            out.append((f"{r['scan_compile']} I-JEPA train step (encoder depth {r['depth']}, "
                        f"predictor depth {r['pred_depth']}), {layout}: trace + lower, compile",
                        f"{r['lower_s']:.1f} s + {r['compile_s']:.1f} s = {r['total_s']:.1f} s",
                        "flat in depth" if r["scan_layers"] else ""))
        elif "scan_step" in r:
            out.append((f"{r['scan_step']} step, unrolled vs scanned (depth {r['depth']} / "
                        f"{r['pred_depth']})", f"{r['unrolled_ms']:.0f} ms vs "
                        f"{r['scanned_ms']:.0f} ms (ratio {r['ratio']:.2f}); compile "
                        f"{r['compile_unrolled_s']:.1f} vs {r['compile_scanned_s']:.1f} s",
                        "within noise"))
        elif "point_tokenizer" in r:
            seq = (f", sequencer {r['sequencer_ms']:.1f} ms" if r["variant"] == "point_jepa"
                   else "")
            out.append((f"{r['variant']} ({r['point_tokenizer']}): FPS + kNN of {r['batch_size']} "
                        f"clouds x {r['points']} points -> {r['groups']} patches",
                        f"FPS {r['fps_ms']:.1f} ms + kNN {r['knn_ms']:.1f} ms{seq}: "
                        f"{r['tokenizer_share']:.1%} of the {r['step_ms']:.0f} ms train step", ""))
        elif r.get("benchmark") == "sequence_step":
            study = r.get("study", "copying")
            out.append((f"{study} study, {r['model']} ({r['params']:,} parameters, batch "
                        f"{r['batch']} x {r['tokens_per_example']} tokens)",
                        f"{r['tokens_per_s']:,.0f} tokens/s, {r['gflop_per_s']:.1f} GFLOP/s, "
                        f"loader {r['loader_headroom']:.1f}x the step rate", "> 1x"))
        elif r.get("benchmark") == "ssm_scan":
            out.append((f"selective SSM scan, length {r['length']} ({r['channels']} channels, "
                        f"state {r['state']})",
                        f"associative {r['associative_forward_backward_ms']:.0f} ms vs sequential "
                        f"{r['sequential_forward_backward_ms']:.0f} ms forward + backward "
                        f"(max difference {r['max_abs_difference']:.1g})", ""))
        elif "variant_bench" in r:
            name = f"{r['variant']} ({r['variant_bench']}, batch {r['batch_size']})"
            memory = "" if r["peak_memory_mib"] is None else f", peak {r['peak_memory_mib']:.0f} MiB"
            out += [(f"{name}: step, throughput, analytic FLOPs",
                     f"{r['step_ms']:.0f} ms, {r['examples_per_s']:.0f} examples/s, "
                     f"{r['flops_per_step'] / 1e9:.2f} GFLOP ({r['tflops_per_s']:.3f} TFLOP/s)"
                     f"{memory}, compile {r['compile_s']:.1f} s", ""),
                    (f"{name}: data pipeline vs step",
                     f"{r['loader_batches_per_s']:.1f} batches/s, {r['headroom']:.1f}x headroom",
                     "> 1x")]
            if "run_data_wait_frac" in r:
                out.append((f"{name}: data wait in a {r['run_steps']}-step run",
                            f"{r['run_data_wait_frac']:.1%} of step time", "< 5%"))
        elif "loader_batches_per_s" in r:
            out += [(f"grain loader vs ijepa.py step (batch {r['batch_size']})",
                     f"{r['loader_batches_per_s']:.1f} vs {r['steps_per_s']:.2f} batches/s "
                     f"({r['headroom']:.0f}x headroom)", "> 1x"),
                    (f"data wait in an ijepa.py:tiny run ({r['run_steps']} steps)",
                     f"{r['run_data_wait_frac']:.1%} of step time", "< 5%")]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machine", action="store_true",
                        help="print this machine's JSON line (the first line of a results file)")
    parser.add_argument("--results", type=Path, nargs="+")
    parser.add_argument("--into", type=Path)
    args = parser.parse_args()
    if args.machine:
        print(machine_line())
        return
    if not args.results or not args.into:
        parser.error("--results and --into are required (or --machine)")

    table = [""]
    for path in args.results:
        records = [json.loads(l) for l in path.read_text().splitlines() if l.startswith("{")]
        machine = next((r["machine"] for r in records if "machine" in r), None)
        if machine is None:
            raise SystemExit(f"{path} has no machine line: produce it with benchmarks/*.sh")
        table += [f"`{path}`: {machine}", "", "| measurement | result | target |",
                  "| --- | --- | --- |"]
        table += [f"| {what} | {value} | {target} |" for what, value, target in rows(records)]
        table.append("")
    write_between_markers(args.into, table)


if __name__ == "__main__":
    main()
