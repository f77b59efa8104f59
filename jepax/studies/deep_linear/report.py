"""The deep linear study's tables and plots (written through jepax.studies.report)."""

from __future__ import annotations

import numpy as np

from jepax.studies.deep_linear.theory import OBJECTIVES, final_value
from jepax.studies.report import markdown_table, pyplot

INTRO = ("λ: covariance of the two views along the feature, ρ: its regression coefficient "
         "(variance λ/ρ). t_1/2: gradient-flow time t = lr x steps (the paper's time is L t) "
         "for the encoder's singular value along the feature to reach half its final value "
         "(JEPA ρ^L, MAE ρ^(L/(L+1))). "
         "Order: features by t_1/2, first learned first. Relative errors of the "
         "simulation against the ODE: t_1/2, and the largest over the times at which each "
         "curve reaches 25/50/75/90% of its final value.")


def _fmt(v):
    return "never" if not np.isfinite(v) else f"{v:.4g}"


def _list(values):
    return ", ".join(f"{v:.4g}" for v in values)


def markdown(experiments, summary) -> str:
    lines = ["# Deep linear JEPA vs MAE: half-times t_1/2 per feature (simulation / ODE)", "",
             INTRO, ""]
    for exp in experiments:
        lines += [f"## {exp['name']}", ""]
        lines += _real_tables(exp) if "offdiag_yx" in exp else [_synthetic_table(exp), ""]
    lines += ["## Claims", "",
              "Paper Thm 4.5: the ratio of the paper's JEPA critical times without their "
              "Θ(log ε) remainder.", "",
              markdown_table(["claim", "simulation", "ODE", "paper Thm 4.5"],
                             _claim_rows(summary["claims"])), ""]
    return "\n".join(lines)


def _synthetic_table(exp) -> str:
    feats = [f"f{i} (λ={a:.3g}, ρ={b:.3g})" for i, (a, b) in enumerate(zip(exp["lam"],
                                                                            exp["rho"]))]
    headers = ["objective", "L", *feats, "order sim", "order ODE", "t_1/2 rel err",
               "curve rel err", "lr", "steps"]
    rows = [[r["objective"], r["depth"],
             *(f"{_fmt(a)} / {_fmt(b)}" for a, b in zip(r["t_half_sim"], r["t_half_ode"])),
             list(map(int, r["order_sim"])), list(map(int, r["order_ode"])),
             np.max(r["rel_err"]), r["curve_time_err"], r["lr"], r["steps"]]
            for r in exp["runs"]]
    formats = [None] * (len(feats) + 4) + [".2%", ".2%", ".3g", None]
    return markdown_table(headers, rows, formats)


def _claim_rows(c) -> list[list[str]]:
    jepa, mae = "jepa", "mae"
    return [
        [f"equal λ: t_1/2(lowest ρ)/t_1/2(highest ρ), JEPA, L={c['equal_lambda_depths']}",
         _list(c["equal_lambda_spread_sim"][jepa]), _list(c["equal_lambda_spread_ode"][jepa]),
         _list(c["equal_lambda_spread_thm45"])],
        ["equal λ: same ratio, MAE", _list(c["equal_lambda_spread_sim"][mae]),
         _list(c["equal_lambda_spread_ode"][mae]), ""],
        ["inversion: t_1/2(high-λ)/t_1/2(high-ρ), JEPA", _list(c["inversion_ratio_sim"][jepa]),
         _list(c["inversion_ratio_ode"][jepa]), _list(c["inversion_ratio_thm45"])],
        ["inversion: same ratio, MAE", _list(c["inversion_ratio_sim"][mae]),
         _list(c["inversion_ratio_ode"][mae]), ""],
        ["inversion: first depth where JEPA learns the high-ρ feature first",
         str(c["inversion_jepa_flip_depth_sim"]), str(c["inversion_jepa_flip_depth_ode"]), ""],
        ["inversion: MAE learns the high-λ feature first at every depth",
         str(c["inversion_mae_always_high_lambda_sim"]),
         str(c["inversion_mae_always_high_lambda_ode"]), ""],
        # where the per-feature ODEs stop holding (theory.py): not a claim of the paper
        [f"sequential: t_1/2 of the feature the ODE learns second, JEPA, "
         f"L={c['sequential_depths']}", _list(c["sequential_second_sim"][jepa]),
         _list(c["sequential_second_ode"][jepa]), ""],
        ["sequential: that t_1/2, simulation / ODE, JEPA",
         _list(c["sequential_second_sim_over_ode"][jepa]), "1", ""],
        ["sequential: same ratio, MAE", _list(c["sequential_second_sim_over_ode"][mae]), "1", ""],
        ["sequential: the first feature's t_1/2, simulation / ODE, JEPA",
         _list(c["sequential_first_sim_over_ode"][jepa]), "1", ""],
        ["sequential: cosine of the two features' encoder columns just before the second "
         "reaches half, JEPA", _list(c["sequential_second_alignment"][jepa]), "0", ""],
        ["sequential: the first feature's lowest value from then on (/ final), JEPA",
         _list(c["sequential_first_lowest"][jepa]), "1", ""],
        ["sequential: time the first feature spends below half after it was learned, JEPA",
         _list(c["sequential_first_forgotten"][jepa]), "0", ""],
    ]


def _real_tables(exp) -> list[str]:
    learned = len(exp["runs"][0]["learned"])
    pcs = markdown_table(
        ["PC", "variance", "λ", "ρ", *(f"{r['objective']} L={r['depth']} ODE t_1/2"
                                        for r in exp["runs"])],
        [[i, var, lam, rho, *(_fmt(r["t_half_ode"][i]) for r in exp["runs"])]
         for i, (var, lam, rho) in enumerate(zip(exp["var"], exp["lam"], exp["rho"]))],
        [None, ".3f", ".3f", ".3f"] + [None] * len(exp["runs"]))
    cell = lambda d: (f"PC{d['main_pc']} ({d['overlap']:.2f}) σ²={d['var']:.2f} "
                      f"λ={d['lambda']:.2f} ρ={d['rho']:.2f}")
    directions = markdown_table(
        ["objective", "L", "#", "t", "rise", "settled", "ODE order"],
        [[r["objective"], r["depth"], j + 1, _fmt(d["t"]), cell(d["rise"]), cell(d["settled"]),
          list(map(int, r["order_ode"][:learned])) if j == 0 else ""]
         for r in exp["runs"] for j, d in enumerate(r["learned"])])
    return [f"Top {len(exp['lam'])} principal directions (PC) of view x, top variance scaled "
            "to 1. Syx is not diagonal in this basis (off-diagonal mass "
            f"{exp['offdiag_yx']:.2f}), so the ODE below uses only its diagonal and each learned "
            "direction mixes PCs.", "", pcs, "",
            "Trained networks: directions in the order they are learned (t: the j-th "
            "singular value of the encoder reaches half its end value). Each is the top right "
            "singular vector r, earlier ones projected out, read at t (rise) and on the plateau "
            "after it (settled): main PC (squared overlap), variance σ²_r = r'Sxx r, "
            "λ_r = r'Syx r, ρ_r = λ_r / σ²_r. "
            "The diagonal ODE's first PCs for comparison.", "", directions, ""]


def figures(synthetic, real, summary):
    """(file stem, figure) pairs, made one at a time: each synthetic experiment's curves, the
    Fashion-MNIST curves and subspace (if run), the half-time ratios over depth."""
    for exp in synthetic:
        yield f"{exp['name']}_curves", _plot_curves(exp)
    if real is not None:
        yield "fashion_mnist_curves", _plot_real_curves(real)
        yield "fashion_mnist_subspace", _plot_real_subspace(real)
    yield "half_time_ratios", _plot_ratios(summary)


def _plot_curves(exp):
    plt = pyplot()
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
    return fig


def _plot_real_curves(exp):
    """Singular values of the encoder over time, labelled with the direction each one learns."""
    plt = pyplot()
    depths = sorted({r["depth"] for r in exp["runs"]})
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
    return fig


def _plot_real_subspace(exp):
    """Variance and rho of the learned subspace, once the first direction is a quarter learned."""
    plt = pyplot()
    depths = sorted({r["depth"] for r in exp["runs"]})
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
    return fig


def _plot_ratios(summary):
    plt = pyplot()
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
    return fig


def strip_curves(exp):
    """An experiment without its curves (they go to the plots), for the JSON summary."""
    curves = ("times", "sim", "ode", "wbar", "var_eff", "rho_eff")
    runs = [{k: v for k, v in r.items() if k not in curves} for r in exp["runs"]]
    return {**exp, "runs": runs}
