"""Scores in reading windows: PSNR/SSIM of a model that works in physical units (CT in HU) within a window.

A radiologist reads a CT slice through a window (lung: -1350..150 HU, soft tissue: -160..240 HU), not over the
whole -1024..3071 HU range the model works on; an error of 20 HU is invisible over 4095 HU and plain in a 400 HU
window. Both images (the protocol's quantised output and the HR) are clipped to the window, which becomes their
peak, and scored with the protocol's metrics and border. The pairs, outputs and baselines are the protocol's
(:class:`medsr.protocol.Protocol`), so the ``full`` window equals what ``medsr evaluate`` reports.
``medsr evaluate --window lung --window soft-tissue`` adds these scores to its table and JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from medsr.errors import ConfigError, MedsrError
from medsr.metrics import psnr, ssim
from medsr.protocol import Item, Method, Protocol, read_images

Window = tuple[float, float] | None  # (low, high) in the model's units; None: its whole value range

#: Named reading windows (HU): the whole range, lung (W1500 L-600), soft tissue / mediastinum (W400 L40).
WINDOWS: dict[str, Window] = {"full": None, "lung": (-1350.0, 150.0), "soft-tissue": (-160.0, 240.0)}


def parse_window(text: str) -> tuple[str, Window]:
    """``"lung"``, ``"soft-tissue"``, ``"full"`` or ``"LOW,HIGH"`` (in the model's units) -> (name, window)."""
    text = text.strip()
    if text in WINDOWS:
        return text, WINDOWS[text]
    low, sep, high = text.partition(",")
    try:
        window = (float(low), float(high))
    except ValueError:
        window = None
    if not sep or window is None or not window[0] < window[1]:
        raise ConfigError(f"--window {text!r}: give {', '.join(WINDOWS)} or LOW,HIGH with LOW < HIGH")
    return f"{window[0]:g}..{window[1]:g}", window


def in_window(pixels: np.ndarray, value_range: tuple[float, float], window: Window) -> np.ndarray:
    """[0, 1] pixels on ``value_range`` as [0, 1] pixels of ``window`` (clipped); unchanged for None."""
    if window is None:
        return pixels
    low, high = value_range
    values = low + pixels.astype(np.float64) * (high - low)
    return ((np.clip(values, *window) - window[0]) / (window[1] - window[0])).astype(np.float32)


def window_scores(sr: np.ndarray, hr: np.ndarray, value_range: tuple[float, float],
                  windows: Mapping[str, Window], border: int) -> dict[str, tuple[float, float]]:
    """``{window name: (PSNR, SSIM)}`` of ``sr`` against ``hr`` (both [0, 1] on ``value_range``)."""
    out = {}
    for name, window in windows.items():
        a, b = in_window(sr, value_range, window), in_window(hr, value_range, window)
        out[name] = (float(psnr(a, b, 1.0, border)), float(ssim(a, b, 1.0, border)))
    return out


def score_windows(
    items: Iterable[Item],
    protocol: Protocol,
    methods: Mapping[str, Method],
    baselines: Sequence[str],
    windows: Mapping[str, Window],
    *,
    failures: list[tuple[str, str]],
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows (image, source, method, window, psnr, ssim) of every method in every window, on every item."""
    if protocol.value_range is None:
        raise ConfigError("--window needs a model that works in physical units (a CT model, with a value range)")
    items = list(items)
    rows: list[dict[str, Any]] = []
    for done, item in enumerate(items, start=1):
        for image in read_images([item.path], failures):
            try:
                pair = protocol.pair(image, item.key)
                chosen = {**methods, **protocol.baselines(baselines, pair)}
                for method, run in chosen.items():
                    sr, _, _ = protocol.score(np.asarray(run(pair.lr, pair.hr.shape[:2])), pair)
                    for window, (p, s) in window_scores(sr, pair.hr, protocol.value_range, windows,
                                                        protocol.crop).items():
                        rows.append({"image": str(item.path), "source": item.source, "method": method,
                                     "window": window, "psnr": p, "ssim": s})
            except (MedsrError, ValueError) as exc:
                failures.append((str(item.path), str(exc)))
        if progress is not None:
            progress(done, len(items))
    return rows


def summarize_windows(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {window: {"images", "psnr", "ssim"}}}``: means over images, in the order first seen."""
    grouped: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for row in rows:
        grouped.setdefault(row["method"], {}).setdefault(row["window"], []).append((row["psnr"], row["ssim"]))
    return {method: {window: {"images": len(values), "psnr": float(np.mean([v[0] for v in values])),
                              "ssim": float(np.mean([v[1] for v in values]))}
                     for window, values in by_window.items()}
            for method, by_window in grouped.items()}
