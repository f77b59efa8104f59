"""The labelled audio tasks A-JEPA is evaluated on, as folders of audio files + labels.csv.

Two tasks ship (both written once to ``data.cache``, then read back through
data_pipelines/audio.py like any user's folder):

* ``digits``: the words zero..nine spoken by espeak-ng (Debian ``espeak-ng``) in every
  combination of ``data.digits.accents`` x ``variants`` (a voice = accent + variant) x ``speeds``
  (words per minute) x ``pitches``; voices whose variant is in ``heldout_variants`` are the test
  split, so the test voices are never heard in training (neither by pretraining nor by the
  downstream heads);
* ``phrases``: phrase identification on the real recordings of Debian
  ``asterisk-core-sounds-en-wav`` (one speaker, 8 kHz telephone prompts): each of
  ``data.phrases.classes`` phrases is one class; its training examples are speed-perturbed
  copies (``train_speeds``, as Kaldi's speed perturbation: tempo and pitch change together),
  with white noise at ``train_snr_db`` (None: clean), its test examples copies at held-out
  speeds (``test_speeds``) with fresh white noise at ``test_snr_db``. Each phrase exists once,
  so this task asks whether a representation recognises the same words at a speed (tempo and
  pitch) it was not trained on, through a new noise draw. Training copies are noisy because
  clean ones made the noise floor itself the held-out condition: with clean training copies
  and 20-dB test noise, MFCC + logistic regression scored 0.05 on 1.28-s crops (0.99 on
  clean test copies at the held-out speeds; 0.90 with 20-dB noise in the training copies too),
  as the log compresses silence and noise to very different values.

With ``data.path`` set, the user's folder is the only task ('folder'), pretraining included.

Splits of the source 'audio': '<task>_train' / '<task>_test'; 'train' / 'test' are the unions
over the tasks (labels '<task>/<label>'); 'train' is the pretraining set.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from data_pipelines import audio
from data_pipelines.errors import DataError

log = logging.getLogger("jepax")

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds/en_US_f_Allison")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SHIPPED = ("digits", "phrases")


def audio_source(data_config, split: str) -> audio.ClipSource:
    folders = task_folders(data_config)
    task, _, part = split.rpartition("_")
    if split in ("train", "test"):
        clips = [audio.Clip(c.path, f"{t}/{c.label}", c.split)
                 for t, folder in folders.items() for c in _clips(folder, data_config)]
        return audio.clip_source(clips, split, data_config)
    if part not in ("train", "test") or task not in ("folder", *SHIPPED):
        raise DataError(f"unknown split {split!r} of the audio tasks; use train, test or "
                        f"<task>_train / <task>_test with a task of {sorted(folders)}")
    if task not in folders:
        raise DataError(f"task {task!r} is not part of this data (tasks: {sorted(folders)}; "
                        "with data.path set, the folder is the one task 'folder')")
    return audio.clip_source(_clips(folders[task], data_config), part, data_config)


def _clips(folder, data_config):
    return audio.list_folder(folder, data_config.test_fraction)


def task_folders(data_config) -> dict[str, Path]:
    if data_config.path:
        return {"folder": Path(data_config.path).expanduser()}
    cache = Path(data_config.cache or Path.home() / ".cache" / "jepax" / "audio").expanduser()
    return {"digits": spoken_digits(data_config.digits, cache),
            "phrases": asterisk_phrases(data_config.phrases, cache)}


# -- shipped tasks -----------------------------------------------------------------------------
def _cached(cache: Path, name: str, settings: dict, write) -> Path:
    """`cache/<name>-<hash of settings>`, written by `write(folder)` once (atomically)."""
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    folder = cache / f"{name}-{key}"
    if (folder / "labels.csv").is_file():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        write(tmp)
        (tmp / "settings.json").write_text(json.dumps(settings, indent=1))
        os.replace(tmp, folder) if not folder.exists() else shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _write_table(folder: Path, rows: list[tuple[str, str, str]]) -> None:
    with (folder / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "label", "split"])
        writer.writerows(rows)


def spoken_digits(settings, cache: Path) -> Path:
    """The espeak-ng digit set (module docstring); its folder, written on first use."""
    s = {k: list(v) for k, v in dict(settings).items()}
    unknown = set(s["heldout_variants"]) - set(s["variants"])
    if unknown:
        raise DataError(f"data.digits.heldout_variants {sorted(unknown)} are not in "
                        "data.digits.variants")
    if shutil.which("espeak-ng") is None:
        raise DataError("espeak-ng is not installed (apt-get install espeak-ng; scripts/setup.sh "
                        "does it), or use your own recordings with --config.data.path=/folder")

    def write(folder):
        jobs = [(accent, variant, speed, pitch, digit)
                for accent in s["accents"] for variant in s["variants"]
                for speed in s["speeds"] for pitch in s["pitches"] for digit in range(10)]
        log.info("writing %d spoken digits with espeak-ng to %s (once)", len(jobs), folder)

        def speak(job):
            accent, variant, speed, pitch, digit = job
            name = f"{accent}+{variant}/{digit}_s{speed}_p{pitch}.wav"
            (folder / name).parent.mkdir(exist_ok=True)
            done = subprocess.run(["espeak-ng", "-v", f"{accent}+{variant}", "-s", str(speed),
                                   "-p", str(pitch), "-w", str(folder / name), DIGITS[digit]],
                                  capture_output=True, text=True)
            if done.returncode or not (folder / name).is_file():
                raise DataError(f"espeak-ng failed for voice {accent}+{variant}: {done.stderr}")
            split = "test" if variant in s["heldout_variants"] else "train"
            return name, DIGITS[digit], split

        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            _write_table(folder, list(pool.map(speak, jobs)))

    return _cached(cache, "digits", s, write)


def asterisk_phrases(settings, cache: Path) -> Path:
    """Perturbed copies of the Asterisk prompts (module docstring); written on first use."""
    import soundfile
    import soxr

    s = {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in dict(settings).items()}
    if not ASTERISK_SOUNDS.is_dir():
        raise DataError(f"{ASTERISK_SOUNDS} is missing: apt-get install asterisk-core-sounds-en-wav "
                        "(scripts/setup.sh does it), or use --config.data.path=/folder")

    def write(folder):
        phrases = []
        for path in sorted(ASTERISK_SOUNDS.rglob("*.wav")):
            if path.parent.name != "silence":
                info = soundfile.info(path)
                if s["min_seconds"] <= info.duration <= s["max_seconds"]:
                    phrases.append(path)
        if len(phrases) < s["classes"]:
            raise DataError(f"only {len(phrases)} Asterisk prompts last {s['min_seconds']}-"
                            f"{s['max_seconds']} s; lower data.phrases.classes")
        chosen = sorted(np.random.default_rng(0).choice(len(phrases), s["classes"], replace=False))
        log.info("writing %d Asterisk phrases x %d views to %s (once)", len(chosen),
                 len(s["train_speeds"]) + len(s["test_speeds"]), folder)
        rows = []
        for n, i in enumerate(chosen):
            label = str(phrases[i].relative_to(ASTERISK_SOUNDS).with_suffix(""))
            wave = audio.load_audio(phrases[i], soundfile.info(phrases[i]).samplerate)
            rate = soundfile.info(phrases[i]).samplerate
            views = ([(speed, s["train_snr_db"], "train") for speed in s["train_speeds"]]
                     + [(speed, s["test_snr_db"], "test") for speed in s["test_speeds"]])
            for v, (speed, snr, split) in enumerate(views):
                out = soxr.resample(wave, rate * speed, rate)  # played at `rate`: `speed`x faster
                if snr is not None:
                    noise = np.random.default_rng([n, v]).standard_normal(len(out))
                    out = out + noise * np.sqrt(np.mean(out ** 2) / 10 ** (snr / 10))
                name = f"{n:03d}_{v}.wav"
                soundfile.write(folder / name, np.clip(out, -1, 1), rate, subtype="PCM_16")
                rows.append((name, label, split))
        _write_table(folder, rows)

    return _cached(cache, "phrases", s, write)
