"""Faint round signals added to HR training patches, so that a denoising network learns to keep them.

A network trained on radiographs alone learns that a faint round blob in a noisy input is almost always
noise: a few hundred radiographs hold few small nodules, and none at 1-4 % contrast. Under MSE or L1 it then
removes such blobs with the noise, and a model observer finds small findings less often in its output than in
bicubic's (``medsr detectability``; docs/detectability.md). Adding faint smooth-edged discs at random places
to the HR patch, before it is degraded, puts them into the prior the network learns: the LR shows a blob in
noise, and the target keeps it.

The discs are the observer's signal shape (:func:`medsr.observers.disc_signal`) with a contrast relative to
the local mean under the disc, as ``medsr detectability`` inserts them; sizes and contrasts are drawn from
ranges wider than the benchmark's grid, and some discs are darker than their surroundings (cavities, lucent
lesions), so the network learns "keep faint round structure", not one size or one sign.
For CT the contrast is absolute, in HU (``absolute``; the MITA-LCD phantom's discs add 3-14 HU whatever the
tissue), and discs may be kept to a range of values under them (``within``: soft tissue, as ``medsr
detectability --modality CT`` places them). :func:`insert_faint_discs` is a pure function of the patch and the
random generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medsr.observers import disc_signal

PLACEMENT_TRIES = 20
"""Positions drawn for a disc that must lie ``within`` a range of values before it is left out."""


@dataclass(frozen=True)
class FaintSignals:
    """How the discs are drawn: diameter (HR px, uniform), contrast (fraction of the local mean, log-uniform),
    discs per patch (uniform, inclusive) and the share of discs brighter than their surroundings.

    ``absolute``: the contrast is in the image's values instead (HU where the data have a value range, else
    the [0, 1] scale). ``within``: every pixel under a disc lies in this range of values (HU with a value
    range); a disc's position is drawn up to :data:`PLACEMENT_TRIES` times, then the disc is left out."""

    diameter: tuple[float, float] = (3.0, 20.0)
    contrast: tuple[float, float] = (0.005, 0.06)
    count: tuple[int, int] = (1, 6)
    bright: float = 0.8
    edge: float = 1.0
    absolute: bool = False
    within: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.diameter[0] <= self.diameter[1]:
            raise ValueError(f"signal diameter must be a range of positive pixels, not {self.diameter}")
        if self.absolute and not 0 < self.contrast[0] <= self.contrast[1]:
            raise ValueError(f"signal contrast must be a range of positive values, not {self.contrast}")
        if not self.absolute and not 0 < self.contrast[0] <= self.contrast[1] < 1:
            raise ValueError(f"signal contrast must be a range inside (0, 1), not {self.contrast}")
        if self.within is not None and not (len(self.within) == 2 and self.within[0] < self.within[1]):
            raise ValueError(f"signal within must be a range [low, high] of values, not {self.within}")
        if not 1 <= self.count[0] <= self.count[1]:
            raise ValueError(f"signal count must be a range of at least 1, not {self.count}")
        if not 0.0 <= self.bright <= 1.0:
            raise ValueError(f"signal bright share must lie in [0, 1], not {self.bright}")


def insert_faint_discs(hr: np.ndarray, rng: np.random.Generator, signals: FaintSignals = FaintSignals(),
                       value_range: Sequence[float] | None = None) -> np.ndarray:
    """``hr`` ``(H, W, C)`` float in [0, 1] with a few faint discs added at random places (each wholly inside),
    clipped to [0, 1]. Each disc adds ``sign x contrast x (disc-weighted local mean) x disc`` to every channel
    (``sign x contrast x disc`` in the image's values for ``signals.absolute``); pixels outside the discs keep
    their values exactly. ``value_range``: the values at 0 and 1 (HU for CT), for absolute contrasts and
    ``signals.within``. Returns a new float32 array."""
    out = np.array(hr, dtype=np.float32)
    height, width = out.shape[:2]
    grey = out.mean(axis=2)
    low_value, span = (0.0, 1.0) if value_range is None else (float(value_range[0]), float(np.ptp(value_range)))
    low, high = np.log(signals.contrast[0]), np.log(signals.contrast[1])
    for _ in range(int(rng.integers(signals.count[0], signals.count[1] + 1))):
        diameter = float(rng.uniform(*signals.diameter))
        side = 2 * math.ceil(diameter / 2 + signals.edge) + 1
        if side > min(height, width):
            continue
        disc = disc_signal(side, diameter, signals.edge)
        for _ in range(1 if signals.within is None else PLACEMENT_TRIES):
            top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
            if signals.within is None:
                break
            under = low_value + span * grey[top:top + side, left:left + side][disc > 0]
            if signals.within[0] <= under.min() and under.max() <= signals.within[1]:
                break
        else:
            continue
        sign = 1.0 if rng.random() < signals.bright else -1.0
        if signals.absolute:
            amplitude = sign * float(np.exp(rng.uniform(low, high))) / span
        else:
            local_mean = float((grey[top:top + side, left:left + side] * disc).sum() / disc.sum())
            amplitude = sign * float(np.exp(rng.uniform(low, high))) * local_mean
        out[top:top + side, left:left + side, :] += (amplitude * disc).astype(np.float32)[..., None]
    return np.clip(out, 0.0, 1.0)
