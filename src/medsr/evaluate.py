"""Scoring super-resolution methods on HR images: the protocol of ``medsr baseline`` and ``medsr evaluate``.

Protocol, per HR image: take the first frame, centre-crop it to a multiple of the scale, degrade it to LR
(default: Pillow-exact bicubic), upscale the LR back to the HR size with each method, quantise the result to
the image's bit depth as it would be written, and score it against the HR with :mod:`medsr.metrics` on the
image's own intensity scale (``data_range=1`` on the [0, 1] working image), ``border`` pixels cropped from
each edge. Scores are kept per image and averaged per method by :func:`summarize`.

A method is any callable ``(lr, (height, width)) -> sr`` on ``(h, w, C)`` float arrays in [0, 1]; a model is
added the same way as the interpolation baselines in :func:`interpolation_methods`.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsr.errors import ConfigError, MedsrError
from medsr.io.image import MedicalImage

Method = Callable[[np.ndarray, tuple[int, int]], np.ndarray]
"""``(lr (h, w, C) float in [0, 1], (height, width)) -> (height, width, C) float in [0, 1]``."""

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm"})
BASELINE_METHODS = ("bicubic", "lanczos", "nearest")
CSV_COLUMNS = ("image", "method", "scale", "psnr", "ssim")


def iter_image_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named in ``inputs`` (kept whatever their suffix) plus the images found in folders, recursively.

    In folders, an image is a file with a suffix in :data:`IMAGE_SUFFIXES` or a suffix-less DICOM file
    (``DICM`` at byte 128); hidden files and folders are skipped. A path that does not exist is kept, so that
    reading it reports the failure. The result is sorted within each folder and free of duplicates.
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if _is_image_file(p, path)))
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def _is_image_file(path: Path, root: Path) -> bool:
    if any(part.startswith(".") for part in path.relative_to(root).parts) or not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    return suffix == "" and _has_dicom_preamble(path)


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_images(paths: Iterable[Path], failures: list[tuple[str, str]]) -> Iterator[MedicalImage]:
    """Read each path with :func:`medsr.io.read_image`, lazily; unreadable files go to ``failures``.

    ``failures`` receives ``(path, reason)`` pairs, ready for :func:`medsr.cli.report_failures`.
    """
    from medsr.io import read_image

    for path in paths:
        try:
            yield read_image(path)
        except MedsrError as exc:
            failures.append((str(path), getattr(exc, "reason", str(exc))))


def quantisation_levels(image: MedicalImage) -> float:
    """Steps between 0 and 1 in the stored integers of ``image`` (255 for 8-bit, 65535 for 16-bit PNG).

    For DICOM the stored value is (modality value - intercept) / slope, so one stored step is ``slope``
    modality units and the [0, 1] span holds ``data_range / slope`` steps.
    """
    slope = 1.0
    if image.dataset is not None:
        slope = float(getattr(image.dataset, "RescaleSlope", 1.0) or 1.0)
    return abs(image.data_range / slope)


def quantise(pixels: np.ndarray, levels: float) -> np.ndarray:
    """Round [0, 1] ``pixels`` to ``levels`` steps, as writing them to the image's integer format would."""
    return (np.clip(np.rint(np.clip(pixels, 0.0, 1.0) * levels), 0, levels) / levels).astype(np.float32)


def resize_bit_depth(image: MedicalImage) -> int:
    """Pillow path for resizing ``image``: its exact 8-bit code for 8-bit images, float32 otherwise."""
    return 8 if image.bit_depth == 8 else 16


def prepare_pair(
    image: MedicalImage,
    scale: int,
    degradation: str = "bicubic",
    rng: np.random.Generator | None = None,
    **params: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """``(hr, lr)`` float32 ``(H, W, C)`` arrays in [0, 1] for one image: first frame, cropped, degraded.

    ``hr`` is centre-cropped to a multiple of ``scale``; ``lr`` is the degradation's output, quantised to the
    image's bit depth (an LR file written in the source format would hold exactly these values).
    """
    from medsr.degrade.bicubic import bicubic, crop_to_multiple

    pixels = image.pixels[0] if image.is_multiframe else image.pixels
    bit_depth = resize_bit_depth(image)
    if degradation == "bicubic" and not params:
        hr = np.ascontiguousarray(crop_to_multiple(pixels, scale), dtype=np.float32)
        _check_size(hr, image, scale)
        lr = bicubic(hr, scale, bit_depth=bit_depth)
    else:
        from medsr.degrade import get_degradation, hr_multiple

        if degradation.startswith("ct-") and image.modality == "CT" and "value_range" not in params:
            params = {**params, "value_range": tuple(image.value_range)}  # as medsr.degrade.degrade_image
        hr = np.ascontiguousarray(crop_to_multiple(pixels, hr_multiple(degradation, scale)), dtype=np.float32)
        _check_size(hr, image, scale)
        lr = get_degradation(degradation)(hr, scale, bit_depth=bit_depth, rng=rng, **params)
    return hr, quantise(np.asarray(lr), quantisation_levels(image))


def _check_size(hr: np.ndarray, image: MedicalImage, scale: int) -> None:
    if hr.shape[0] == 0 or hr.shape[1] == 0:
        raise ValueError(f"image {image.width}x{image.height} is smaller than the scale {scale}")


def interpolation_methods(names: Sequence[str], bit_depth: int) -> dict[str, Method]:
    """Pillow interpolation baselines by name (see :data:`BASELINE_METHODS`) for images of ``bit_depth``."""
    from medsr.degrade.bicubic import pil_resize

    unknown = [name for name in names if name not in BASELINE_METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(BASELINE_METHODS)}")

    def make(name: str) -> Method:
        return lambda lr, size: pil_resize(lr, size, name, bit_depth)

    return {name: make(name) for name in names}


def score_methods(
    images: Iterable[MedicalImage],
    scale: int,
    methods: dict[str, Method] | Callable[[MedicalImage], dict[str, Method]],
    border: int | None = None,
    *,
    degradation: str = "bicubic",
    degradation_params: dict[str, Any] | None = None,
    rng: np.random.Generator | None = None,
    failures: list[tuple[str, str]] | None = None,
    on_output: Callable[[MedicalImage, str, np.ndarray], None] | None = None,
) -> list[dict[str, Any]]:
    """Score every method on every image: one row per (image, method) with image, method, scale, psnr, ssim,
    seconds (the method's wall time on that image).

    ``methods`` is a dict, or a function of the image giving one (the interpolation baselines depend on the
    image's bit depth). ``border`` defaults to ``scale``. ``degradation`` (with ``degradation_params`` and a
    seeded ``rng``) makes the LR inputs, see :func:`prepare_pair`. An image that cannot be prepared or scored
    (e.g. smaller than the SSIM window) goes to ``failures`` when a list is given, else the error is raised.
    ``on_output(image, method, sr)`` sees each quantised output (to save it, for example).
    """
    from medsr.metrics import psnr, ssim

    border = scale if border is None else border
    rows: list[dict[str, Any]] = []
    for index, image in enumerate(images):
        name = image.path or f"image{index}"
        try:
            hr, lr = prepare_pair(image, scale, degradation, rng, **(degradation_params or {}))
            image_methods = methods(image) if callable(methods) else methods
            levels = quantisation_levels(image)
            image_rows = []
            for method, upscale in image_methods.items():
                start = time.perf_counter()
                sr = np.asarray(upscale(lr, hr.shape[:2]))
                seconds = time.perf_counter() - start
                if sr.shape != hr.shape:
                    raise ValueError(f"method {method} returned shape {sr.shape}, expected {hr.shape}")
                sr = quantise(sr, levels)
                if on_output is not None:
                    on_output(image, method, sr)
                image_rows.append({
                    "image": name,
                    "method": method,
                    "scale": scale,
                    "psnr": psnr(sr, hr, data_range=1.0, border=border),
                    "ssim": ssim(sr, hr, data_range=1.0, border=border),
                    "seconds": seconds,
                })
        except (MedsrError, ValueError) as exc:
            if failures is None:
                raise
            failures.append((name, getattr(exc, "reason", str(exc))))
            continue
        rows.extend(image_rows)
    return rows


def summarize(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method, in first-seen order: images, mean PSNR, mean SSIM, mean seconds (of per-image values)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["method"], []).append(row)
    summary = []
    for method, group in groups.items():
        summary.append({
            "method": method,
            "images": len(group),
            "psnr": float(np.mean([r["psnr"] for r in group])),
            "ssim": float(np.mean([r["ssim"] for r in group])),
            "seconds": float(np.mean([r.get("seconds", math.nan) for r in group])),
        })
    return summary


def summary_table(summary: Iterable[dict[str, Any]], title: str | None = None, seconds: bool = False) -> Any:
    """A Rich table of :func:`summarize` output: method, images, PSNR, SSIM (and seconds per image)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("method")
    table.add_column("images", justify="right")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    if seconds:
        table.add_column("s / image", justify="right")
    for row in summary:
        cells = [row["method"], str(row["images"]), f"{row['psnr']:.2f}", f"{row['ssim']:.4f}"]
        if seconds:
            cells.append(f"{row['seconds']:.3f}")
        table.add_row(*cells)
    return table


def write_csv(rows: Iterable[dict[str, Any]], path: str | Path, columns: Sequence[str] = CSV_COLUMNS) -> Path:
    """Write ``rows`` (only ``columns``) to a CSV at ``path`` via a temporary file (never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MedsrError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


# --- evaluating a model (``medsr evaluate``) ---------------------------------------------------------

EVALUATE_CSV_COLUMNS = ("image", "method", "scale", "psnr", "ssim", "seconds")
DEFAULT_BASELINES = ("bicubic", "lanczos")


@dataclass
class Evaluation:
    """What :func:`evaluate_model` measured: per-image rows, per-method means, and how they were made.

    ``rows`` hold image, method, scale, psnr, ssim, seconds (see :func:`score_methods`); ``summary`` is
    :func:`summarize` of them (model first, then the baselines); ``failures`` are ``(path, reason)`` pairs of
    the images that could not be read or scored.
    """

    model_name: str
    model_path: str | None
    model_info: dict[str, Any]
    scale: int
    model_scale: tuple[int, int]
    border: int
    degradation: str
    degradation_params: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        """Images scored (each has one row per method)."""
        return len({row["image"] for row in self.rows})

    def to_json(self, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON summary: per-method means, image count, model, scale, degradation, border, arguments."""
        return {
            "model": {"name": self.model_name, "path": self.model_path, **self.model_info},
            "scale": self.scale,
            "model_scale": list(self.model_scale),
            "degradation": self.degradation,
            "degradation_params": self.degradation_params,
            "border": self.border,
            "images": self.n_images,
            "methods": {
                row["method"]: {k: row[k] for k in ("images", "psnr", "ssim", "seconds")}
                for row in self.summary
            },
            "failures": [{"path": path, "reason": reason} for path, reason in self.failures],
            "arguments": dict(arguments or {}),
        }


def resolve_scale(model_scale: tuple[int, int], degradation: str, scale: int | None = None) -> int:
    """The degradation's scale that a model of ``model_scale`` (sy, sx) undoes, checked against ``scale``.

    The scale is taken from the model (``max(sy, sx)``) unless given; ``ct-sparse-view`` models work at
    scale 1 whatever the number of views dropped, so there it must be given. ConfigError on a mismatch.
    """
    from medsr.degrade import lr_scale

    if degradation == "ct-sinogram":
        raise ConfigError(
            "evaluate scores images; the ct-sinogram route's output is a sinogram (use ct-sparse-view)"
        )
    if scale is None:
        if lr_scale(degradation, 2) == (1, 1):
            raise ConfigError(f"degradation {degradation!r} does not fix the scale; pass --scale")
        scale = max(model_scale)
    wanted = lr_scale(degradation, scale)
    if wanted != tuple(model_scale):
        sy, sx = model_scale
        raise ConfigError(
            f"the model upsamples x{sy}x{sx}, but {degradation!r} at scale {scale} "
            f"needs x{wanted[0]}x{wanted[1]}"
        )
    return scale


def centre_crop_image(image: MedicalImage, max_size: int | None) -> MedicalImage:
    """``image`` centre-cropped to at most ``max_size`` pixels per side (every frame); unchanged if None."""
    if max_size is None or (image.height <= max_size and image.width <= max_size):
        return image
    top = max(0, (image.height - max_size) // 2)
    left = max(0, (image.width - max_size) // 2)
    window = (slice(top, top + max_size), slice(left, left + max_size))
    pixels = image.pixels[:, window[0], window[1]] if image.is_multiframe else image.pixels[window]
    return image.with_pixels(np.ascontiguousarray(pixels))


def output_names(paths: Sequence[Path]) -> dict[Path, Path]:
    """A distinct relative name (suffix ``.png``) per input: its path below the inputs' common folder."""
    if not paths:
        return {}
    absolute = [p.absolute() for p in paths]
    root = Path(os.path.commonpath([p.parent for p in absolute]))
    return {p: a.relative_to(root).with_suffix(".png") for p, a in zip(paths, absolute, strict=True)}


def save_output(image: MedicalImage, pixels: np.ndarray, path: Path) -> Path:
    """Write an (H, W, C) output in [0, 1] as PNG at ``image``'s bit depth (8 stays 8, deeper is 16-bit).

    16-bit colour, which PNG cannot hold here, goes to TIFF; the returned path says which.
    """
    from medsr.io import write_image

    if image.bit_depth > 8 and pixels.shape[-1] == 3:
        path = path.with_suffix(".tiff")
    write_image(image.with_pixels(pixels, pixel_spacing=None, extra={}), path, format=path.suffix[1:])
    return path


def _safe_name(method: str) -> str:
    return "".join("_" if ch in '/\\:*?"<>|' else ch for ch in method) or "model"


def evaluate_model(
    model: str | Path | Any,
    paths: Sequence[str | Path],
    *,
    scale: int | None = None,
    baselines: Sequence[str] = DEFAULT_BASELINES,
    border: int | None = None,
    degradation: str = "bicubic",
    degradation_params: dict[str, Any] | None = None,
    seed: int = 0,
    tile: int = 512,
    overlap: int = 32,
    device: str = "auto",
    precision: str = "fp32",
    max_size: int | None = None,
    save_images: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Score a model and interpolation baselines on the same HR images (the protocol of this module).

    ``model`` is a bundled name, a checkpoint path (medsr ``.safetensors`` or the reference Swift-SRGAN
    ``.pth.tar``) or a module from :mod:`medsr.models`; it runs through :func:`medsr.infer.upscale_array`
    (tiles of ``tile`` LR pixels; a 3-channel model given grayscale sees it replicated and its output is
    averaged back to gray). ``scale`` defaults to the model's (see :func:`resolve_scale`), ``border`` to the
    scale. Each image is first centre-cropped to ``max_size`` (if given); ``precision="bf16"`` scores the
    reduced-precision path. Random degradations get a seed made from ``seed`` and the file name, so an image's
    LR does not depend on the others. ``save_images`` keeps
    every quantised output as ``DIR/<method>/<name>.png``. Unreadable or unscorable images are skipped into
    ``failures``; a model that cannot be loaded raises :class:`medsr.errors.CheckpointError`.
    """
    import zlib

    from medsr.infer import get_predictor, model_name, resolve_model, upscale_array

    net = resolve_model(model, device)
    model_scale = (int(net.scale[0]), int(net.scale[1]))
    scale = resolve_scale(model_scale, degradation, scale)
    border = scale if border is None else border
    baselines = list(dict.fromkeys(baselines))
    interpolation_methods(baselines, 8)  # rejects unknown names before any work
    name = model_name(net)
    method = f"model:{name}" if name in BASELINE_METHODS else name
    meta = getattr(net, "meta", None) or {}
    is_file = isinstance(model, str | os.PathLike) and Path(model).is_file()
    model_path = str(Path(model).absolute()) if is_file else None
    info = {key: meta[key] for key in ("arch", "arch_args", "in_channels") if key in meta}

    # build the prepared model and let the backend initialise now, so per-image seconds are steady-state
    predictor = get_predictor(net, device=device, precision=precision)
    predictor(np.zeros((1, int(net.in_channels), 16, 16), dtype=np.float32))

    def run_model(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return upscale_array(net, lr, tile=tile, overlap=overlap, device=device, precision=precision)

    def methods_for(image: MedicalImage) -> dict[str, Method]:
        return {method: run_model, **interpolation_methods(baselines, resize_bit_depth(image))}

    result = Evaluation(
        model_name=name, model_path=model_path, model_info=info, scale=scale, model_scale=model_scale,
        border=border, degradation=degradation, degradation_params=dict(degradation_params or {}),
    )
    paths = [Path(p) for p in paths]
    names = output_names(paths)
    for done, path in enumerate(paths, start=1):
        for image in read_images([path], result.failures):
            image = centre_crop_image(image, max_size)
            saver = None
            if save_images is not None:
                def saver(image: MedicalImage, label: str, sr: np.ndarray, path: Path = path) -> None:
                    target = Path(save_images) / _safe_name(label) / names[path]
                    result.saved.append(save_output(image, sr, target))

            rng = np.random.default_rng([seed, zlib.crc32(str(path).encode())])
            result.rows.extend(score_methods(
                [image], scale, methods_for, border, degradation=degradation,
                degradation_params=degradation_params, rng=rng, failures=result.failures, on_output=saver,
            ))
        if progress is not None:
            progress(done, len(paths))
    result.summary = summarize(result.rows)
    return result


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as indented JSON at ``path``, atomically."""
    import json

    from medsr.atomic import atomic_path

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    except OSError as exc:
        raise MedsrError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
