"""The deep linear study's experiments, their config checks and the claims measured on them.

(1) equal lambda, different rho: the ratio t_1/2(lowest rho) / t_1/2(highest rho) grows with
depth for JEPA from ~1 at L = 1 and stays ~1 for MAE; (2) inversion: feature 0 has the larger
lambda but the smaller rho, feature 1 the reverse; MAE learns feature 0 first at every depth,
JEPA switches to feature 1 from some depth on; (3) sequential: a low-rho feature learned well
before a higher-rho one, where the per-feature ODEs stop describing JEPA (theory.py, last
paragraph): the second feature's half-time trained against solved, and the first feature pushed
out of its hidden direction and learned again; (4) Fashion-MNIST: two augmented views (random resized crop + brightness jitter, which makes the
top principal direction, mostly overall brightness, high-variance but comparatively
unpredictable), projected on the top principal directions of view x, with a deep linear JEPA and
MAE trained on them; reported: the variance, lambda and rho of each direction in the order the
encoder learns them.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from jepax.config import ConfigError
from jepax.studies.deep_linear.compare import compare_run
from jepax.studies.deep_linear.theory import (OBJECTIVES, final_value, gaussian_views, moments,
                                              paper_jepa_critical_time, solve_ode, variance)

log = logging.getLogger("jepax")

# synthetic experiments run at model.depths; "sequential" names its own (data.sequential.depths)
SYNTHETIC = ("equal_lambda", "inversion")


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
                for name in SYNTHETIC]
    _check_init("model.init_scale", config.model.init_scale, features, depths)
    sequential = config.data.sequential
    _check_init("model.init_scale", config.model.init_scale,
                [_check_features("data.sequential", sequential.lam, sequential.rho)],
                _check_depths("data.sequential.depths", sequential.depths))
    if not config.model.width_factor >= 1:
        raise ConfigError(f"model.width_factor={config.model.width_factor} must be >= 1 "
                          "(hidden width = width_factor * number of features)")
    if not 0 <= config.model.ema < 1:
        raise ConfigError(f"model.ema={config.model.ema} must be in [0, 1) (0: pure stop-gradient)")
    most = max(len(config.data[name].lam) for name in (*SYNTHETIC, "sequential"))
    if config.data.samples < 4 * most:
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


# ----------------------------------------------------------------------------- synthetic views


def synthetic_experiment(name, spec, depths, config) -> dict:
    lam, rho = np.asarray(spec.lam, float), np.asarray(spec.rho, float)
    rng = np.random.default_rng(config.seed)
    m = moments(*gaussian_views(rng, lam, rho, config.data.samples, config.data.exact_moments))
    width = int(math.ceil(config.model.width_factor * lam.size))
    runs = []
    for depth in depths:
        for objective in OBJECTIVES:
            runs.append(compare_run(objective, lam, rho, depth, config.model.init_scale, width, m,
                                    config.optim, config.seed + depth, config.model.ema))
    moment_error = (np.max(np.abs(m["xx"] - np.diag(variance(lam, rho))))
                    + np.max(np.abs(m["yx"] - np.diag(lam))))
    return {"name": name, "lam": lam, "rho": rho, "init_scale": config.model.init_scale,
            "runs": runs, "moment_error": float(moment_error)}


# ----------------------------------------------------------------------------- Fashion-MNIST


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


# ----------------------------------------------------------------------------- claims


def _ratio(run, slow, fast, key):
    return float(run[key][slow] / run[key][fast])


def claims(equal, inversion, sequential) -> dict:
    """The paper's qualitative claims, measured (sim) and predicted (ode), and where the ODEs
    stop holding."""
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
    out.update(_sequential_claims(sequential))
    return out


def _sequential_claims(exp) -> dict:
    """Where the decoupled ODEs fail, per objective and depth: the half-time of the feature the
    ODE learns second, trained and solved, and their ratio (the first feature's ratio beside it);
    the cosine between the two features' encoder columns at the last record before the second
    reaches half (decoupled: 0); the first feature's lowest value (/ final) from then on and the
    time it spends below half after it was first learned (decoupled: 1 and 0)."""
    out = {"sequential_depths": [r["depth"] for r in exp["runs"] if r["objective"] == "jepa"]}
    keys = ("second_sim", "second_ode", "second_sim_over_ode", "first_sim_over_ode",
            "second_alignment", "first_lowest", "first_forgotten")
    for key in keys:
        out[f"sequential_{key}"] = {o: [] for o in OBJECTIVES}
    for r in exp["runs"]:
        first, second = (int(i) for i in r["order_ode"][:2])
        sim, ode = r["t_half_sim"], r["t_half_ode"]
        k = max(1, min(int(np.searchsorted(r["times"], sim[second])), len(r["times"]) - 1))
        a, b = r["wbar"][k - 1][:, first], r["wbar"][k - 1][:, second]
        learned = r["sim"][:, first] / final_value(r["objective"], exp["rho"], r["depth"])[first]
        since = int(np.argmax(learned >= 0.5))
        spacing = r["times"][1] - r["times"][0]
        values = (sim[second], ode[second], sim[second] / ode[second], sim[first] / ode[first],
                  abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)), np.min(learned[k:]),
                  spacing * np.count_nonzero(learned[since:] < 0.5))
        for key, value in zip(keys, values):
            out[f"sequential_{key}"][r["objective"]].append(float(value))
    return out
