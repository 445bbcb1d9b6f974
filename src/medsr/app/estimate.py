"""Run-time estimates shown before Run: measured model speed (input pixels per second) times the pixel count.

The speed of a model on a device is first measured on a small image (:func:`measure_speed`, well under a
second) and then replaced by what each real run measured (:class:`SpeedBook`), so the estimate follows the
machine's actual load: on a shared CPU the same run can take twice as long as on an idle one.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from medsr.infer import InferenceSettings, upscale_array

CALIBRATION_SIDE = 96
"""Side of the square input :func:`measure_speed` times (small, so that it costs well under a second)."""


def work_pixels(height: int, width: int, channels: int) -> int:
    """Input pixels the model processes in ``channels`` passes (see :func:`passes`)."""
    return int(height) * int(width) * max(int(channels), 1)


def passes(image_channels: int, model_channels: int, settings: InferenceSettings) -> int:
    """Forward passes per image: a grey model on a colour image runs three times in ``per-channel`` colour
    mode, once (on luminance) otherwise; a model with the image's own channels runs once."""
    per_channel = getattr(settings, "colour", "per-channel") == "per-channel"
    return 3 if image_channels == 3 and model_channels == 1 and per_channel else 1


def measure_speed(model: Any, settings: InferenceSettings, side: int = CALIBRATION_SIDE) -> float:
    """Input pixels per second of ``model`` on a ``side`` x ``side`` grey image, after one warm-up run."""
    lr = np.random.default_rng(0).random((side, side, 1), dtype=np.float32)
    upscale_array(model, lr[:16, :16], settings)  # warm-up: first calls allocate and pick kernels
    start = time.perf_counter()
    upscale_array(model, lr, settings)
    return side * side / max(time.perf_counter() - start, 1e-6)


MIN_TIMED_PIXELS = CALIBRATION_SIDE * CALIBRATION_SIDE
"""Runs on fewer input pixels than the calibration image are not recorded: their time is mostly fixed
overhead, and one tiny image would set the estimate every session sees (a 1 x 1 PNG once made it minutes)."""


class SpeedBook:
    """Measured speeds by ``(model key, device)``, shared by every session of the server process.

    A real run's speed replaces the calibration: it includes tiling and the machine's current load. Runs under
    :data:`MIN_TIMED_PIXELS` are ignored.
    """

    def __init__(self) -> None:
        self._speeds: dict[tuple[str, str], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[float, str] | None:
        """``(pixels per second, how it was measured)`` or None when never measured."""
        with self._lock:
            return self._speeds.get(key)

    def record(self, key: tuple[str, str], pixels: int, seconds: float, how: str = "last run") -> None:
        """Store the speed of a run of ``pixels`` input pixels that took ``seconds`` (ignored under
        :data:`MIN_TIMED_PIXELS`)."""
        if pixels >= MIN_TIMED_PIXELS and seconds > 0:
            with self._lock:
                self._speeds[key] = (pixels / seconds, how)


def estimate_seconds(pixels: int, speed: float) -> float:
    """Seconds to process ``pixels`` input pixels at ``speed`` pixels per second."""
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    return pixels / speed


def format_estimate(seconds: float, pixels: int, speed: float, how: str, device: str) -> str:
    """One line for the page: ``Estimated run time: about 14 s (378,240 input pixels at 27 kpx/s, ...)``."""
    if seconds < 1:
        rounded = "under 1 s"
    elif seconds < 90:
        rounded = f"about {seconds:.0f} s"
    else:
        rounded = f"about {seconds / 60:.1f} min"
    return (f"Estimated run time: {rounded} ({pixels:,} input pixels at {speed / 1000:,.0f} kpx/s, "
            f"measured on {device}: {how}).")
