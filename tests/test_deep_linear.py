"""Deep linear JEPA vs MAE study: ODEs against trained networks, balance, stop-gradient, :tiny."""

import json
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

from jepax import train as train_lib
from jepax.config import ConfigError, load_config
from jepax.studies import deep_linear
from jepax.studies.deep_linear import compare, experiments, simulation, theory

ROOT = Path(__file__).resolve().parents[1]
# the paper's notation: lambda = covariance of the views, rho = regression coefficient; f0 has the
# larger lambda (variance 1), f1 the larger rho (variance 0.45)
LAM, RHO = np.array([0.4, 0.36]), np.array([0.4, 0.8])


def optim(max_step=0.02, records=500, min_steps=2000):
    return ml_collections.ConfigDict(dict(max_step=max_step, horizon=1.5, records=records,
                                          min_steps=min_steps, max_steps=500_000))


def views(n=512, seed=0):
    x, y = theory.gaussian_views(np.random.default_rng(seed), LAM, RHO, n)
    return x, y, theory.moments(x, y)


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_ode_matches_trained_network_at_small_lr(objective):
    _, _, m = views()
    run = compare.compare_run(objective, LAM, RHO, 2, 1e-2, 4, m, optim(), seed=0)
    assert run["lr_times_curvature"] <= 0.02 + 1e-12
    np.testing.assert_allclose(run["t_half_sim"], run["t_half_ode"], rtol=3e-3)
    assert run["curve_time_err"] < 3e-3, run["curve_time_err"]  # whole curves, not just t_1/2
    np.testing.assert_allclose(run["end_over_final"], 1.0, atol=0.05)  # converged to theory
    # a coarse lr visibly departs from the ODE: the agreement above is not automatic
    coarse = compare.compare_run(objective, LAM, RHO, 2, 1e-2, 4, m, optim(1.0, 50, 50), seed=0)
    assert coarse["curve_time_err"] > 5 * run["curve_time_err"], coarse["curve_time_err"]


def test_jepa_learns_a_later_higher_rho_feature_early_through_the_heads_gain():
    """The "sequential" row: f0 (low rho) is learned first; JEPA's head then amplifies f1 along
    f0's hidden direction from round-off, well before f1's own rise that the decoupled ODE
    describes, and f1 pushes f0 out of that direction (f0 is learned again later). f0's first
    rise and MAE follow the ODE, and at a larger init f1's own rise wins."""
    lam, rho = np.array([1.0, 0.5]), np.array([0.35, 1.0])
    m = theory.moments(*theory.gaussian_views(np.random.default_rng(0), lam, rho, 256))
    jepa = compare.compare_run("jepa", lam, rho, 1, 1e-3, 4, m, optim(0.2), seed=1)
    ratio = jepa["t_half_sim"] / jepa["t_half_ode"]
    assert abs(ratio[0] - 1) < 3e-3, ratio  # the first feature: the ODE holds
    assert 0.6 < ratio[1] < 0.75, ratio  # the study's run: 0.666, a third early
    k = np.searchsorted(jepa["times"], jepa["t_half_sim"][1])
    f0, f1 = jepa["wbar"][k - 1].T  # just before f1 reaches half
    assert abs(f0 @ f1) / np.linalg.norm(f0) / np.linalg.norm(f1) > 0.99  # in f0's direction
    assert np.min(jepa["sim"][k:, 0]) < 0.05 * rho[0]  # f0 pushed out (the ODE: it stays)
    np.testing.assert_allclose(jepa["end_over_final"], 1.0, atol=0.01)  # and learned again
    # short runs: more steps keep gradient descent's lag (~lr) below the tolerance
    fine = optim(0.2, 500, 8000)
    mae = compare.compare_run("mae", lam, rho, 1, 1e-3, 4, m, fine, seed=1)
    np.testing.assert_allclose(mae["t_half_sim"], mae["t_half_ode"], rtol=3e-3)
    larger_init = compare.compare_run("jepa", lam, rho, 1, 1e-2, 4, m, fine, seed=1)
    np.testing.assert_allclose(larger_init["t_half_sim"], larger_init["t_half_ode"], rtol=3e-3)


def test_ema_target_matches_its_ode():
    _, _, m = views()
    run = compare.compare_run("jepa", LAM, RHO, 2, 1e-2, 4, m, optim(), seed=0, ema=0.999)
    plain = compare.compare_run("jepa", LAM, RHO, 2, 1e-2, 4, m, optim(), seed=0,
                                horizon_time=run["times"][-1])
    np.testing.assert_allclose(run["t_half_sim"], run["t_half_ode"], rtol=3e-3)
    assert np.all(run["t_half_sim"] > 1.01 * plain["t_half_sim"])  # the lagging target slows it


def test_views_follow_the_papers_data_model():
    x, y, m = views(256)
    np.testing.assert_allclose(m["yx"], np.diag(LAM), atol=1e-12)  # Syx = diag(lambda)
    np.testing.assert_allclose(m["xx"], np.diag(LAM / RHO), atol=1e-12)  # Sxx = diag(lambda/rho)
    np.testing.assert_allclose(m["yy"], m["xx"], atol=1e-12)  # views of equal variance
    np.testing.assert_allclose(np.diag(m["yx"]) / np.diag(m["xx"]), RHO, rtol=1e-12)


def test_ode_solver_matches_closed_form_half_time():
    for depth in (1, 2, 5):
        np.testing.assert_allclose(theory.solve_ode("jepa", LAM, RHO, depth, 1e-3)["t_half"],
                                   theory.jepa_half_time(LAM, RHO, depth, 1e-3), rtol=1e-6)


def test_half_time_is_the_papers_critical_time_with_time_scaled_by_depth():
    """Paper Thm 4.5: tau* = sum_n L / (lambda n rho^(2L-1-n) eps^(n/L)) + Theta(log eps) in the
    paper's time tau = L t. L * t_1/2 minus that sum must grow like rho^(1-2L)/lambda ln(1/eps):
    a missing or extra factor L would leave a remainder growing like eps^(-(2L-1)/L). (eps is
    kept where float64 resolves the difference of the two ~eps^(-(2L-1)/L) terms; the O(eps^(1/L))
    corrections then cost ~2% at L = 3.)"""
    for depth, (e1, e2) in ((2, (1e-6, 1e-10)), (3, (1e-5, 1e-8))):
        rest = [depth * theory.jepa_half_time(LAM, RHO, depth, e)
                - theory.paper_jepa_critical_time(LAM, RHO, depth, e) for e in (e1, e2)]
        slope = (rest[1] - rest[0]) / np.log(e1 / e2)
        np.testing.assert_allclose(slope, RHO ** (1 - 2 * depth) / LAM, rtol=0.03)
        ratio = (depth * theory.jepa_half_time(LAM, RHO, depth, e2)
                 / theory.paper_jepa_critical_time(LAM, RHO, depth, e2))
        np.testing.assert_allclose(ratio, 1.0, atol=1e-6)


def test_depth_orders_features_as_the_paper_says():
    """Closed form alone: inversion flips for JEPA with depth, never for MAE."""
    first = {o: [int(np.argmin(theory.solve_ode(o, LAM, RHO, L, 1e-3)["t_half"]))
                 for L in (1, 2, 3, 4, 5)] for o in theory.OBJECTIVES}
    assert first["mae"] == [0, 0, 0, 0, 0]
    assert first["jepa"] == [0, 0, 1, 1, 1]


def test_balanced_init_is_balanced_and_training_keeps_it():
    rng = np.random.default_rng(0)
    for objective in theory.OBJECTIVES:
        params = simulation.balanced_init(rng, 3, 6, 3, 1e-3, objective)
        mats = params["enc"] + [params["head"]]
        for lower, upper in zip(mats[:-1], mats[1:]):
            gram = lower @ lower.T
            np.testing.assert_allclose(upper.T @ upper, gram, atol=1e-15)
            assert np.linalg.matrix_rank(gram, tol=1e-6 * np.max(gram)) == 3  # a rank-3 projection
        values = simulation.feature_values(simulation.encode(params["enc"]))
        np.testing.assert_allclose(values, 1e-3, rtol=1e-12)
    lam, rho = np.array([1.0, 0.6, 0.3]), np.array([0.9, 0.7, 0.8])
    m = theory.moments(*theory.gaussian_views(rng, lam, rho, 256))
    for objective in theory.OBJECTIVES:
        params = simulation.balanced_init(rng, 3, 6, 3, 1e-2, objective)
        trained, _, wbar = simulation.train(objective, params, m, 0.1, 40_000, 100)
        grown = simulation.feature_values(wbar[-1]) / 1e-2
        assert np.min(grown) > 5, grown
        assert simulation.balance_residual(trained) < 1e-3, simulation.balance_residual(trained)
    # an unbalanced init is caught by the same measure
    rng_params = {"enc": [rng.standard_normal((6, 3))] + [rng.standard_normal((6, 6))] * 2,
                  "head": rng.standard_normal((6, 6))}
    assert simulation.balance_residual(rng_params) > 0.1


def test_jepa_stop_gradient_blocks_the_target_branch():
    x, y, m = views(64)
    rng = np.random.default_rng(1)
    params = simulation.balanced_init(rng, 2, 4, 2, 0.3, "jepa")
    target = [w + 0.1 * rng.standard_normal(w.shape) for w in params["enc"]]
    with jax.enable_x64(True):
        g_online, g_target = jax.grad(simulation.jepa_loss, argnums=(0, 1))(params, target, m)
        # the target branch does feed the loss: without stop-gradient its gradient is nonzero
        g_no_sg = jax.grad(lambda t: simulation.sample_loss("jepa", params, t, x, y))(target)
        # the moment form is the sample loss (same gradient into the online branch)
        g_samples = jax.grad(simulation.sample_loss, argnums=1)("jepa", params, target, x, y)
        g_mae = jax.grad(simulation.mae_loss)(simulation.balanced_init(rng, 2, 4, 2, 0.3, "mae"), m)
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(g_target))
    assert min(np.abs(np.asarray(g)).max() for g in jax.tree.leaves(g_no_sg)) > 1e-3
    for a, b in zip(jax.tree.leaves(g_online), jax.tree.leaves(g_samples)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    assert min(np.abs(np.asarray(g)).max() for g in jax.tree.leaves(g_mae)) > 1e-3


def test_loss_moment_form_equals_sample_mean():
    x, y, m = views(128, seed=3)
    params = simulation.balanced_init(np.random.default_rng(2), 2, 4, 3, 0.2, "mae")
    with jax.enable_x64(True):
        np.testing.assert_allclose(simulation.mae_loss(params, m),
                                   simulation.sample_loss("mae", params, params["enc"], x, y),
                                   rtol=1e-12)


def test_bad_config_values_name_the_fix():
    base = str(ROOT / "experiments/deep_linear.py")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(base + ":huge")
    for key, value, match in [("model.depths", (0, 2), "integers >= 1"),
                              ("model.init_scale", 0.3, "lower model.init_scale"),
                              ("model.ema", 1.0, r"\[0, 1\)"),
                              ("data.inversion.rho", (0.4, 1.5), r"\(0, 1\]"),
                              ("data.sequential.depths", (), "data.sequential.depths"),
                              ("optim.max_step", 0.0, "positive")]:
        config = load_config(base)
        with config.unlocked():
            section, _, leaf = key.rpartition(".")
            node = config
            for part in section.split("."):
                node = node[part]
            node[leaf] = value
        with pytest.raises(ConfigError, match=match):
            experiments.check_config(config)


def test_tiny_runs_end_to_end(tmp_path):
    config = load_config(str(ROOT / "experiments/deep_linear.py") + ":tiny")
    summary = train_lib.run(config, tmp_path)
    results = tmp_path / "results"
    for name in ("deep_linear.json", "deep_linear.md", "equal_lambda_curves.png",
                 "inversion_curves.png", "sequential_curves.png", "fashion_mnist_curves.png",
                 "half_time_ratios.png"):
        assert (results / name).stat().st_size > 0, name
    data = json.loads((results / "deep_linear.json").read_text())
    claims = data["claims"]
    assert summary["claims"] == claims
    for source in ("sim", "ode"):
        assert claims[f"inversion_first_{source}"]["jepa"] == {"1": "high_lambda", "3": "high_rho"}
        assert claims[f"inversion_mae_always_high_lambda_{source}"] is True
        jepa, mae = (claims[f"equal_lambda_spread_{source}"][o] for o in ("jepa", "mae"))
        assert jepa[1] > 1.4 * jepa[0] and mae[1] < 1.15 * mae[0]  # depth sharpens JEPA only
        # equal lambda: at L = 1 JEPA is (nearly) rho-blind too, MAE at every depth
        assert abs(jepa[0] - 1) < 0.05 and all(abs(v - 1) < 0.15 for v in mae)
    assert data["max_rel_err_half_time"] < 0.01
    real = {r["objective"]: r["learned"][0]["settled"] for r in data["fashion_mnist"]["runs"]}
    assert real["jepa"]["rho"] > real["mae"]["rho"]  # JEPA's first direction: more predictable
    assert real["jepa"]["var"] < real["mae"]["var"]  # MAE's: more variance
    assert real["jepa"]["lambda"] < real["mae"]["lambda"]  # and more covariance
    table = (results / "deep_linear.md").read_text()
    assert "| jepa | 3 |" in table and "first depth where JEPA" in table
    assert "sequential: that t_1/2, simulation / ODE, JEPA" in table


def test_missing_fashion_mnist_raises_instead_of_falling_back(tmp_path):
    from data_pipelines.images import DataError

    config = load_config(str(ROOT / "experiments/deep_linear.py") + ":tiny")
    with config.unlocked():
        config.real.path = str(tmp_path / "nowhere")
    with pytest.raises(DataError, match="real.path"):
        deep_linear.run(config, tmp_path)
