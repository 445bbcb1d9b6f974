"""Scores as types: one row per image and method, and the means that every report and training run prints.

:class:`medsr.protocol.Protocol` makes :class:`ScoreRow` s; ``medsr evaluate``, ``medsr baseline`` and training
validation summarise them here, so a mean printed by one is the mean printed by the others. Pure functions on
plain data (NumPy only): this module sits below both :mod:`medsr.evaluate` and :mod:`medsr.train`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

MEAN_OF_SOURCES = "mean of sources"
"""The pseudo-source whose figures are each method's unweighted mean over the real sources."""


@dataclass(frozen=True)
class ScoreRow:
    """One method's score on one image: PSNR (dB) and SSIM on the image's own scale, and its wall time.

    ``image`` is the file's path and ``source`` its hospital or data set ("" when unknown or not yet known).
    """

    method: str
    scale: int
    psnr: float
    ssim: float
    seconds: float = math.nan
    image: str = ""
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as a dict (the CSV's columns)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ScoreRow:
        """A row from a mapping such as a line of ``medsr evaluate --out`` CSV (numbers may be text)."""
        number = {"scale": int, "psnr": float, "ssim": float, "seconds": float}
        values = {f.name: row[f.name] for f in fields(cls) if row.get(f.name) not in (None, "")}
        return cls(**{key: number.get(key, str)(value) for key, value in values.items()})


@dataclass(frozen=True)
class Summary:
    """One method's means over a group of images (of per-image values)."""

    method: str
    images: int
    psnr: float
    ssim: float
    seconds: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(rows: Iterable[ScoreRow]) -> list[Summary]:
    """Per method, in first-seen order: images, mean PSNR, mean SSIM, mean seconds (of per-image values)."""
    groups: dict[str, list[ScoreRow]] = {}
    for row in rows:
        groups.setdefault(row.method, []).append(row)
    return [
        Summary(method=method, images=len(group), psnr=float(np.mean([r.psnr for r in group])),
                ssim=float(np.mean([r.ssim for r in group])), seconds=float(np.mean([r.seconds for r in group])))
        for method, group in groups.items()
    ]


def summarize_sources(rows: Iterable[ScoreRow]) -> dict[str, list[Summary]]:
    """:func:`summarize` per source, plus :data:`MEAN_OF_SOURCES`: each method's unweighted mean over sources.

    The mean over sources weighs every hospital alike, however many images it contributed. Empty when the
    rows carry no sources.
    """
    by_source: dict[str, list[ScoreRow]] = {}
    for row in rows:
        by_source.setdefault(row.source or "", []).append(row)
    if set(by_source) <= {""}:
        return {}
    out = {source: summarize(group) for source, group in sorted(by_source.items())}
    methods: dict[str, list[Summary]] = {}
    for summary in out.values():
        for found in summary:
            methods.setdefault(found.method, []).append(found)
    out[MEAN_OF_SOURCES] = [
        Summary(method=method, images=sum(s.images for s in group),
                **{key: float(np.mean([getattr(s, key) for s in group])) for key in ("psnr", "ssim", "seconds")})
        for method, group in methods.items()
    ]
    return out


def headline(rows: Iterable[ScoreRow], method: str) -> tuple[float, float]:
    """One method's (PSNR, SSIM): the mean of sources when the rows carry sources, else the mean of images.

    The figure that selects a training run's best checkpoint: ``medsr evaluate``'s "mean of sources" row, or its
    only row when the images carry no source.
    """
    rows = list(rows)
    sources = summarize_sources(rows)
    summary = sources[MEAN_OF_SOURCES] if sources else summarize(rows)
    found = next(s for s in summary if s.method == method)
    return found.psnr, found.ssim
