"""A-JEPA's masks on a (time, frequency) patch grid: I-JEPA random blocks, time-frequency-aware
masks (time strips and frequency bands), and the curriculum that moves from the first to the
second over training.

No official code exists; the choices (all config knobs, ``mask.*``):

* random block masks: I-JEPA's multi-block masks (masks/multiblock.py, jepax semantics),
  ``num_targets`` blocks of ``target_scale`` / ``target_aspect``, a context block of
  ``context_scale`` with the targets removed;
* time-frequency masks: ``time_strips`` targets that each span every frequency patch over
  ``strip_width`` (low, high) consecutive time patches, and ``freq_bands`` targets that each span
  every time patch over ``band_height`` consecutive frequency patches; the context is every
  patch outside the targets (at least ``min_context``, else redrawn);
* curriculum: an example gets time-frequency masks with probability p(step), random blocks
  otherwise; p rises linearly from 0 to 1 between the fractions ``curriculum`` = (start, end) of
  ``train.steps`` (0 before, 1 after). ``kind`` = 'curriculum' | 'block' (random blocks only: the
  ablation) | 'time_frequency' (time-frequency masks only).

The step of an example is its position in the global training stream // the global batch, so
the schedule resumes exactly with the data iterator.

Both kinds are packed into the same fixed capacities (the larger of the two) and the same number
of target rows (padding rows are all invalid), so one compiled step serves every mix.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.masks.multiblock import MaskConfigError, MultiBlockMasks, MultiBlockSpec, pack

KINDS = ("curriculum", "block", "time_frequency")
MAX_RESAMPLES = 200


@dataclasses.dataclass(frozen=True)
class TimeFrequencySpec:
    grid: tuple[int, int]                        # (time patches, frequency patches)
    time_strips: int = 2
    strip_width: tuple[int, int] = (1, 2)        # time patches per strip
    freq_bands: int = 2
    band_height: tuple[int, int] = (1, 2)        # frequency patches per band
    min_context: int = 4

    def validate(self) -> None:
        t, f = self.grid
        if self.time_strips < 0 or self.freq_bands < 0 or self.time_strips + self.freq_bands < 1:
            raise MaskConfigError(f"mask.time_strips={self.time_strips} and mask.freq_bands="
                                  f"{self.freq_bands} must be >= 0 with at least one target")
        for name, (lo, hi), size in (("strip_width", self.strip_width, t),
                                     ("band_height", self.band_height, f)):
            if not 1 <= lo <= hi <= size:
                raise MaskConfigError(f"mask.{name}=({lo}, {hi}) must satisfy 1 <= low <= high "
                                      f"<= {size} (patches on the {t}x{f} time x frequency grid)")
        if self.min_context >= t * f - self.smallest_union():
            raise MaskConfigError(f"mask.min_context={self.min_context} can never be met: the "
                                  f"targets cover at least {self.smallest_union()} of {t * f} "
                                  "patches; lower it or the strip / band sizes")

    def smallest_union(self) -> int:
        """Fewest patches the targets can cover (all strips on one another, all bands too)."""
        t, f = self.grid
        strips = self.strip_width[0] * f if self.time_strips else 0
        bands = self.band_height[0] * t if self.freq_bands else 0
        both = self.strip_width[0] * self.band_height[0] if strips and bands else 0
        return strips + bands - both

    def largest_target(self) -> int:
        t, f = self.grid
        return max(self.strip_width[1] * f if self.time_strips else 0,
                   self.band_height[1] * t if self.freq_bands else 0)


def time_frequency_blocks(spec: TimeFrequencySpec, rng: np.random.Generator):
    """(targets, context): boolean (time, freq) grids; strips first, then bands."""
    t, f = spec.grid
    for _ in range(MAX_RESAMPLES):
        targets = []
        for _ in range(spec.time_strips):
            width = rng.integers(spec.strip_width[0], spec.strip_width[1] + 1)
            start = rng.integers(0, t - width + 1)
            block = np.zeros((t, f), bool)
            block[start:start + width, :] = True
            targets.append(block)
        for _ in range(spec.freq_bands):
            height = rng.integers(spec.band_height[0], spec.band_height[1] + 1)
            start = rng.integers(0, f - height + 1)
            block = np.zeros((t, f), bool)
            block[:, start:start + height] = True
            targets.append(block)
        context = ~np.logical_or.reduce(targets)
        if context.sum() >= spec.min_context:
            return targets, context
    raise MaskConfigError(f"could not keep mask.min_context={spec.min_context} context patches "
                          f"in {MAX_RESAMPLES} draws; lower it or the strip / band sizes")


def linear_ramp(step: int, total_steps: int, curriculum: tuple[float, float]) -> float:
    """p(step): 0 before curriculum[0] * total_steps, 1 after curriculum[1] * total_steps,
    linear in between."""
    start, end = curriculum[0] * total_steps, curriculum[1] * total_steps
    if end <= start:
        return float(step >= start)
    return float(np.clip((step - start) / (end - start), 0.0, 1.0))


class CurriculumMasks:
    """Per-example masks of either kind, chosen by the curriculum (module docstring)."""

    def __init__(self, blocks: MultiBlockSpec, time_frequency: TimeFrequencySpec, *, kind: str,
                 curriculum: tuple[float, float], total_steps: int):
        if kind not in KINDS:
            raise MaskConfigError(f"mask.kind={kind!r}: use one of {KINDS}")
        lo, hi = curriculum
        if not 0 <= lo <= hi <= 1:
            raise MaskConfigError(f"mask.curriculum={tuple(curriculum)} must satisfy 0 <= start "
                                  "<= end <= 1 (fractions of train.steps)")
        time_frequency.validate()
        self.kind, self.curriculum, self.total_steps = kind, tuple(curriculum), total_steps
        self.blocks = MultiBlockMasks(blocks)
        self.tf = time_frequency
        n = blocks.grid[0] * blocks.grid[1]
        self.num_targets = max(blocks.num_targets, time_frequency.time_strips + time_frequency.freq_bands)
        self.target_capacity = max(self.blocks.target_capacity, time_frequency.largest_target())
        self.context_capacity = max(self.blocks.context_capacity, n - time_frequency.smallest_union())

    def probability(self, step: int) -> float:
        """Share of examples that get time-frequency masks at `step`."""
        if self.kind != "curriculum":
            return float(self.kind == "time_frequency")
        return linear_ramp(step, self.total_steps, self.curriculum)

    def __call__(self, rng: np.random.Generator, step: int) -> dict[str, np.ndarray]:
        if rng.random() < self.probability(step):
            targets, context = time_frequency_blocks(self.tf, rng)
            idx = lambda grid: np.flatnonzero(grid)
            out = {"context": idx(context), "targets": [idx(t) for t in targets]}
            tf = True
        else:
            drawn = self.blocks(rng)
            valid = lambda i, v: i[v]
            out = {"context": valid(drawn["context_idx"], drawn["context_valid"]),
                   "targets": [valid(i, v) for i, v in zip(drawn["target_idx"], drawn["target_valid"])]}
            tf = False
        ctx_idx, ctx_valid = pack(out["context"], self.context_capacity, rng)
        rows = [pack(t, self.target_capacity, rng) for t in out["targets"]]
        empty = (np.zeros(self.target_capacity, np.int32), np.zeros(self.target_capacity, bool))
        rows += [empty] * (self.num_targets - len(rows))
        return {"context_idx": ctx_idx, "context_valid": ctx_valid,
                "target_idx": np.stack([r[0] for r in rows]),
                "target_valid": np.stack([r[1] for r in rows]),
                "time_frequency": np.bool_(tf)}
