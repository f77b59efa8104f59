"""Deep linear JEPA vs MAE: which features each objective learns first.

Reproduces the analysis of Littwin, Saremi, Advani, Thilak, Nakkiran, Huang, Susskind, "How JEPA
Avoids Noisy Features: The Implicit Bias of Deep Linear Self Distillation Networks" (NeurIPS
2024, arXiv:2407.03475) with trained JAX networks next to the per-feature dynamics.

Data model (the paper's notation). Paired views x, y in R^d whose second moments are diagonal in
one basis (the paper's simultaneous-diagonalisability assumption): ``Syx = diag(lambda)``,
``Sxx = diag(lambda / rho)``. lambda_i is the covariance of the two views along feature i and
rho_i = lambda_i / (Sxx)_ii its regression coefficient ("influence": how well x predicts y along
i); the variance is sigma_i^2 = lambda_i / rho_i. A feature with a large lambda but a small rho
is a high-variance, noisy one. Samples: ``x_i = sigma_i z_i``,
``y_i = rho_i x_i + sigma_i sqrt(1 - rho_i^2) n_i`` (both views have variance sigma_i^2, so
0 < rho_i <= 1); with ``exact_moments`` the Gaussian draws are whitened so the sample moments
equal the model's exactly.

Networks. Encoder ``Wbar = W_L ... W_1`` (depth L, hidden width h >= d), a linear head V.
JEPA: ``1/2 E|V Wbar x - sg(Wbar_T y)|^2`` with the target encoder Wbar_T the online one under
stop-gradient (``model.ema = 0``) or an EMA copy. MAE: ``1/2 E|V Wbar x - y|^2``. Full-batch
gradient descent on the N pairs; the squared losses depend on the data only through the second
moments, so the loss is evaluated from them (the same gradients, O(h^2) per step instead of
O(N h^2)). Balanced small initialization (the paper's): ``W_1 = s B_1``,
``W_l = s B_l B_{l-1}^T``, JEPA head ``s B_L B_L^T`` (MAE decoder ``s B_L^T``) with B_l random
h x d orthonormal columns and ``s = init_scale^(1/L)``, so ``W_{l+1}^T W_{l+1} = W_l W_l^T``
(and ``V^T V = W_L W_L^T``) and the encoder starts at ``wbar(0) = eps = init_scale`` along every
feature.

Dynamics. With the target under stop-gradient the loss is a function of the online product
``P = V Wbar`` only, so gradient flow conserves the balance; along feature i every layer (and
the head) then has the same singular value u(t), the encoder value is ``wbar_i = u^L``, and
gradient flow in ``t = lr * step`` gives (target per-layer value u_T; u_T = u for pure
stop-gradient)

    JEPA:  du/dt = lambda u^L (u_T^L - u^(L+1) / rho)  ->  du/dt = lambda u^(2L) (1 - u / rho)
    MAE:   du/dt = lambda u^L (1 - u^(L+1) / rho)
    EMA:   du_T/dt = (1 - ema) / lr * (u - u_T)

JEPA converges to ``wbar = rho^L`` (the paper's Cor. 4.3), MAE to ``wbar = rho^(L/(L+1))`` (its
end-to-end map ``V Wbar`` to the regression coefficient rho).

Correspondence with the paper. Written for the encoder value ``wbar = u^L`` these are

    JEPA:  dwbar/dt = L lambda (wbar^(3-1/L) - wbar^3 / rho)
    MAE:   dwbar/dt = L lambda (wbar^(2-1/L) - wbar^3 / rho)

i.e. the paper's per-feature JEPA and MAE ODEs (Sec. 4: dwbar/dtau = lambda wbar^(3-1/L) -
lambda wbar^3 / rho, and for MAE the same with wbar^(2-1/L)) with the same lambda, rho, wbar and
init, in the paper's time ``tau = L t``: the paper's right-hand sides carry no factor L,
while gradient flow on each of the L balanced layers gives ``dwbar/dt = L wbar^(2-2/L)
(-dloss/dwbar)``, hence the factor L above. So the dynamics are the paper's, only the clock is
rescaled: every time in this study (and in the trained networks) is ``t = lr * step = tau / L``.
The factor is pinned by the paper's critical time, which carries L in the numerator (below,
checked in tests/test_deep_linear.py). (Theorem/corollary numbers: arXiv v1.)

Critical times. Half-time: the time for wbar to reach half its final value, from
``u0 = eps^(1/L)`` to the per-layer value at half ``u_h`` (JEPA: ``rho 2^(-1/L)``), solved with
``scipy.integrate.solve_ivp`` (in log u) and compared with the trained networks. For JEPA
(ema = 0) the partial fractions of ``1/(psi^(2L) (1 - psi))``, psi = u / rho, give it exactly
(:func:`jepa_half_time`):

    t_1/2(JEPA) = 1/lambda [ sum_{n=1}^{2L-1} (u0^-n - u_h^-n) / (n rho^(2L-1-n))
                             + rho^(1-2L) ln(u_h (rho - u0) / (u0 (rho - u_h))) ].

Its eps-singular part, times L, is the paper's Theorem 4.5 (:func:`paper_jepa_critical_time`),

    tau*(JEPA) = 1/lambda sum_{n=1}^{2L-1} L / (n rho^(2L-1-n) eps^(n/L)) + Theta(log eps),

and the remainder ``L t_1/2 - tau*`` indeed grows like ``rho^(1-2L) / lambda ln(1/eps)``. The
leading term (n = 2L-1), ``L / ((2L-1) lambda eps^((2L-1)/L))``, depends on lambda alone; rho
enters from n = 2L-2 on, with weights up to ``rho^-(2L-2)`` (n = 1). Relative to the leading
term, term n is of order ``eps^((2L-1-n)/L)``, which moves towards 1 as L grows at a fixed eps:
the deeper the encoder, the more JEPA orders features by rho. MAE (our expansion of its ODE):
near the init ``du/dt ~ lambda u^L``, so ``tau*(MAE) = L eps^(-(L-1)/L) / ((L-1) lambda) + O(1)``
(``ln(1/eps) / lambda`` for L = 1): lambda alone at every depth; rho enters only at O(1) (through
the end value).

Experiments. (1) equal lambda, different rho: the ratio t_1/2(lowest rho) / t_1/2(highest rho)
grows with depth for JEPA from ~1 at L = 1 and stays ~1 for MAE; (2) inversion: feature 0 has
the larger lambda but the smaller rho, feature 1 the reverse; MAE learns feature 0 first at
every depth, JEPA switches to feature 1 from some depth on; (3) Fashion-MNIST: two augmented
views (random resized crop + brightness jitter, which makes the top principal direction, mostly
overall brightness, high-variance but comparatively unpredictable), projected on the top
principal directions of view x, with a deep linear JEPA and MAE trained on them; reported: the
variance, lambda and rho of each direction in the order the encoder learns them.

Paper's claims vs what jepax measures: see ``experiments/deep_linear.py`` (the numbers there come
from ``python -m jepax.main --config=experiments/deep_linear.py``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

from jepax.config import ConfigError

log = logging.getLogger("jepax")

OBJECTIVES = ("jepa", "mae")
CURVE_LEVELS = (0.25, 0.5, 0.75, 0.9)


# ----------------------------------------------------------------------------- config checks


def _check_features(name, lam, rho):
    lam, rho = np.asarray(lam, float), np.asarray(rho, float)
    if lam.ndim != 1 or lam.shape != rho.shape or lam.size < 2:
        raise ConfigError(f"{name}: lam and rho must be equal-length lists of >= 2 features, got "
                          f"{lam.tolist()} and {rho.tolist()}")
    if not np.all(lam > 0):
        raise ConfigError(f"{name}.lam={lam.tolist()}: every covariance must be > 0")
    if not np.all((rho > 0) & (rho <= 1)):
        raise ConfigError(f"{name}.rho={rho.tolist()}: regression coefficients must lie in (0, 1] "
                          "(views of equal variance; rho <= 0 is never learned)")
    return lam, rho


def _check_depths(name, depths):
    if not depths or any(int(d) != d or d < 1 for d in depths):
        raise ConfigError(f"{name}={tuple(depths)}: depths must be integers >= 1, e.g. (1, 2, 3)")
    return tuple(int(d) for d in depths)


def _check_init(name, init_scale, lam_rho, depths):
    if not 0 < init_scale < 1:
        raise ConfigError(f"{name}={init_scale} must be in (0, 1); the theory needs a small init")
    for lam, rho in lam_rho:
        for depth in depths:
            for objective in OBJECTIVES:
                final = float(np.min(final_value(objective, rho, depth)))
                if final <= 2 * init_scale:
                    raise ConfigError(
                        f"{name}={init_scale}: at depth {depth} the {objective} encoder ends at "
                        f"{final:.3g} along the feature with rho={float(np.min(rho))}, not above "
                        f"twice the init, so 'half of the final value' is undefined; lower {name} "
                        f"below {final / 2:.2g} or raise that rho")


def check_config(config) -> None:
    """Every value the study reads, with the fix in the message."""
    depths = _check_depths("model.depths", config.model.depths)
    features = [_check_features(f"data.{name}", config.data[name].lam, config.data[name].rho)
                for name in ("equal_lambda", "inversion")]
    _check_init("model.init_scale", config.model.init_scale, features, depths)
    if not config.model.width_factor >= 1:
        raise ConfigError(f"model.width_factor={config.model.width_factor} must be >= 1 "
                          "(hidden width = width_factor * number of features)")
    if not 0 <= config.model.ema < 1:
        raise ConfigError(f"model.ema={config.model.ema} must be in [0, 1) (0: pure stop-gradient)")
    if config.data.samples < 4 * len(config.data.equal_lambda.lam):
        raise ConfigError(f"data.samples={config.data.samples}: need at least 4 per feature")
    for key in ("max_step", "horizon"):
        if not config.optim[key] > 0:
            raise ConfigError(f"optim.{key}={config.optim[key]} must be positive")
    if config.optim.horizon < 1:
        raise ConfigError(f"optim.horizon={config.optim.horizon} must be >= 1 (a multiple of the "
                          "slowest half-time)")
    if not 10 <= config.optim.records <= config.optim.min_steps <= config.optim.max_steps:
        raise ConfigError("need 10 <= optim.records <= optim.min_steps <= optim.max_steps, got "
                          f"{config.optim.records}, {config.optim.min_steps}, "
                          f"{config.optim.max_steps}")
    real = config.real
    if real.enabled:
        _check_depths("real.depths", real.depths)
        if not 0 < real.init_scale < 1:
            raise ConfigError(f"real.init_scale={real.init_scale} must be in (0, 1)")
        if not 2 <= real.components <= 784:
            raise ConfigError(f"real.components={real.components} must be in [2, 784]")
        if not 1 <= real.learned <= real.components:
            raise ConfigError(f"real.learned={real.learned} must be in [1, real.components]")
        if real.n_images < 4 * real.components:
            raise ConfigError(f"real.n_images={real.n_images}: use at least 4 per component")
        lo, hi = real.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"real.crop_scale={tuple(real.crop_scale)}: need 0 < lo <= hi <= 1")
        lo, hi = real.brightness
        if not 0 <= lo <= hi:
            raise ConfigError(f"real.brightness={tuple(real.brightness)}: need 0 <= lo <= hi")


# ----------------------------------------------------------------------------- data


def variance(lam, rho):
    """sigma^2 = lambda / rho: the variance of each view along each feature."""
    return np.asarray(lam, float) / np.asarray(rho, float)


def gaussian_views(rng: np.random.Generator, lam, rho, n: int, exact_moments: bool = True):
    """n pairs (x, y), (n, d) each, with Syx = diag(lam), Sxx = Syy = diag(lam / rho)."""
    lam, rho = np.asarray(lam, float), np.asarray(rho, float)
    var, d = variance(lam, rho), lam.size
    z = rng.standard_normal((n, 2 * d))
    if exact_moments:  # whiten the draw: sample moments = model moments, no sampling noise
        z -= z.mean(0)
        z = z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / n)).T
    x = np.sqrt(var) * z[:, :d]
    y = rho * x + np.sqrt(var * (1 - rho**2)) * z[:, d:]
    return x, y


def moments(x, y) -> dict:
    """The second moments the squared losses depend on (full-batch statistics of the pairs)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = x.shape[0]
    return {"xx": x.T @ x / n, "yx": y.T @ x / n, "yy": y.T @ y / n}


# ----------------------------------------------------------------------------- networks


def balanced_init(rng: np.random.Generator, d: int, width: int, depth: int, init_scale: float,
                  objective: str) -> dict:
    """Small balanced init: W_{l+1}^T W_{l+1} = W_l W_l^T, head^T head = W_L W_L^T, and the
    encoder product has singular value init_scale along every input feature."""
    s = init_scale ** (1.0 / depth)
    basis = [np.linalg.qr(rng.standard_normal((width, width)))[0][:, :d] for _ in range(depth)]
    enc = [s * basis[0]] + [s * basis[l] @ basis[l - 1].T for l in range(1, depth)]
    head = s * basis[-1] @ basis[-1].T if objective == "jepa" else s * basis[-1].T
    return {"enc": enc, "head": head}


def encode(enc):
    """The end-to-end encoder matrix W_L ... W_1."""
    out = enc[0]
    for w in enc[1:]:
        out = w @ out
    return out


def jepa_loss(params, target_enc, m):
    """1/2 E|V Wbar x - sg(Wbar_T y)|^2 from the moments; no gradient reaches target_enc."""
    pred = params["head"] @ encode(params["enc"])
    target = jax.lax.stop_gradient(encode(target_enc))
    return 0.5 * (jnp.trace(pred @ m["xx"] @ pred.T) - 2 * jnp.trace(pred @ m["yx"].T @ target.T)
                  + jnp.trace(target @ m["yy"] @ target.T))


def mae_loss(params, m):
    """1/2 E|V Wbar x - y|^2 from the moments."""
    pred = params["head"] @ encode(params["enc"])
    return 0.5 * (jnp.trace(pred @ m["xx"] @ pred.T) - 2 * jnp.trace(pred @ m["yx"].T)
                  + jnp.trace(m["yy"]))


def sample_loss(objective, params, target_enc, x, y):
    """The same losses as a mean over sample pairs (to check the moment form against)."""
    pred = x @ (params["head"] @ encode(params["enc"])).T
    goal = y @ encode(target_enc).T if objective == "jepa" else y
    return 0.5 * jnp.mean(jnp.sum((pred - goal) ** 2, axis=1))


def feature_values(wbar):
    """Singular value of the encoder along each input feature: |Wbar e_i| (last axis: features)."""
    return np.linalg.norm(np.asarray(wbar), axis=-2)


def balance_residual(params) -> float:
    """max_l |W_{l+1}^T W_{l+1} - W_l W_l^T| / |W_l W_l^T| over the layer pairs, head included."""
    mats = list(params["enc"]) + [params["head"]]
    worst = 0.0
    for lower, upper in zip(mats[:-1], mats[1:]):
        gram = np.asarray(lower @ lower.T)
        worst = max(worst, float(np.linalg.norm(np.asarray(upper.T @ upper) - gram)
                                 / np.linalg.norm(gram)))
    return worst


def _step(objective, m, lr, ema, carry):
    params, target = carry
    if objective == "jepa":
        grads = jax.grad(jepa_loss)(params, target, m)
    else:
        grads = jax.grad(mae_loss)(params, m)
    params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
    if objective == "jepa":  # EMA target (ema = 0: the online encoder, under stop-gradient)
        target = jax.tree.map(lambda t, p: ema * t + (1 - ema) * p, target, params["enc"])
    return params, target


@partial(jax.jit, static_argnames=("objective", "records"))
def _train(params, target, m, lr, ema, inner, objective, records):
    # A scan over records of a fori_loop over `inner` steps: one compile per shape and objective,
    # whatever the step count and learning rate.
    def chunk(carry, _):
        carry = jax.lax.fori_loop(0, inner, lambda i, c: _step(objective, m, lr, ema, c), carry)
        return carry, encode(carry[0]["enc"])

    (params, target), curve = jax.lax.scan(chunk, (params, target), None, length=records)
    return params, target, curve


def train(objective: str, params: dict, m: dict, lr: float, steps: int, records: int,
          ema: float = 0.0):
    """Full-batch gradient descent; returns (params, times (records,), encoder matrices
    (records, h, d)) recorded every steps / records steps.

    Runs in float64: at depth 5 a step changes a weight by ~1e-7 of its value, below float32's
    resolution."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective={objective!r}: use 'jepa' or 'mae'")
    inner = max(1, steps // records)
    with jax.enable_x64(True):
        as64 = lambda tree: jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)
        params, m = as64(params), as64(m)
        params, _, curve = _train(params, params["enc"], m, jnp.float64(lr), jnp.float64(ema),
                                  inner, objective, records)
        curve = np.asarray(curve)
        params = jax.tree.map(np.asarray, params)
    times = lr * inner * np.arange(1, records + 1)
    return params, times, curve


# ----------------------------------------------------------------------------- theory


def final_value(objective: str, rho, depth: int):
    """The encoder's singular value along each feature at convergence."""
    rho = np.asarray(rho, float)
    return rho**depth if objective == "jepa" else rho ** (depth / (depth + 1))


def jepa_half_time(lam, rho, depth: int, init_scale: float):
    """Closed-form JEPA (stop-gradient) half-time per feature, in t = lr * step: the partial-
    fraction integral of the module docstring, exactly."""
    lam, rho = np.asarray(lam, float), np.asarray(rho, float)
    u0, u_h = init_scale ** (1.0 / depth), rho * 2.0 ** (-1.0 / depth)
    total = rho ** (1 - 2 * depth) * np.log(u_h * (rho - u0) / (u0 * (rho - u_h)))
    for n in range(1, 2 * depth):
        total = total + (u0 ** -n - u_h ** -n) / (n * rho ** (2 * depth - 1 - n))
    return total / lam


def paper_jepa_critical_time(lam, rho, depth: int, init_scale: float):
    """The paper's Theorem 4.5 JEPA critical time without its Theta(log eps) remainder,
    1/lambda sum_{n=1}^{2L-1} L / (n rho^(2L-1-n) eps^(n/L)), in the paper's time tau = L t."""
    lam, rho = np.asarray(lam, float), np.asarray(rho, float)
    eps, L = float(init_scale), depth
    return sum(L / (n * rho ** (2 * L - 1 - n) * eps ** (n / L)) for n in range(1, 2 * L)) / lam


def curvature(objective: str, lam, rho, depth: int) -> float:
    """Largest Hessian eigenvalue at the fixed point, (L+1) sigma^2 u*^(2L): bounds the lr."""
    u_final = final_value(objective, rho, depth) ** (1.0 / depth)
    return float(np.max((depth + 1) * variance(lam, rho) * u_final ** (2 * depth)))


def _ode_rhs(objective, lam, rho, depth, ema_rate):
    d, L = len(lam), depth

    def rhs(t, state):  # state: log u (and log u_T with an EMA target)
        u = np.exp(state[:d])
        if objective == "mae":
            return lam * u ** (L - 1) * (1 - u ** (L + 1) / rho)
        u_t = np.exp(state[d:]) if ema_rate else u
        ds = lam * u ** (L - 1) * (u_t**L - u ** (L + 1) / rho)
        return np.concatenate([ds, ema_rate * (u / u_t - 1)]) if ema_rate else ds

    return rhs


def solve_ode(objective: str, lam, rho, depth: int, init_scale: float, t_eval=None,
              ema_rate: float = 0.0) -> dict:
    """Per-feature dynamics from the ODEs above: {'t_half': (d,), 'values': (len(t_eval), d)}.

    ema_rate = (1 - ema) / lr for an EMA target (0: pure stop-gradient)."""
    lam, rho = np.asarray(lam, float), np.asarray(rho, float)
    d = lam.size
    rhs = _ode_rhs(objective, lam, rho, depth, ema_rate if objective == "jepa" else 0.0)
    s0 = np.full(d, math.log(init_scale) / depth)
    if ema_rate and objective == "jepa":
        s0 = np.concatenate([s0, s0])
    log_half = np.log(final_value(objective, rho, depth) / 2) / depth  # per-layer log u at half

    def crossing(i):
        event = lambda t, s: s[i] - log_half[i]
        event.direction = 1
        return event

    def all_crossed(t, s):
        return np.min(s[:d] - log_half)

    all_crossed.terminal, all_crossed.direction = True, 1
    opts = dict(method="LSODA", rtol=1e-10, atol=1e-12)
    sol = solve_ivp(rhs, (0.0, 1e15), s0, events=[crossing(i) for i in range(d)] + [all_crossed],
                    **opts)
    if sol.status != 1:
        raise RuntimeError(f"ODE ({objective}, depth {depth}) did not reach every half value: "
                           f"{sol.message}")
    t_half = np.array([ev[0] for ev in sol.t_events[:d]])
    out = {"t_half": t_half}
    if t_eval is not None:
        t_eval = np.asarray(t_eval, float)
        sol = solve_ivp(rhs, (0.0, float(t_eval[-1])), s0, t_eval=t_eval, **opts)
        out["values"] = np.exp(depth * sol.y[:d].T)
    return out


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


# ----------------------------------------------------------------------------- one run


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


# ----------------------------------------------------------------------------- experiments


def synthetic_experiment(name, spec, config) -> dict:
    lam, rho = np.asarray(spec.lam, float), np.asarray(spec.rho, float)
    rng = np.random.default_rng(config.seed)
    m = moments(*gaussian_views(rng, lam, rho, config.data.samples, config.data.exact_moments))
    width = int(math.ceil(config.model.width_factor * lam.size))
    runs = []
    for depth in config.model.depths:
        for objective in OBJECTIVES:
            runs.append(compare_run(objective, lam, rho, depth, config.model.init_scale, width, m,
                                    config.optim, config.seed + depth, config.model.ema))
    moment_error = (np.max(np.abs(m["xx"] - np.diag(variance(lam, rho))))
                    + np.max(np.abs(m["yx"] - np.diag(lam))))
    return {"name": name, "lam": lam, "rho": rho, "init_scale": config.model.init_scale,
            "runs": runs, "moment_error": float(moment_error)}


def _fashion_views(real, rng):
    """Two augmented views of real.n_images Fashion-MNIST training images, flattened (pixels in
    [0, 1] times the brightness factor)."""
    from data_pipelines.images import DataError, fashion_mnist
    from data_pipelines.transforms import random_resized_crop

    try:
        source = fashion_mnist(real.path or None, "train")
    except DataError as e:  # propagates (no synthetic fallback), naming this study's key
        raise DataError(f"{e} (here the key is --config.real.path)") from e
    index = rng.choice(len(source.images), real.n_images, replace=False)

    def view(image):
        out = random_resized_crop(image, rng, 28, scale=tuple(real.crop_scale))
        # brightness jitter: a large-variance direction that the other view only partly predicts
        return out.reshape(-1).astype(np.float64) / 255.0 * rng.uniform(*real.brightness)

    x = np.stack([view(source.images[i]) for i in index])
    y = np.stack([view(source.images[i]) for i in index])
    return x, y


def real_experiment(config) -> dict:
    """Deep linear JEPA / MAE on Fashion-MNIST view pairs, in view x's principal directions."""
    real = config.real
    rng = np.random.default_rng(config.seed)
    x, y = _fashion_views(real, rng)
    x, y = x - x.mean(0), y - y.mean(0)
    evals, evecs = np.linalg.eigh(x.T @ x / len(x))
    basis = evecs[:, ::-1][:, :real.components]
    scale = math.sqrt(evals[-1])  # top variance -> 1
    px, py = x @ basis / scale, y @ basis / scale
    m = moments(px, py)
    var, lam = np.diag(m["xx"]).copy(), np.diag(m["yx"]).copy()  # variance, covariance lambda
    rho = lam / var
    off = m["yx"] - np.diag(np.diag(m["yx"]))
    if not np.all(rho > 0):
        raise ConfigError(f"real: some principal directions have rho <= 0 ({np.round(rho, 3)}); "
                          "lower real.components")
    _check_init("real.init_scale", real.init_scale, [(lam, rho)], real.depths)
    log.info("fashion-mnist: variance %s lambda %s rho %s", np.round(var, 3), np.round(lam, 3),
             np.round(rho, 3))
    width = int(math.ceil(config.model.width_factor * lam.size))
    runs = []
    for depth in real.depths:
        for objective in OBJECTIVES:
            # train until the diagonal theory says `learned` directions are past half
            t_theory = np.sort(solve_ode(objective, lam, rho, depth, real.init_scale)["t_half"])
            horizon = config.optim.horizon * float(t_theory[real.learned - 1])
            run = compare_run(objective, lam, rho, depth, real.init_scale, width, m, config.optim,
                              config.seed + depth, 0.0, horizon_time=horizon,
                              init_key="real.init_scale")
            run["var_eff"], run["rho_eff"] = subspace_stats(run["wbar"], m)
            run["learned"] = learned_directions(run["times"], run["wbar"], m, real.learned)
            log.info("%s L=%d learns: %s", objective, depth, ", ".join(
                f"PC{d['settled']['main_pc']} (variance {d['settled']['var']:.2f}, lambda "
                f"{d['settled']['lambda']:.2f}, rho {d['settled']['rho']:.2f})"
                for d in run["learned"]))
            runs.append(run)
    return {"name": "fashion_mnist", "lam": lam, "rho": rho, "var": var, "runs": runs,
            "offdiag_yx": float(np.linalg.norm(off) / np.linalg.norm(m["yx"]))}


def subspace_stats(wbar, m):
    """Variance and regression coefficient of what the encoder has learned, over time:
    var_eff = tr(W Sxx W')/tr(W W'), rho_eff = tr(W Syx W')/tr(W Sxx W')."""
    energy = np.einsum("kij,kij->k", wbar, wbar)
    var = np.einsum("kij,jl,kil->k", wbar, m["xx"], wbar)
    cov = np.einsum("kij,jl,kil->k", wbar, m["yx"], wbar)
    return var / energy, cov / var


def _direction(wbar, found, m):
    """Top right singular vector of wbar with the directions in `found` projected out."""
    r = np.linalg.svd(wbar - wbar @ found @ found.T)[2][0]
    var, lam = float(r @ m["xx"] @ r), float(r @ m["yx"] @ r)
    return r, {"var": var, "lambda": lam, "rho": lam / var,
               "main_pc": int(np.argmax(r**2)), "overlap": float(np.max(r**2))}


def learned_directions(times, wbar, m, count) -> list[dict]:
    """The first `count` directions the encoder learns, in order. Direction j is learned at t,
    the first record where the j-th singular value of Wbar reaches half its end value. It is
    read twice, as the top right singular vector r with the earlier directions projected out:
    'rise' at t, and 'settled' on the plateau after it (the last record before the next singular
    value reaches 10% of its end value) -- during a fast rise the direction can still rotate,
    e.g. from the top principal direction towards a higher-rho one. Each reading gives r's
    variance r'Sxx r, covariance lambda = r'Syx r, regression coefficient rho = lambda / variance
    and its largest squared overlap with the input basis (principal directions)."""
    sing = np.linalg.svd(wbar, compute_uv=False)
    found = np.zeros((wbar.shape[-1], 0))
    out = []
    for j in range(count):
        half = int(np.nonzero(sing[:, j] >= sing[-1, j] / 2)[0][0])
        plateau = len(times) - 1
        if j + 1 < sing.shape[1]:
            nxt = np.nonzero(sing[:, j + 1] >= 0.1 * sing[-1, j + 1])[0]
            plateau = max(half, int(nxt[0]) - 1) if nxt.size else plateau
        _, rise = _direction(wbar[half], found, m)
        r, settled = _direction(wbar[plateau], found, m)
        found = np.concatenate([found, r[:, None]], axis=1)
        out.append({"t": float(times[half]), "rise": rise, "settled": settled})
    return out


# ----------------------------------------------------------------------------- claims and outputs


def _ratio(run, slow, fast, key):
    return float(run[key][slow] / run[key][fast])


def claims(equal, inversion) -> dict:
    """The paper's qualitative claims, measured (sim) and predicted (ode)."""
    out = {}
    lo, hi = int(np.argmin(equal["rho"])), int(np.argmax(equal["rho"]))
    for source in ("sim", "ode"):
        spread = {o: [_ratio(r, lo, hi, f"t_half_{source}") for r in equal["runs"]
                      if r["objective"] == o] for o in OBJECTIVES}
        out[f"equal_lambda_spread_{source}"] = spread
    out["equal_lambda_depths"] = [r["depth"] for r in equal["runs"] if r["objective"] == "jepa"]
    # the paper's Theorem 4.5 sum (its Theta(log eps) remainder dropped), for JEPA
    thm = lambda exp, depth: paper_jepa_critical_time(exp["lam"], exp["rho"], depth,
                                                      exp["init_scale"])
    out["equal_lambda_spread_thm45"] = [float(thm(equal, d)[lo] / thm(equal, d)[hi])
                                        for d in out["equal_lambda_depths"]]
    big_lam = int(np.argmax(inversion["lam"]))
    big_rho = int(np.argmax(inversion["rho"]))
    for source in ("sim", "ode"):
        first = {o: {r["depth"]: ("high_rho" if r[f"order_{source}"][0] == big_rho else
                                  "high_lambda" if r[f"order_{source}"][0] == big_lam else "other")
                     for r in inversion["runs"] if r["objective"] == o} for o in OBJECTIVES}
        out[f"inversion_first_{source}"] = first
        flips = [d for d, f in first["jepa"].items() if f == "high_rho"]
        out[f"inversion_jepa_flip_depth_{source}"] = min(flips) if flips else None
        out[f"inversion_mae_always_high_lambda_{source}"] = all(
            f == "high_lambda" for f in first["mae"].values())
        out[f"inversion_ratio_{source}"] = {
            o: [_ratio(r, big_lam, big_rho, f"t_half_{source}") for r in inversion["runs"]
                if r["objective"] == o] for o in OBJECTIVES}
    out["inversion_ratio_thm45"] = [
        float(thm(inversion, r["depth"])[big_lam] / thm(inversion, r["depth"])[big_rho])
        for r in inversion["runs"] if r["objective"] == "jepa"]
    return out


def _fmt(v):
    return "never" if not np.isfinite(v) else f"{v:.4g}"


def markdown(experiments, summary) -> str:
    lines = ["# Deep linear JEPA vs MAE: half-times t_1/2 per feature (simulation / ODE)", "",
             "λ: covariance of the two views along the feature, ρ: its regression coefficient "
             "(variance λ/ρ). t_1/2: gradient-flow time t = lr x steps (the paper's time is L t) "
             "for the encoder's singular value along the feature to reach half its final value "
             "(JEPA ρ^L, MAE ρ^(L/(L+1))). "
             "Order: features by t_1/2, first learned first. Relative errors of the "
             "simulation against the ODE: t_1/2, and the largest over the times at which each "
             "curve reaches 25/50/75/90% of its final value.", ""]
    for exp in experiments:
        lam, rho = exp["lam"], exp["rho"]
        feats = [f"f{i} (λ={a:.3g}, ρ={b:.3g})" for i, (a, b) in enumerate(zip(lam, rho))]
        lines += [f"## {exp['name']}", ""]
        if "offdiag_yx" in exp:
            lines += _real_tables(exp)
            continue
        lines += ["| objective | L | " + " | ".join(feats) + " | order sim | order ODE | "
                  "t_1/2 rel err | curve rel err | lr | steps |",
                  "|---|---|" + "---|" * (len(feats) + 6)]
        for r in exp["runs"]:
            cells = [f"{_fmt(a)} / {_fmt(b)}" for a, b in zip(r["t_half_sim"], r["t_half_ode"])]
            lines.append(f"| {r['objective']} | {r['depth']} | " + " | ".join(cells)
                         + f" | {list(map(int, r['order_sim']))} | {list(map(int, r['order_ode']))}"
                         f" | {np.max(r['rel_err']):.2%} | {r['curve_time_err']:.2%}"
                         f" | {r['lr']:.3g} | {r['steps']} |")
        lines.append("")
    c = summary["claims"]
    lines += ["## Claims", "",
              "Paper Thm 4.5: the ratio of the paper's JEPA critical times without their "
              "Θ(log ε) remainder.", "",
              "| claim | simulation | ODE | paper Thm 4.5 |", "|---|---|---|---|",
              f"| equal λ: t_1/2(lowest ρ)/t_1/2(highest ρ), JEPA, L={c['equal_lambda_depths']} | "
              f"{_list(c['equal_lambda_spread_sim']['jepa'])} | "
              f"{_list(c['equal_lambda_spread_ode']['jepa'])} | "
              f"{_list(c['equal_lambda_spread_thm45'])} |",
              f"| equal λ: same ratio, MAE | {_list(c['equal_lambda_spread_sim']['mae'])} | "
              f"{_list(c['equal_lambda_spread_ode']['mae'])} | |",
              f"| inversion: t_1/2(high-λ)/t_1/2(high-ρ), JEPA | "
              f"{_list(c['inversion_ratio_sim']['jepa'])} | "
              f"{_list(c['inversion_ratio_ode']['jepa'])} | "
              f"{_list(c['inversion_ratio_thm45'])} |",
              f"| inversion: same ratio, MAE | {_list(c['inversion_ratio_sim']['mae'])} | "
              f"{_list(c['inversion_ratio_ode']['mae'])} | |",
              f"| inversion: first depth where JEPA learns the high-ρ feature first | "
              f"{c['inversion_jepa_flip_depth_sim']} | {c['inversion_jepa_flip_depth_ode']} | |",
              f"| inversion: MAE learns the high-λ feature first at every depth | "
              f"{c['inversion_mae_always_high_lambda_sim']} | "
              f"{c['inversion_mae_always_high_lambda_ode']} | |", ""]
    return "\n".join(lines)


def _real_tables(exp) -> list[str]:
    learned = len(exp["runs"][0]["learned"])
    lines = [f"Top {len(exp['lam'])} principal directions (PC) of view x, top variance scaled "
             "to 1. Syx is not diagonal in this basis (off-diagonal mass "
             f"{exp['offdiag_yx']:.2f}), so the ODE below uses only its diagonal and each learned "
             "direction mixes PCs.", "",
             "| PC | variance | λ | ρ | "
             + " | ".join(f"{r['objective']} L={r['depth']} ODE t_1/2" for r in exp["runs"])
             + " |",
             "|---|---|---|---|" + "---|" * len(exp["runs"])]
    for i, (var, lam, rho) in enumerate(zip(exp["var"], exp["lam"], exp["rho"])):
        lines.append(f"| {i} | {var:.3f} | {lam:.3f} | {rho:.3f} | "
                     + " | ".join(_fmt(r["t_half_ode"][i]) for r in exp["runs"]) + " |")
    lines += ["", "Trained networks: directions in the order they are learned (t: the j-th "
              "singular value of the encoder reaches half its end value). Each is the top right "
              "singular vector r, earlier ones projected out, read at t (rise) and on the plateau "
              "after it (settled): main PC (squared overlap), variance σ²_r = r'Sxx r, "
              "λ_r = r'Syx r, ρ_r = λ_r / σ²_r. "
              "The diagonal ODE's first PCs for comparison.", "",
              "| objective | L | # | t | rise | settled | ODE order |",
              "|---|---|---|---|---|---|---|"]
    cell = lambda d: (f"PC{d['main_pc']} ({d['overlap']:.2f}) σ²={d['var']:.2f} "
                      f"λ={d['lambda']:.2f} ρ={d['rho']:.2f}")
    for r in exp["runs"]:
        for j, d in enumerate(r["learned"]):
            order = list(map(int, r["order_ode"][:learned])) if j == 0 else ""
            lines.append(f"| {r['objective']} | {r['depth']} | {j + 1} | {_fmt(d['t'])} | "
                         f"{cell(d['rise'])} | {cell(d['settled'])} | {order} |")
    return lines + [""]


def _list(values):
    return ", ".join(f"{v:.4g}" for v in values)


def _plot_curves(exp, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = sorted({r["depth"] for r in exp["runs"]})
    fig, axes = plt.subplots(2, len(depths), figsize=(3.2 * len(depths), 5.6), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(exp["lam"])))
    for r in exp["runs"]:
        ax = axes[OBJECTIVES.index(r["objective"]), depths.index(r["depth"])]
        final = final_value(r["objective"], exp["rho"], r["depth"])
        for i, color in enumerate(colors):
            label = f"λ={exp['lam'][i]:.2g} ρ={exp['rho'][i]:.2g}"
            ax.plot(r["times"], r["sim"][:, i] / final[i], color=color, lw=1.8, label=label)
            ax.plot(r["times"], r["ode"][:, i] / final[i], color="k", ls=":", lw=1)
        ax.axhline(0.5, color="grey", lw=0.5)
        ax.set_title(f"{r['objective'].upper()} L={r['depth']}", fontsize=9)
        ax.set_xlabel("t = lr × step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("|Wbar e_i| / final (sim; ODE dotted)", fontsize=8)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(exp["name"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_real(exp, curves_path, subspace_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = sorted({r["depth"] for r in exp["runs"]})
    # singular values of the encoder over time, labelled with the direction each one learns
    fig, axes = plt.subplots(2, len(depths), figsize=(3.6 * len(depths), 5.6), squeeze=False)
    for r in exp["runs"]:
        ax = axes[OBJECTIVES.index(r["objective"]), depths.index(r["depth"])]
        sing = np.linalg.svd(r["wbar"], compute_uv=False)
        for j, d in enumerate(r["learned"]):
            d = d["settled"]
            ax.plot(r["times"], sing[:, j] / sing[-1, j], color=f"C{j}",
                    label=f"#{j + 1} PC{d['main_pc']} σ²={d['var']:.2f} ρ={d['rho']:.2f}")
            ax.axvline(r["learned"][j]["t"], color=f"C{j}", lw=0.5, ls=":")
        ax.set_title(f"{r['objective'].upper()} L={r['depth']}", fontsize=9)
        ax.set_xlabel("t = lr × step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("singular value of Wbar / end value", fontsize=8)
    fig.suptitle("Fashion-MNIST: directions in the order learned (variance σ²_r, ρ_r of each)")
    fig.tight_layout()
    fig.savefig(curves_path, dpi=110)
    plt.close(fig)

    # variance and rho of the learned subspace, once the first direction is a quarter learned
    shades = {o: plt.get_cmap(c)(np.linspace(0.45, 0.95, len(depths)))
              for o, c in (("jepa", "Blues"), ("mae", "Reds"))}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in exp["runs"]:
        top = np.linalg.svd(r["wbar"], compute_uv=False)[:, 0]
        shown = top >= 0.25 * top[-1]
        color = shades[r["objective"]][depths.index(r["depth"])]
        x = r["times"] / r["times"][-1]
        label = f"{r['objective'].upper()} L={r['depth']}"
        axes[0].plot(x, np.where(shown, r["rho_eff"], np.nan), color=color, label=label)
        axes[1].plot(x, np.where(shown, r["var_eff"], np.nan), color=color, label=label)
    axes[0].axhline(exp["rho"][0], color="grey", ls="--", lw=0.8, label="PC0 (top variance)")
    axes[1].axhline(exp["var"][0], color="grey", ls="--", lw=0.8, label="PC0 (top variance)")
    axes[0].set_ylabel("ρ of the learned subspace")
    axes[1].set_ylabel("variance of the learned subspace")
    for ax in axes:
        ax.set_xlabel("t / t_end")
        ax.legend(fontsize=7)
    fig.suptitle("Fashion-MNIST: what the encoder has learned (from 25% of its first direction)")
    fig.tight_layout()
    fig.savefig(subspace_path, dpi=110)
    plt.close(fig)


def _plot_ratios(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = summary["claims"]
    depths = c["equal_lambda_depths"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, title in ((axes[0], "equal_lambda_spread", "equal λ: t½(low ρ)/t½(high ρ)"),
                           (axes[1], "inversion_ratio", "inversion: t½(high λ)/t½(high ρ)")):
        for o, color in zip(OBJECTIVES, ("C0", "C3")):
            ax.plot(depths, c[f"{key}_ode"][o], color=color, label=f"{o.upper()} ODE")
            ax.plot(depths, c[f"{key}_sim"][o], "o", color=color, label=f"{o.upper()} sim")
        ax.plot(depths, c[f"{key}_thm45"], "--", color="C0", lw=0.8,
                label="JEPA, paper Thm 4.5 sum")
        ax.axhline(1, color="grey", lw=0.5)
        ax.set_xlabel("encoder depth L")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None  # inf: never reached half
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _strip(exp):
    """An experiment without its curves (they go to the plots)."""
    curves = ("times", "sim", "ode", "wbar", "var_eff", "rho_eff")
    runs = [{k: v for k, v in r.items() if k not in curves} for r in exp["runs"]]
    return {**exp, "runs": runs}


def run(config, workdir: Path) -> dict:
    """Run the three experiments, write JSON, markdown and plots under <workdir>/results/."""
    check_config(config)
    start = time.perf_counter()
    results = Path(workdir) / "results"
    results.mkdir(parents=True, exist_ok=True)
    real = None
    if config.real.enabled:  # first: a missing dataset fails before minutes of synthetic runs
        log.info("deep_linear: fashion-mnist, depths %s", tuple(config.real.depths))
        real = real_experiment(config)
    experiments = []
    for name in ("equal_lambda", "inversion"):
        log.info("deep_linear: %s, depths %s", name, tuple(config.model.depths))
        experiments.append(synthetic_experiment(name, config.data[name], config))
    summary = {"claims": claims(*experiments)}
    if real is not None:
        experiments.append(real)
        summary["fashion_mnist"] = _strip(real)
    synthetic = [r for e in experiments[:2] for r in e["runs"]]
    summary["max_rel_err_half_time"] = float(max(np.max(r["rel_err"]) for r in synthetic))
    summary["max_curve_dev"] = float(max(r["curve_max_dev"] for r in synthetic))
    summary["max_curve_time_err"] = float(max(r["curve_time_err"] for r in synthetic))
    summary["max_balance_residual"] = float(max(r["balance_residual"] for r in synthetic))
    summary["experiments"] = {e["name"]: _strip(e) for e in experiments[:2]}
    files = []
    for exp in experiments[:2]:
        _plot_curves(exp, results / f"{exp['name']}_curves.png")
        files.append(f"{exp['name']}_curves.png")
    if real is not None:
        _plot_real(real, results / "fashion_mnist_curves.png",
                   results / "fashion_mnist_subspace.png")
        files += ["fashion_mnist_curves.png", "fashion_mnist_subspace.png"]
    _plot_ratios(summary, results / "half_time_ratios.png")
    (results / "deep_linear.md").write_text(markdown(experiments, summary))
    summary["wall_seconds"] = time.perf_counter() - start
    summary["files"] = files + ["half_time_ratios.png", "deep_linear.md", "deep_linear.json"]
    summary = _jsonable(summary)
    (results / "deep_linear.json").write_text(json.dumps(summary, indent=1))
    log.info("deep_linear: wrote %s in %.0fs", results, summary["wall_seconds"])
    return {"results": str(results), "claims": summary["claims"],
            "max_rel_err_half_time": summary["max_rel_err_half_time"],
            "max_curve_time_err": summary["max_curve_time_err"],
            "wall_seconds": summary["wall_seconds"]}
