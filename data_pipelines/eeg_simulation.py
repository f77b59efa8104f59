"""A physically grounded EEG simulation, written as real EDF and FIF files.

No multi-channel EEG recording ships in a package reachable here, so the default S-JEPA data is
simulated from the real head model of the ``tvb-data`` package: its EEG leadfield (65 sensors x
16,384 cortical vertices) summed over the vertices of each of 76 cortical regions (its region
mapping), re-referenced to the average. IO1/IO2 (NaN rows: eye channels) and CB1/CB2 (no
position in MNE's standard montages) are left out: 61 scalp electrodes.

Region activity (per subject, seeded):
* 1/f (pink) background in every region;
* occipital alpha (V1, V2) at the subject's alpha frequency, slowly amplitude-modulated;
* sensorimotor mu and beta (M1, S1, both hemispheres) at the subject's mu / beta frequencies;
* motor-imagery run: after each cue, imagery of the left (right) hand desynchronises the mu and
  beta rhythms of the right (left) hemisphere's M1 and S1 for 4 s (event-related
  desynchronisation, depth per subject);
* ERP (oddball) run: every stimulus evokes a visual P1/N1 in V1/V2; rare targets (1 in 6) add a
  P300 over the parietal regions (PCS, PCIP) at a subject-specific latency.
Per-subject variation: overall source strength, alpha / mu / beta frequencies, ERD depth, P300
latency and amplitude, and each electrode's noise level (impedance). Scalp signal = leadfield @
sources, scaled to tens of microvolts, plus white sensor noise. Written at 256 Hz (the readers
resample to 128 Hz): the motor-imagery run as EDF (no positions: the reader takes them from a
standard montage by name), the ERP run as FIF with the montage's positions stored in the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path

import numpy as np

log = logging.getLogger("jepax")

NATIVE_SFREQ = 256.0
DROPPED = ("IO1", "IO2", "CB1", "CB2")
RENAMED = {"T8/T4": "T8", "T7/T3": "T7", "P8/T6": "P8", "P7/T5": "P7"}
MI_EVENTS = ("left_hand", "right_hand")
ERP_EVENTS = ("nontarget", "target")
SENSORIMOTOR = ("M1", "S1")


def _tvb_file(*parts) -> Path:
    try:
        import tvb_data
    except ImportError as e:
        raise ImportError("the EEG simulation needs the tvb-data package: "
                          "pip install 'jepax[eeg]'") from e
    return Path(tvb_data.__file__).parent.joinpath(*parts)


def head_model() -> tuple[list[str], np.ndarray, list[str]]:
    """(channel names, (61, 76) average-referenced region leadfield, region names)."""
    names = [line.split()[0] for line in _tvb_file("sensors", "eeg_brainstorm_65.txt")
             .read_text().splitlines() if line.strip()]
    gain = np.load(_tvb_file("projectionMatrix", "projection_eeg_65_surface_16k.npy"))
    mapping = np.loadtxt(_tvb_file("regionMapping", "regionMapping_16k_76.txt")).astype(int)
    with zipfile.ZipFile(_tvb_file("connectivity", "connectivity_76.zip")) as z:
        regions = [line.split()[0] for line in z.read("centres.txt").decode().splitlines()
                   if line.strip()]
    keep = [i for i, n in enumerate(names) if n not in DROPPED]
    gain = gain[keep]
    if not np.isfinite(gain).all():
        raise ValueError("tvb-data's leadfield has non-finite entries outside IO1/IO2")
    region_gain = np.stack([gain[:, mapping == r].sum(1) for r in range(len(regions))], 1)
    region_gain -= region_gain.mean(0, keepdims=True)  # average reference
    return [RENAMED.get(names[i], names[i]) for i in keep], region_gain, regions


def _pink(rng, shape, sfreq):
    """1/f noise with unit variance along the last axis."""
    n = shape[-1]
    spectrum = rng.normal(size=(*shape[:-1], n // 2 + 1)) + 1j * rng.normal(size=(*shape[:-1], n // 2 + 1))
    freqs = np.fft.rfftfreq(n, 1 / sfreq)
    spectrum /= np.sqrt(np.maximum(freqs, 0.5))
    x = np.fft.irfft(spectrum, n)
    return x / x.std(-1, keepdims=True)


def _rhythm(rng, n, sfreq, freq, bandwidth=1.0):
    """A narrow-band oscillation around `freq` (unit variance), naturally waxing and waning."""
    spectrum = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    freqs = np.fft.rfftfreq(n, 1 / sfreq)
    spectrum *= np.exp(-0.5 * ((freqs - freq) / bandwidth) ** 2)
    x = np.fft.irfft(spectrum, n)
    return x / x.std()


def _envelope(n, sfreq, onsets, start, stop, ramp=0.3):
    """1 outside the windows [onset + start, onset + stop], 0 inside, with cosine ramps."""
    t = np.arange(n) / sfreq
    env = np.zeros(n)
    for onset in onsets:
        a, b = onset + start, onset + stop
        inside = np.clip(np.minimum(t - a, b - t) / ramp, 0, 1)
        env = np.maximum(env, 0.5 - 0.5 * np.cos(np.pi * inside))
    return 1.0 - env


def subject_parameters(rng) -> dict:
    return dict(strength=rng.lognormal(0, 0.2), alpha=rng.uniform(8.5, 11.5),
                mu=rng.uniform(9.5, 12.5), beta=rng.uniform(18, 24), erd=rng.uniform(0.15, 0.4),
                p300_latency=rng.uniform(0.3, 0.4), p300=rng.uniform(0.3, 0.6),
                noise=rng.lognormal(np.log(4.0), 0.4, size=61))


def simulate_run(rng, params, seconds: float, task: str, regions: list[str], gain: np.ndarray,
                 trials: int):
    """(C, N) scalp signal in volts and the events [(onset s, label)] of one run."""
    sfreq, n = NATIVE_SFREQ, int(seconds * NATIVE_SFREQ)
    idx = {name: i for i, name in enumerate(regions)}
    sources = _pink(rng, (len(regions), n), sfreq)
    for hemi in "lr":
        for name in ("V1", "V2"):
            sources[idx[hemi + name]] += 2.0 * _rhythm(rng, n, sfreq, params["alpha"])
    events = []
    if task == "mi":
        onsets = 3.0 + np.arange(trials) * (seconds - 8.0) / trials + rng.uniform(0, 1.5, trials)
        labels = rng.permutation(np.arange(trials) % 2)
        events = [(float(t), MI_EVENTS[y]) for t, y in zip(onsets, labels)]
    for hemi in "lr":
        # left-hand imagery desynchronises the right hemisphere, and vice versa
        own = [t for t, y in events if y == ("left_hand" if hemi == "r" else "right_hand")]
        gate = 1.0 - params["erd"] * (1.0 - _envelope(n, sfreq, own, 0.5, 4.0))
        for name in SENSORIMOTOR:
            rhythm = (2.5 * _rhythm(rng, n, sfreq, params["mu"])
                      + 1.2 * _rhythm(rng, n, sfreq, params["beta"], 2.0))
            sources[idx[hemi + name]] += gate * rhythm
    if task == "erp":
        soa = (seconds - 2.0) / trials
        onsets = 1.0 + np.arange(trials) * soa + rng.uniform(0, 0.1 * soa, trials)
        labels = (rng.random(trials) < 1 / 6).astype(int)
        events = [(float(t), ERP_EVENTS[y]) for t, y in zip(onsets, labels)]
        t = np.arange(n) / sfreq
        bump = lambda centre, width, at: np.exp(-0.5 * ((t - at - centre) / width) ** 2)
        for onset, label in zip(onsets, labels):
            visual = 1.5 * bump(0.1, 0.02, onset) - 2.0 * bump(0.17, 0.03, onset)
            for hemi in "lr":
                for name in ("V1", "V2"):
                    sources[idx[hemi + name]] += visual
                if label:
                    p300 = 3.0 * params["p300"] * bump(params["p300_latency"], 0.07, onset)
                    for name in ("PCS", "PCIP"):
                        sources[idx[hemi + name]] += p300
    scalp = gain @ sources
    scalp *= 15e-6 * params["strength"] / scalp.std()          # tens of microvolts
    scalp += params["noise"][:, None] * 1e-6 * rng.normal(size=scalp.shape)
    return scalp, events


def _raw(scalp, channels, events, montage):
    import mne

    info = mne.create_info(channels, NATIVE_SFREQ, "eeg")
    raw = mne.io.RawArray(scalp, info, verbose="error")
    raw.set_annotations(mne.Annotations([t for t, _ in events], 0.0, [d for _, d in events]))
    if montage is not None:
        raw.set_montage(montage, verbose="error")
    return raw


def write_subject(folder: Path, subject: int, *, seed: int, mi_trials: int, erp_trials: int,
                  mi_seconds: float, erp_seconds: float) -> None:
    """sub-XX/sub-XX_task-mi_eeg.edf and sub-XX/sub-XX_task-erp_eeg.fif."""
    import mne

    channels, gain, regions = head_model()
    rng = np.random.default_rng((seed, subject))
    params = subject_parameters(rng)
    name = f"sub-{subject:02d}"
    (folder / name).mkdir(parents=True, exist_ok=True)
    montage = mne.channels.make_standard_montage("standard_1005")
    scalp, events = simulate_run(rng, params, mi_seconds, "mi", regions, gain, mi_trials)
    mne.export.export_raw(folder / name / f"{name}_task-mi_eeg.edf",
                          _raw(scalp, channels, events, None), fmt="edf", overwrite=True,
                          verbose="error")
    scalp, events = simulate_run(rng, params, erp_seconds, "erp", regions, gain, erp_trials)
    _raw(scalp, channels, events, montage).save(folder / name / f"{name}_task-erp_eeg.fif",
                                                overwrite=True, verbose="error")


def ensure_written(data_config) -> Path:
    """The simulated dataset's folder under data.cache, written once per set of settings."""
    sim = {k: data_config.simulation[k] for k in sorted(data_config.simulation)}
    key = hashlib.sha256(json.dumps(sim, sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(data_config.cache or os.path.join(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "jepax")).expanduser()
    folder = cache / f"eeg_simulation_{key}"
    if (folder / "done.json").exists():
        return folder
    log.info("writing the simulated EEG dataset (%d subjects) to %s", sim["subjects"], folder)
    partial = folder.with_name(folder.name + f".partial{os.getpid()}")
    for subject in range(1, sim["subjects"] + 1):
        write_subject(partial, subject, seed=sim["seed"], mi_trials=sim["mi_trials"],
                      erp_trials=sim["erp_trials"], mi_seconds=sim["mi_seconds"],
                      erp_seconds=sim["erp_seconds"])
    (partial / "done.json").write_text(json.dumps(sim))
    try:
        partial.rename(folder)
    except OSError:  # another process finished first
        if not (folder / "done.json").exists():
            raise
    return folder
