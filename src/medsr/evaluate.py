"""Evaluation and its reports: a model and the interpolation baselines scored on the same HR images.

Every score is made by :class:`medsr.protocol.Protocol` (crop, degrade, quantise, upscale, quantise, PSNR/SSIM
on the image's own scale); this module runs a model and the baselines through it on chosen images
(:class:`medsr.io.find.Item`) and reports per image, per source (hospital, data set) and per method, with the
means of :mod:`medsr.scores`: tables, CSV and JSON. ``medsr evaluate`` and ``medsr baseline`` are thin layers
over :func:`evaluate_model` and :func:`score_baselines`.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from medsr.atomic import atomic_path
from medsr.errors import MedsrError
from medsr.infer import InferenceSettings, get_predictor, upscale_array
from medsr.io import write_image
from medsr.io.find import Item
from medsr.io.image import MedicalImage
from medsr.models import ModelLike, load_model, model_name
from medsr.protocol import BASELINE_METHODS, Method, Protocol, interpolation_methods, score_items
from medsr.scores import MEAN_OF_SOURCES, ScoreRow, Summary, headline, summarize, summarize_sources

CSV_COLUMNS = ("image", "source", "method", "scale", "psnr", "ssim")
EVALUATE_CSV_COLUMNS = (*CSV_COLUMNS, "seconds")
DEFAULT_BASELINES = ("bicubic", "lanczos")


def score_baselines(
    items: Sequence[Item], protocol: Protocol, methods: Sequence[str], failures: list[tuple[str, str]]
) -> list[ScoreRow]:
    """``medsr baseline``: interpolation methods alone under the protocol."""
    interpolation_methods(methods, 8)  # rejects unknown names before any work
    return score_items(items, protocol, {}, methods, failures=failures)


def summary_table(
    summary: Iterable[Summary],
    title: str | None = None,
    seconds: bool = False,
    sources: dict[str, list[Summary]] | None = None,
) -> Any:
    """A Rich table of :func:`summarize` output (and, with ``sources``, a block of rows per source first)."""
    table = Table(title=title)
    if sources:
        table.add_column("source")
    table.add_column("method")
    table.add_column("images", justify="right")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    if seconds:
        table.add_column("s / image", justify="right")
    blocks = [*(sources or {}).items(), ("all images", list(summary))] if sources else [("", list(summary))]
    for name, rows in blocks:
        for i, row in enumerate(rows):
            cells = [row.method, str(row.images), f"{row.psnr:.2f}", f"{row.ssim:.4f}"]
            if seconds:
                cells.append(f"{row.seconds:.3f}")
            last = i == len(rows) - 1
            table.add_row(*(([name if i == 0 else ""] if sources else []) + cells), end_section=last)
    return table


def write_csv(rows: Iterable[ScoreRow], path: str | Path, columns: Sequence[str] = CSV_COLUMNS) -> Path:
    """Write ``rows`` (only ``columns``) to a CSV at ``path``, atomically; one-line MedsrError on failure."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(row.as_dict() for row in rows)
    except OSError as exc:
        raise MedsrError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as indented JSON at ``path``, atomically."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    except OSError as exc:
        raise MedsrError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


# --- evaluating a model (``medsr evaluate``) ---------------------------------------------------------


@dataclass
class Evaluation:
    """What :func:`evaluate_model` measured: per-image rows, per-method means, and how they were made.

    ``rows`` are a :class:`ScoreRow` per image and method; ``summary`` is :func:`summarize` of them
    (model first, then the baselines), ``sources`` is :func:`summarize_sources`; ``failures`` are
    ``(path, reason)`` pairs of the images that could not be read or scored.
    """

    model_name: str
    model_path: str | None
    model_info: dict[str, Any]
    protocol: Protocol
    model_scale: tuple[int, int]
    rows: list[ScoreRow] = field(default_factory=list)
    summary: list[Summary] = field(default_factory=list)
    sources: dict[str, list[Summary]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)

    @property
    def scale(self) -> int:
        return self.protocol.scale

    @property
    def border(self) -> int:
        return self.protocol.crop

    @property
    def n_images(self) -> int:
        """Images scored (each has one row per method)."""
        return len({row.image for row in self.rows})

    def title(self) -> str:
        """One line saying what was scored and how."""
        p = self.protocol
        crop = f", centre {p.max_size} px" if p.max_size else ""
        return f"{self.model_name}: x{p.scale} {p.degradation}, border {p.crop}{crop}"

    def to_json(self, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON summary: per-method means (overall and per source), model, protocol, arguments."""
        def means(summary: list[Summary]) -> dict[str, Any]:
            return {row.method: {k: getattr(row, k) for k in ("images", "psnr", "ssim", "seconds")}
                    for row in summary}

        p = self.protocol
        return {
            "model": {"name": self.model_name, "path": self.model_path, **self.model_info},
            "scale": p.scale,
            "model_scale": list(self.model_scale),
            "degradation": p.degradation,
            "degradation_params": dict(p.degradation_params),
            "border": p.crop,
            "seed": p.seed,
            "max_size": p.max_size,
            "images": self.n_images,
            "methods": means(self.summary),
            "sources": {source: means(summary) for source, summary in self.sources.items()},
            "failures": [{"path": path, "reason": reason} for path, reason in self.failures],
            "arguments": dict(arguments or {}),
        }


def output_names(paths: Sequence[Path]) -> dict[Path, Path]:
    """A distinct relative name (suffix ``.png``) per input: its path below the inputs' common folder.

    Where two inputs would share a name (``a.jpg`` and ``a.png``), the others keep their suffix: ``a.jpg.png``.
    """
    if not paths:
        return {}
    absolute = [p.absolute() for p in paths]
    root = Path(os.path.commonpath([p.parent for p in absolute]))
    relative = [a.relative_to(root) for a in absolute]
    taken = Counter(r.with_suffix(".png") for r in relative)
    return {p: r.with_suffix(".png") if taken[r.with_suffix(".png")] == 1 or r.suffix == ".png"
            else r.with_name(r.name + ".png") for p, r in zip(paths, relative, strict=True)}


def save_output(image: MedicalImage, pixels: np.ndarray, path: Path) -> Path:
    """Write an (H, W, C) output in [0, 1] as PNG at ``image``'s bit depth (8 stays 8, deeper is 16-bit).

    16-bit colour, which PNG cannot hold here, goes to TIFF; the returned path says which.
    """
    if image.bit_depth > 8 and pixels.shape[-1] == 3:
        path = path.with_suffix(".tiff")
    write_image(image.with_pixels(pixels, pixel_spacing=None, extra={}), path, format=path.suffix[1:])
    return path


def _safe_name(method: str) -> str:
    return "".join("_" if ch in '/\\:*?"<>|' else ch for ch in method) or "model"


def model_method(model: ModelLike, settings: InferenceSettings | None = None) -> Method:
    """A protocol method that runs ``model`` through :func:`medsr.infer.upscale_array` (tiled)."""
    settings = settings or InferenceSettings()
    net = load_model(model, settings.device)
    return lambda lr, size: upscale_array(net, lr, settings)


def evaluate_model(
    model: ModelLike,
    items: Sequence[Item | str | Path],
    protocol: Protocol | None = None,
    settings: InferenceSettings | None = None,
    *,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    save_images: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Score a model and interpolation baselines on the same HR images under one :class:`Protocol`.

    ``model`` is anything :func:`medsr.models.load_model` takes; it runs through
    :func:`medsr.infer.upscale_array` with ``settings`` (a 3-channel model given grayscale sees it replicated
    and its output is averaged back to gray). ``items`` are :class:`Item` (from
    :func:`medsr.io.find.expand_inputs` or :func:`medsr.data.manifest.items_from_manifest`) or plain paths
    (keyed by file name). ``protocol`` (default: ``Protocol(scale=None)``, bicubic at the model's scale) is made
    the model's by :meth:`Protocol.for_model`. ``save_images`` keeps every quantised output as
    ``DIR/<method>/<name>.png``. Unreadable or unscorable images are skipped into ``failures``; a model that
    cannot be loaded raises CheckpointError.
    """
    settings = settings or InferenceSettings()
    net = load_model(model, settings.device)
    model_scale = (int(net.scale[0]), int(net.scale[1]))
    meta = getattr(net, "meta", None) or {}
    protocol = (protocol or Protocol(scale=None)).for_model(model_scale, meta)
    baselines = list(dict.fromkeys(baselines))
    interpolation_methods(baselines, 8)  # rejects unknown names before any work
    name = model_name(net)
    label = f"model:{name}" if name in BASELINE_METHODS else name
    is_file = isinstance(model, str | os.PathLike) and Path(model).is_file()
    result = Evaluation(
        model_name=name, model_path=str(Path(model).absolute()) if is_file else None,
        model_info={key: meta[key] for key in ("arch", "arch_args", "in_channels") if key in meta},
        protocol=protocol, model_scale=model_scale,
    )
    # build the prepared model and let the backend initialise now, so per-image seconds are steady-state
    get_predictor(net, settings)(np.zeros((1, int(net.in_channels), 16, 16), dtype=np.float32))
    items = [item if isinstance(item, Item) else Item(Path(item), Path(Path(item).name)) for item in items]
    names = output_names([item.path for item in items])

    def save(item: Item, image: MedicalImage, method: str, sr: np.ndarray) -> None:
        result.saved.append(save_output(image, sr, Path(save_images) / _safe_name(method) / names[item.path]))

    result.rows = score_items(
        items, protocol, {label: model_method(net, settings)}, baselines, failures=result.failures,
        on_output=save if save_images is not None else None, progress=progress,
    )
    result.summary = summarize(result.rows)
    result.sources = summarize_sources(result.rows)
    return result


__all__ = [
    "MEAN_OF_SOURCES",
    "Evaluation",
    "ScoreRow",
    "Summary",
    "evaluate_model",
    "headline",
    "score_baselines",
    "summarize",
    "summarize_sources",
    "summary_table",
    "write_csv",
    "write_json",
]
