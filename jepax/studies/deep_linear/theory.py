"""The theory side of the deep linear study: data model, per-feature ODEs, closed forms.

Data model (the paper's notation). Paired views x, y in R^d whose second moments are diagonal in
one basis (the paper's simultaneous-diagonalisability assumption): ``Syx = diag(lambda)``,
``Sxx = diag(lambda / rho)``. lambda_i is the covariance of the two views along feature i and
rho_i = lambda_i / (Sxx)_ii its regression coefficient ("influence": how well x predicts y along
i); the variance is sigma_i^2 = lambda_i / rho_i. A feature with a large lambda but a small rho
is a high-variance, noisy one. Samples: ``x_i = sigma_i z_i``,
``y_i = rho_i x_i + sigma_i sqrt(1 - rho_i^2) n_i`` (both views have variance sigma_i^2, so
0 < rho_i <= 1); with ``exact_moments`` the Gaussian draws are whitened so the sample moments
equal the model's exactly.

Dynamics. With the target under stop-gradient the loss is a function of the online product
``P = V Wbar`` only, so gradient flow conserves the balance of the init (simulation.py); along
feature i every layer (and the head) then has the same singular value u(t), the encoder value is
``wbar_i = u^L``, and gradient flow in ``t = lr * step`` gives (target per-layer value u_T;
u_T = u for pure stop-gradient)

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

Where the per-feature ODEs stop holding. They treat the features as decoupled, each rising from
the small balanced init in its own hidden direction. For JEPA that solution is unstable once a
low-rho feature 0 is learned well before a higher-rho feature 1: the head then has gain v along
feature 0's hidden direction, and the component a of feature 1's encoder column along it (zero
in the decoupled solution, ~1e-16 of it from round-off) grows exponentially, at L = 1 as
``da/dt = lambda_1 v (1 - v / rho_1) a`` with v = rho_0 (positive as rho_0 < rho_1; MAE's target
y_1 is not in the head's range there, so its a decays). Feature 1's own rise takes
~1 / (lambda_1 eps), this one ~ln(1e16) / rate after feature 0's. Feature 1 then pushes feature
0 out of that direction, and feature 0 is learned again from its small remainder. Measured (the
"sequential" experiment, f0: lambda 1, rho 0.35; f1: lambda 0.5, rho 1; eps = 1e-3; L = 1, 2,
3): JEPA learns f1 at 0.666, 0.658, 0.997 of the ODE's half-time (1338 vs 2010, 14564 vs 22147,
45660 vs 45786); just before, f1's encoder column is parallel to f0's (cosine 0.9999, 0.9997,
0.63); f0 then falls to 0.9%, 1.7%, 70% of its final value and stays below half for 341 and 4385
time units (L = 1, 2) before it is learned again. f0's first rise and MAE agree with the ODE to
<= 0.22%. Not a step-size effect: with a 40x smaller lr (L = 1) the ratio is 0.662 and f0's low
0.9%. Seeding a at 1e-14, 1e-10, 1e-6 of eps instead of round-off (L = 1) moves t_1/2(f1) from
1340 to 1329, 1245, 1163: ~82 time units per 4 decades, a rate of 0.112 (the formula: 0.114).
It is a race: at eps = 1e-2 (the :tiny preset) f1's own rise wins and the ODE holds (0.2%).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

OBJECTIVES = ("jepa", "mae")


# ----------------------------------------------------------------------------- data model


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


# ----------------------------------------------------------------------------- closed forms


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


# ----------------------------------------------------------------------------- ODEs


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
