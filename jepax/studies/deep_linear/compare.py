"""One run: a trained network next to its solved ODE on the same time grid, and the measures
that compare the two (half-times, times to fractions of the final value, balance)."""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from jepax.config import ConfigError
from jepax.studies.deep_linear.simulation import (balance_residual, balanced_init,
                                                  feature_values, train)
from jepax.studies.deep_linear.theory import curvature, final_value, solve_ode

log = logging.getLogger("jepax")

CURVE_LEVELS = (0.25, 0.5, 0.75, 0.9)


def level_times(times, values, init_value, level) -> np.ndarray:
    """First time each column of values reaches level (per column; inf: never). Interpolates
    log(value) linearly between records: the rise is close to exponential there, so this is far
    more accurate than linear interpolation on the steep curves of deep networks."""
    times = np.concatenate([[0.0], times])
    values = np.log(np.concatenate([np.full((1, values.shape[1]), init_value), values]))
    goal = np.log(np.broadcast_to(level, values.shape[1:]))
    out = np.full(values.shape[1], np.inf)
    for i in range(values.shape[1]):
        above = np.nonzero(values[:, i] >= goal[i])[0]
        if above.size and above[0] > 0:
            k = above[0]
            v0, v1 = values[k - 1, i], values[k, i]
            out[i] = times[k - 1] + (goal[i] - v0) / (v1 - v0) * (times[k] - times[k - 1])
    return out


def curve_time_error(times, sim, ode, init_value, final) -> float:
    """Whole-curve agreement measured along time: max relative difference between the times the
    simulation and the ODE (same records, same interpolation) reach 25/50/75/90% of the final
    value. A value gap on a steep rise is a tiny time shift; this is the meaningful measure."""
    worst = 0.0
    for q in CURVE_LEVELS:
        level = q * np.asarray(final)
        keep = level > 2 * init_value  # levels too close to the init are reached at once
        t_sim, t_ode = (level_times(times, v, init_value, level)[keep] for v in (sim, ode))
        both = np.isfinite(t_sim) & np.isfinite(t_ode)
        if np.any(np.isfinite(t_sim) != np.isfinite(t_ode)):
            return float("inf")
        if both.any():
            worst = max(worst, float(np.max(np.abs(t_sim[both] - t_ode[both]) / t_ode[both])))
    return worst


def _schedule(objective, lam, rho, depth, horizon_time, optim, init_key):
    """lr and step count: lr * curvature <= max_step, at least min_steps steps."""
    kappa = curvature(objective, lam, rho, depth)
    steps = max(optim.min_steps, math.ceil(horizon_time * kappa / optim.max_step))
    steps = math.ceil(steps / optim.records) * optim.records
    if steps > optim.max_steps:
        raise ConfigError(
            f"{objective} at depth {depth} needs {steps} steps to cover t={horizon_time:.3g} with "
            f"lr*curvature <= optim.max_step={optim.max_step}; raise optim.max_steps to {steps}, "
            f"raise optim.max_step (less accurate) or raise {init_key} (shorter runs)")
    return horizon_time / steps, steps, kappa


def compare_run(objective, lam, rho, depth, init_scale, width, m, optim, seed, ema=0.0,
                horizon_time=None, init_key="model.init_scale") -> dict:
    """Train one network and solve its ODE on the same time grid."""
    lam, rho = np.asarray(lam, float), np.asarray(rho, float)
    fixed_horizon = horizon_time is not None
    if not fixed_horizon:  # ODE half-times first: they set how long to train
        horizon_time = optim.horizon * float(np.max(
            solve_ode(objective, lam, rho, depth, init_scale)["t_half"]))
    lr, steps, kappa = _schedule(objective, lam, rho, depth, horizon_time, optim, init_key)
    ema_rate = (1 - ema) / lr if ema else 0.0
    for _ in range(5 if ema and not fixed_horizon else 0):
        # an EMA target lags by ~1/ema_rate (in time units, so it depends on lr): refit the horizon
        longer = optim.horizon * float(np.max(
            solve_ode(objective, lam, rho, depth, init_scale, ema_rate=ema_rate)["t_half"]))
        if abs(longer - horizon_time) < 0.01 * horizon_time:
            break
        horizon_time = longer
        lr, steps, kappa = _schedule(objective, lam, rho, depth, horizon_time, optim, init_key)
        ema_rate = (1 - ema) / lr
    params = balanced_init(np.random.default_rng(seed), lam.size, width, depth, init_scale,
                           objective)
    start = time.perf_counter()
    params, times, wbar = train(objective, params, m, lr, steps, optim.records, ema)
    seconds = time.perf_counter() - start
    values = feature_values(wbar)
    ode = solve_ode(objective, lam, rho, depth, init_scale, t_eval=times, ema_rate=ema_rate)
    final = final_value(objective, rho, depth)
    t_sim = level_times(times, values, init_scale, final / 2)
    t_ode = ode["t_half"]
    log.info("%s L=%d: %d steps, lr=%.3g, %.1fs; t_half sim %s ode %s", objective, depth, steps,
             lr, seconds, np.array2string(t_sim, precision=4), np.array2string(t_ode, precision=4))
    return {
        "objective": objective, "depth": depth, "lr": lr, "steps": steps,
        "lr_times_curvature": lr * kappa, "train_seconds": seconds,
        "t_half_sim": t_sim, "t_half_ode": t_ode,
        "rel_err": np.abs(t_sim - t_ode) / t_ode,
        "order_sim": np.argsort(t_sim, kind="stable"),
        "order_ode": np.argsort(t_ode, kind="stable"),
        "curve_max_dev": float(np.max(np.abs(values - ode["values"]) / final)),
        "curve_time_err": curve_time_error(times, values, ode["values"], init_scale, final),
        "end_over_final": values[-1] / final,
        "balance_residual": balance_residual(params),
        "times": times, "sim": values, "ode": ode["values"], "wbar": wbar,
    }
