"""Series mode of the web app: the DICOM slices of one series read as one stack, in the order a reader scrolls
them, super-resolved slice by slice as Enhance does, and the derived series written as one series.

Slices are grouped by SeriesInstanceUID; slices without one are grouped by the folder they were uploaded from
(one series per folder), as ``medsr upscale`` groups them (:func:`medsr.infer.files.series_key`). Within a
series, slices are ordered by :func:`medsr.io.series.slice_order`. The derived series is the writer of
``medsr upscale`` (:func:`medsr.io.write_image`) run once per slice with one new SeriesInstanceUID, zipped only
when the reader asks for it.
"""

from __future__ import annotations

import io
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsr.app import logic
from medsr.app.batch import series_folder, unique_names, upload_folder
from medsr.errors import MedsrError
from medsr.infer import InferenceSettings
from medsr.io import write_image
from medsr.io.dicom import SeriesUIDMap
from medsr.io.image import MedicalImage
from medsr.io.series import instance_number, series_uid, slice_order, slice_position

MAX_SERIES_PIXELS = 4096 * 4096
"""A series result may hold at most this many output pixels in all (slices x rows x columns), as many as the
largest single-image result (a 1024 x 1024 input at x4): 64 CT slices of 512 x 512 at x1, or 4 of 512 x 512
at x4. Each panel's values go to the browser once; larger series are for ``medsr upscale`` or Batch."""


@dataclass
class Slice:
    """One uploaded slice: its safe name (with the folder it came from) and the image read from it."""

    name: str
    image: MedicalImage

    @property
    def label(self) -> str:
        """How the viewer names the slice: its file, InstanceNumber and position along the normal."""
        name = self.name.rsplit("/", 1)[-1]
        parts = [name if len(name) <= 28 else f"{name[:8]}...{name[-16:]}"]  # UID-named files: start and end
        number, where = instance_number(self.image.dataset), slice_position(self.image.dataset)
        if number is not None:
            parts.append(f"#{number}")
        if where is not None:
            parts.append(f"{where:.1f} mm")
        return " · ".join(parts)


@dataclass
class Series:
    """The slices of one series in reading order; ``by_folder``: grouped by folder (no SeriesInstanceUID)."""

    key: str
    slices: list[Slice]
    order: str
    by_folder: bool

    @property
    def first(self) -> MedicalImage:
        return self.slices[0].image

    @property
    def label(self) -> str:
        """The series' line in the picker: modality, size, slices, description and where it was grouped."""
        ds = self.first.dataset
        description = str(ds.get("SeriesDescription", "") or "").strip() if ds is not None else ""
        where = (f"folder {self.key.removeprefix('folder:') or '(the upload)'}, no SeriesInstanceUID"
                 if self.by_folder else f"series ...{self.key[-12:]}")
        return (f"{self.first.modality or 'OT'} · {len(self.slices)} slice(s) of {self.first.width} x "
                f"{self.first.height}" + (f" · {description}" if description else "") + f" ({where})")

    def stack(self) -> np.ndarray:
        """The slices' working pixels as one ``(F, H, W, C)`` array, in reading order."""
        return np.stack([s.image.pixels for s in self.slices])


@dataclass
class SeriesUpload:
    """Every series found in an upload, the files left out (``(name, reason)``) and notes for the page."""

    series: list[Series]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_series(files: Sequence[tuple[str, bytes]]) -> SeriesUpload:
    """Read uploaded ``(name, bytes)`` files (names may carry the folder they came from) into series.

    A file that is unreadable, not a DICOM, multi-frame (its frames scroll in Upload a file), larger than the
    app's side limit, or of another size than the rest of its series is left out with its reason.
    """
    names = unique_names([name for name, _ in files])
    groups: dict[str, list[Slice]] = {}
    skipped: list[tuple[str, str]] = []
    no_uid: list[str] = []
    for name, (_, data) in zip(names, files, strict=True):
        try:
            image = logic.read_upload(name, data)
        except MedsrError as exc:
            skipped.append((name, getattr(exc, "reason", str(exc))))
            continue
        reason = _not_a_slice(image)
        if reason:
            skipped.append((name, reason))
            continue
        uid = series_uid(image.dataset)
        if not uid:
            no_uid.append(name)
        groups.setdefault(uid or f"folder:{upload_folder(name)}", []).append(Slice(name, image))
    found = []
    for key, slices in groups.items():
        shapes = [s.image.pixels.shape for s in slices]
        common = max(set(shapes), key=shapes.count)
        for s in slices:
            if s.image.pixels.shape != common:
                skipped.append((s.name, f"{s.image.width} x {s.image.height} px, but the rest of its series is "
                                        f"{common[1]} x {common[0]}"))
        kept = [s for s in slices if s.image.pixels.shape == common]
        order, how = slice_order([s.image.dataset for s in kept], [s.name for s in kept])
        found.append(Series(key, [kept[i] for i in order], how, key.startswith("folder:")))
    notes = []
    if no_uid:
        folders = sorted({upload_folder(n) or "the upload" for n in no_uid})
        notes.append(f"{len(no_uid)} slice(s) have no SeriesInstanceUID: they are grouped by folder "
                     f"({', '.join(folders[:5])}{', ...' if len(folders) > 5 else ''}), one series per folder, "
                     "as `medsr upscale` groups them.")
    return SeriesUpload(found, skipped, notes)


def _not_a_slice(image: MedicalImage) -> str | None:
    if image.format != "dicom":
        return f"a {image.format.upper()} file, not a DICOM slice (Batch takes PNG, JPEG and TIFF files)"
    if image.is_multiframe:
        return f"a multi-frame file ({len(image.pixels)} frames): open it in Upload a file, where its frames scroll"
    if max(image.height, image.width) > logic.DEMO_MAX_SIDE:
        return (f"{image.width} x {image.height} px, over the {logic.DEMO_MAX_SIDE} px per side this page works "
                "on (`medsr upscale` does whole series)")
    return logic.too_small(image.height, image.width)


def too_large(series: Series, scale: tuple[int, int], limit: int = MAX_SERIES_PIXELS) -> str | None:
    """Why ``series`` upscaled by ``scale`` is too large for the page (:data:`MAX_SERIES_PIXELS`), else None."""
    return too_many_pixels(len(series.slices), series.first.height, series.first.width, scale, "slices",
                           "use Batch or `medsr upscale` for the whole series, or upload fewer slices", limit)


def too_many_pixels(count: int, height: int, width: int, scale: tuple[int, int], what: str, advice: str,
                    limit: int = MAX_SERIES_PIXELS) -> str | None:
    """Why ``count`` images (slices, frames) of ``height`` x ``width`` upscaled by ``scale`` are more output
    pixels than a page shows (``limit``), with ``advice`` on what to do instead; None when they fit."""
    pixels = count * height * scale[0] * width * scale[1]
    if pixels <= limit:
        return None
    return (f"{count} {what} of {width * scale[1]} x {height * scale[0]} would be {pixels / 1e6:.1f} million "
            f"output pixels; this page shows up to {limit / 1e6:.1f} million ({advice})")


@dataclass
class SeriesOutcome:
    """One run over a series: input, bicubic and model stacks ``(F, H, W, C)`` in [0, 1] in reading order, the
    results ready to write (one :class:`MedicalImage` per slice), and the derived series' UID."""

    lr: np.ndarray
    bicubic: np.ndarray
    sr: np.ndarray
    results: list[MedicalImage]
    names: list[str]
    model_name: str
    scale: tuple[int, int]
    seconds: float
    device: str
    series_uid: str
    output: str = ""  # how the settings changed the model's output (InferenceSettings.output_note)

    @property
    def shown_name(self) -> str:
        """The model as the page names its result (:func:`medsr.app.logic.shown_name`)."""
        return logic.shown_name(self.model_name, self.output)


def run_series(series: Series, model: Any, *, device: str = "auto",
               progress: Callable[[int, int, int, int], None] | None = None,
               settings: InferenceSettings = logic.SETTINGS) -> SeriesOutcome:
    """Enhance every slice of ``series`` with ``model`` (:func:`medsr.app.logic.run_enhance`: ``settings``, by
    default ``medsr upscale``'s, and its quantisation); ``progress(slice, slices, tile, tiles)`` as tiles finish."""
    outcomes = []
    started = time.perf_counter()
    for index, s in enumerate(series.slices):
        def tiles(done: int, total: int, index: int = index) -> None:
            if progress is not None:
                progress(index, len(series.slices), done, total)

        outcomes.append(logic.run_enhance(s.image, model, device=device, progress=tiles, settings=settings))
    seconds = time.perf_counter() - started
    first = outcomes[0]
    return SeriesOutcome(
        lr=np.stack([o.lr for o in outcomes]), bicubic=np.stack([o.bicubic for o in outcomes]),
        sr=np.stack([o.sr for o in outcomes]), results=[o.result for o in outcomes],
        names=[s.name for s in series.slices], model_name=first.model_name, scale=first.scale, seconds=seconds,
        device=first.device, series_uid=SeriesUIDMap()(series.key), output=first.output,
    )


def derived_series_zip(outcome: SeriesOutcome) -> bytes:
    """The derived series as a zip: one derived DICOM per slice, all with ``outcome.series_uid``, written by
    :func:`medsr.io.write_image` as ``medsr upscale`` writes them, in one folder named for the series."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="medsr-app-series-") as folder, \
            zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index, (name, result) in enumerate(zip(outcome.names, outcome.results, strict=True)):
            path = Path(folder) / f"{index:04d}.dcm"
            write_image(result, path, format="dicom", model_name=outcome.model_name, scale=outcome.scale,
                        series_uid=outcome.series_uid)
            stem = Path(name.rsplit("/", 1)[-1]).stem
            archive.write(path, f"{series_folder(path) or 'series'}/{index + 1:04d}_{stem}_medsr.dcm")
    return buffer.getvalue()
