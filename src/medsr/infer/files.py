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
from typing import Any

import numpy as np
from torch import nn

from medsr.atomic import atomic_path
from medsr.errors import ConfigError, FileError, ImageWriteError, MedsrError, failure_reason, os_reason
from medsr.infer.api import consistency_maps, upscale_arrays, upscaled_image
from medsr.infer.settings import InferenceSettings
from medsr.intensity import clip_to_source, for_model, restore
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
    note: str | None = None  # what the writer changed or warned about (e.g. a copied DICOM value truncated)


def writer_note(notes: Sequence[str], limit: int = 3) -> str | None:
    """One line from a writer's notes (:func:`medsr.io.write_image`): the first few, and how many more."""
    if not notes:
        return None
    more = f"; and {len(notes) - limit} more" if len(notes) > limit else ""
    return "; ".join(notes[:limit]) + more


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
    batch_size = max(1, settings.batch_size)
    if fmt is not None:
        output_format("png", fmt)  # an unknown format fails before any work
    series = series if series is not None else SeriesUIDMap()
    written: dict[Path, Path] = {}
    outdir = Path(outdir)
    for first in range(0, len(sources), batch_size):
        chunk = sources[first : first + batch_size]
        outcomes: dict[int, Outcome] = {}
        images: list[_Job] = []
        for index, source in enumerate(chunk):
            try:  # read and choose the output before any inference, so a doomed file costs nothing
                original = read_image(source.path)
                image = for_model(original, getattr(model, "meta", None))
                out_fmt = output_format(image.format, fmt)
                target = output_path(source, outdir, image.format, out_fmt)
                if target.resolve() == source.path.resolve():
                    raise ConfigError("the output would overwrite the input; choose another -o folder")
                if target in written:
                    raise ConfigError(f"output {target} would overwrite the result of {written[target]}")
                if image.is_multiframe and out_fmt not in ("tiff", "dicom"):
                    raise ImageWriteError(target, f"{out_fmt} holds one frame, this has {len(image.pixels)}; "
                                                  "use -f tiff or dcm")
            except MedsrError as exc:
                outcomes[index] = Outcome(source.path, error=failure_reason(exc))
                continue
            written[target] = source.path
            images.append(_Job(index, source, original, image, target, out_fmt))
        for job in [job for job in images if job.image.is_multiframe]:  # alone, frames streamed to the writer
            outcomes[job.index] = _run_streamed(job, model, settings, series, consistency)
        single = [job for job in images if not job.image.is_multiframe]
        outcomes.update(_run_batch(single, model, settings, series, consistency))
        for index in sorted(outcomes):
            yield outcomes[index]


@dataclass
class _Job:
    """One readable input on its way through the model: its place in the batch, the image as read
    (``original``) and as the model sees it (``image``: on a CT model's fixed range), and where it goes."""

    index: int
    source: Source
    original: MedicalImage
    image: MedicalImage
    target: Path
    fmt: str


def _dicom_options(job: _Job, model: nn.Module, series: SeriesUIDMap) -> dict[str, Any]:
    if job.fmt != "dicom" or job.image.dataset is None:
        return {}
    dataset = job.image.dataset
    return {"model_name": model_name(model), "scale": tuple(model.scale),
            "series_uid": series(series_key(job.image, job.source)),
            "sop_instance_uid": series.instance_uid(str(dataset.get("SOPInstanceUID", "")))}


def _finish(job: _Job, upscaled: np.ndarray, model: nn.Module, settings: InferenceSettings) -> MedicalImage:
    """Model output (on the model's range) -> the result on the file's own range, clipped there when asked."""
    result = restore(upscaled_image(job.image, upscaled, model, settings))
    if settings.clip_to_input and job.image is not job.original:  # a CT model's range: clip again in HU
        result = clip_to_source(result, job.original)
    return result


def _run_batch(
    jobs: list[_Job], model: nn.Module, settings: InferenceSettings, series: SeriesUIDMap, consistency: bool
) -> dict[int, Outcome]:
    """Single-frame jobs: their images run as one batch where same-size, then each is written."""
    if not jobs:
        return {}
    frames = [job.image.pixels for job in jobs]
    started = time.perf_counter()
    try:
        results = upscale_arrays(model, frames, settings)
    except MedsrError:
        raise  # a bad model or setting: every file would fail the same way
    except (RuntimeError, ValueError, MemoryError) as exc:
        reason = f"inference failed ({str(exc).splitlines()[0][:200]})"
        return {job.index: Outcome(job.source.path, error=reason) for job in jobs}
    seconds = time.perf_counter() - started
    total_pixels = sum(f.shape[0] * f.shape[1] for f in frames)
    sy, sx = model.scale
    outcomes = {}
    for job, done in zip(jobs, results, strict=True):
        image = job.image
        result = _finish(job, done, model, settings)
        outcome = outcomes[job.index] = Outcome(
            job.source.path, in_size=(image.width, image.height), out_size=(result.width, result.height),
            seconds=seconds * image.width * image.height / max(total_pixels, 1))
        try:
            outcome.note = writer_note(write_image(result, job.target, format=job.fmt,
                                                   **_dicom_options(job, model, series)))
            if consistency:
                levels = 255.0 if image.bit_depth == 8 else 65535.0
                maps = consistency_maps([done], [image.pixels], (sy, sx), settings.consistency_kernel, levels)
                outcome.consistency_rms = float(np.sqrt(np.mean(maps[0].astype(np.float64) ** 2)))
                write_consistency_map(maps[0], consistency_map_path(job.target))
        except MedsrError as exc:
            outcome.error = failure_reason(exc)
            continue
        outcome.target = job.target
    return outcomes


def _run_streamed(
    job: _Job, model: nn.Module, settings: InferenceSettings, series: SeriesUIDMap, consistency: bool
) -> Outcome:
    """A multi-frame job: ``settings.batch_size`` frames at a time through the model, each chunk restored,
    clipped and handed to the writer (``write_image(frames=...)``), which converts it to stored values and
    writes it out (a TIFF keeps the stored integers until the end): the output of a long cine is never held
    whole as floats."""
    image, sy, sx = job.image, *model.scale
    count = len(image.pixels)
    step = max(1, settings.batch_size)
    out_shape = (count, image.height * sy, image.width * sx, image.channels)
    template = restore(upscaled_image(image.with_pixels(image.pixels[:1]), np.broadcast_to(
        np.float32(0), (1, *out_shape[1:])), model, settings))  # the result's range and header, without its pixels
    template = template.with_pixels(np.broadcast_to(np.float32(0), out_shape))
    outcome = Outcome(job.source.path, in_size=(image.width, image.height), out_size=(out_shape[2], out_shape[1]),
                      frames=count)
    maps: list[np.ndarray] = []
    failed: list[str] = []
    started = time.perf_counter()

    def chunks() -> Iterator[np.ndarray]:
        for start in range(0, count, step):
            lr = list(image.pixels[start : start + step])
            try:
                done = upscale_arrays(model, lr, settings)
            except MedsrError:
                raise
            except (RuntimeError, ValueError, MemoryError) as exc:
                failed.append(f"inference failed ({str(exc).splitlines()[0][:200]})")
                raise _Abandon from exc
            if consistency:
                levels = 255.0 if image.bit_depth == 8 else 65535.0
                maps.extend(consistency_maps(done, lr, (sy, sx), settings.consistency_kernel, levels))
            part = restore(upscaled_image(image.with_pixels(image.pixels[start : start + step]), np.stack(done),
                                          model))
            if settings.clip_to_input and image is not job.original:
                original = job.original.with_pixels(job.original.pixels[start : start + step])
                part = clip_to_source(part, original)
            yield part.pixels

    try:
        outcome.note = writer_note(write_image(template, job.target, format=job.fmt, frames=chunks(),
                                               **_dicom_options(job, model, series)))
        if consistency:
            stacked = np.stack(maps)
            outcome.consistency_rms = float(np.sqrt(np.mean(stacked.astype(np.float64) ** 2)))
            write_consistency_map(stacked, consistency_map_path(job.target))
    except FileError as exc:
        outcome.error = failed[0] if failed else failure_reason(exc)
        return outcome
    except _Abandon:
        outcome.error = failed[0]
        return outcome
    outcome.seconds = time.perf_counter() - started
    outcome.target = job.target
    return outcome


class _Abandon(Exception):
    """Inference failed inside a streamed write: the writer stops, its temporary file is removed."""


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
