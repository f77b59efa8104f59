"""Analytic FLOP counts, accelerator peak table and MFU.

Counts are of matrix multiplies (2 FLOPs per multiply-add), which dominate transformer cost;
XLA's ``cost_analysis`` under-reports cuBLAS GEMMs on GPU, so MFU always uses these counts.
Padded (invalid) tokens are counted: they are computed, so they cost time.
"""

from __future__ import annotations

import jax

# Dense peak FLOP/s per device for the dtype used in training (bf16 on accelerators).
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": 989e12,
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
}


def linear(tokens: float, d_in: int, d_out: int) -> float:
    return 2.0 * tokens * d_in * d_out


def transformer(batch: float, seq: int, width: int, depth: int, mlp_ratio: float,
                outputs: int | None = None) -> float:
    """Forward FLOPs of `depth` pre-LN blocks on (batch, seq, width); with `outputs`, the last
    block updates only that many tokens (jepax.models.vit.Transformer's `outputs`)."""
    hidden = int(width * mlp_ratio)

    def layer(queries: int) -> float:
        rows = batch * queries  # tokens that are updated
        return (linear(batch * seq, width, 3 * width)  # qkv of every token
                + linear(rows, width, width) + linear(rows, width, hidden)
                + linear(rows, hidden, width)
                + 2 * 2.0 * rows * seq * width)  # QK^T and attention-weighted V

    return (depth - 1) * layer(seq) + layer(seq if outputs is None else outputs)


def peak_flops_per_device(override: float = 0.0) -> float | None:
    """Configured peak, else the table entry for this device kind, else None (no MFU)."""
    if override > 0:
        return float(override)
    kind = jax.devices()[0].device_kind
    for name, peak in PEAK_FLOPS.items():
        if kind.startswith(name):
            return peak
    return None


def mfu(flops_per_step: float, seconds_per_step: float, peak_per_device: float | None,
        num_devices: int | None = None) -> float | None:
    if not peak_per_device or seconds_per_step <= 0:
        return None
    n = num_devices or jax.device_count()
    return flops_per_step / seconds_per_step / (peak_per_device * n)
