"""Upscaling files: which inputs, which output names and formats, read -> upscale -> write, one outcome each.

This is what ``medsr upscale`` runs; it never stops at a bad file. Outputs keep the input's stem (and, for
folders, the path below the folder), format and bit depth: PNG -> PNG, TIFF -> TIFF (16-bit stays 16-bit),
DICOM -> derived DICOM (one new series per input series), JPEG -> PNG (a super-resolved image is not
re-compressed lossily). Writes are atomic (:func:`medsr.io.write_image`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from medsr.atomic import atomic_path
from medsr.errors import ConfigError, ImageWriteError, MedsrError, failure_reason, os_reason
from medsr.infer.api import consistency_maps, upscale_arrays, upscaled_image
from medsr.infer.settings import InferenceSettings
from medsr.intensity import for_model, restore
from medsr.io import read_image, write_image
from medsr.io.dicom import SeriesUIDMap
from medsr.io.find import Item, expand_inputs
from medsr.io.image import MedicalImage
from medsr.models import model_name

OUTPUT_FORMATS = {"png": ".png", "tiff": ".tiff", "tif": ".tiff", "dcm": ".dcm", "dicom": ".dcm"}
_DEFAULT_SUFFIX = {"png": ".png", "tiff": ".tiff", "dicom": ".dcm", "jpeg": ".png"}
_KEEP_SUFFIX = {"png": (".png",), "tiff": (".tif", ".tiff"), "dicom": (".dcm", ".dicom", "")}


Source = Item
"""An input file and its name relative to the folder it was found in (:class:`medsr.io.find.Item`)."""


@dataclass
class Outcome:
    """What happened to one input: ``target`` and sizes when written, ``error`` when skipped."""

    source: Path
    target: Path | None = None
    in_size: tuple[int, int] | None = None  # (width, height)
    out_size: tuple[int, int] | None = None
    frames: int = 1
    seconds: float = 0.0
    error: str | None = None
    consistency_rms: float | None = None  # RMS of the consistency map (units of the input's noise)


def collect_sources(inputs: Sequence[str | Path]) -> tuple[list[Item], list[tuple[str, str]]]:
    """The one input expander, :func:`medsr.io.find.expand_inputs` (files, folders, globs), by its older name."""
    return expand_inputs(inputs)


def output_format(image_format: str, requested: str | None) -> str:
    """The format name for ``write_image``: the requested one, else the input's (JPEG becomes PNG)."""
    if requested:
        key = requested.lower().lstrip(".")
        if key not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown output format {requested!r}; choose png, tiff or dcm")
        return {"dcm": "dicom", "tif": "tiff"}.get(key, key)
    return "png" if image_format == "jpeg" else image_format


def output_path(source: Source, outdir: Path, image_format: str, fmt: str) -> Path:
    """``outdir / relative path`` with the suffix of ``fmt`` (the input's own suffix kept when it fits)."""
    suffix = source.path.suffix.lower()
    if fmt == image_format and suffix in _KEEP_SUFFIX.get(fmt, ()):
        return outdir / source.relative
    return outdir / source.relative.with_suffix(_DEFAULT_SUFFIX[fmt])


def series_key(image: MedicalImage, source: Source) -> str:
    """Which input series a DICOM belongs to: its SeriesInstanceUID; slices lacking one are grouped by their
    folder (one derived series per folder), as a reader would take a folder of slices for one series."""
    uid = str(image.dataset.get("SeriesInstanceUID", "") or "") if image.dataset is not None else ""
    return uid or f"folder:{source.path.parent.resolve()}"


def upscale_files(
    sources: Sequence[Source],
    outdir: Path,
    model: nn.Module,
    *,
    fmt: str | None = None,
    settings: InferenceSettings | None = None,
    consistency: bool = False,
    series: SeriesUIDMap | None = None,
) -> Iterator[Outcome]:
    """Read, upscale and write each source; yield one :class:`Outcome` per source, in order.

    With ``consistency`` each output's consistency map (:func:`medsr.infer.api.consistency_maps`, kernel
    ``settings.consistency_kernel``) is written beside it as ``NAME.consistency.tiff`` (float32, the input's
    grid, frames first for multi-frame inputs), and its RMS goes into the outcome.

    ``settings.batch_size`` files are read together and their same-size frames run as one batch. A file that
    cannot be read, upscaled or written gives an Outcome with ``error`` set; nothing partial is left behind.
    ``series`` maps source series to derived ones (default: fresh UIDs; a salted map gives repeatable UIDs).
    """
    settings = settings or InferenceSettings()
    batch_size = settings.batch_size
    if fmt is not None:
        output_format("png", fmt)  # an unknown format fails before any work
    series = series if series is not None else SeriesUIDMap()
    name = model_name(model)
    sy, sx = model.scale
    written: dict[Path, Path] = {}
    outdir = Path(outdir)
    for first in range(0, len(sources), max(1, batch_size)):
        chunk = sources[first : first + max(1, batch_size)]
        images: list[tuple[Source, MedicalImage, Path, str]] = []
        for source in chunk:
            try:  # read and choose the output before any inference, so a doomed file costs nothing
                image = for_model(read_image(source.path), getattr(model, "meta", None))
                out_fmt = output_format(image.format, fmt)
                target = output_path(source, outdir, image.format, out_fmt)
                if target.resolve() == source.path.resolve():
                    raise ConfigError("the output would overwrite the input; choose another -o folder")
                if target in written:
                    raise ConfigError(f"output {target} would overwrite the result of {written[target]}")
            except MedsrError as exc:
                yield Outcome(source.path, error=getattr(exc, "reason", None) or str(exc))
                continue
            written[target] = source.path
            images.append((source, image, target, out_fmt))
        if not images:
            continue
        frames = [f for _, im, _, _ in images for f in (list(im.pixels) if im.is_multiframe else [im.pixels])]
        started = time.perf_counter()
        try:
            results = upscale_arrays(model, frames, settings)
        except MedsrError:
            raise  # a bad model or setting: every file would fail the same way
        except (RuntimeError, ValueError, MemoryError) as exc:
            for source, *_ in images:
                yield Outcome(source.path, error=f"inference failed ({str(exc).splitlines()[0][:200]})")
            continue
        seconds = time.perf_counter() - started
        total_pixels = sum(f.shape[0] * f.shape[1] for f in frames)
        position = 0
        for source, image, target, out_fmt in images:
            count = image.pixels.shape[0] if image.is_multiframe else 1
            done = results[position : position + count]
            position += count
            result = restore(upscaled_image(image, np.stack(done) if image.is_multiframe else done[0], model))
            outcome = Outcome(
                source.path,
                in_size=(image.width, image.height),
                out_size=(result.width, result.height),
                frames=count,
                seconds=seconds * count * image.width * image.height / max(total_pixels, 1),
            )
            options = {}
            if out_fmt == "dicom" and image.dataset is not None:
                options = {"model_name": name, "scale": (sy, sx), "series_uid": series(series_key(image, source)),
                           "sop_instance_uid": series.instance_uid(str(image.dataset.get("SOPInstanceUID", "")))}
            try:
                write_image(result, target, format=out_fmt, **options)
                if consistency:
                    levels = 255.0 if image.bit_depth == 8 else 65535.0
                    inputs = list(image.pixels) if image.is_multiframe else [image.pixels]
                    maps = np.stack(consistency_maps(done, inputs, (sy, sx), settings.consistency_kernel, levels))
                    outcome.consistency_rms = float(np.sqrt(np.mean(maps.astype(np.float64) ** 2)))
                    write_consistency_map(maps if image.is_multiframe else maps[0], consistency_map_path(target))
            except MedsrError as exc:
                outcome.error = failure_reason(exc)
                yield outcome
                continue
            outcome.target = target
            yield outcome


def consistency_map_path(target: Path) -> Path:
    """Where the consistency map of the output ``target`` goes: ``NAME.consistency.tiff`` beside it."""
    return target.with_name(target.stem + ".consistency.tiff")


def write_consistency_map(values: np.ndarray, path: Path) -> None:
    """Write a float32 consistency map as a TIFF, atomically (channels last, one page per frame)."""
    import tifffile

    try:
        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, np.asarray(values, dtype=np.float32), compression="zlib")
    except OSError as exc:
        raise ImageWriteError(path, f"cannot write the consistency map: {os_reason(exc)}") from None
