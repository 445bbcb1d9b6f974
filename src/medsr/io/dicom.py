"""DICOM in, DICOM out: read pixels with their modality meaning, write a derived instance a PACS accepts.

Reading maps the stored range (from BitsStored and PixelRepresentation) linearly to [0, 1]; ``value_range`` is
that range after RescaleSlope/RescaleIntercept (HU for CT), for any finite non-zero slope: a negative slope is
read so that larger working values are larger modality values, as with a positive one. MONOCHROME1 is inverted
into the working image by reversing ``value_range``, so the same linear formula restores it on write. Colour
(RGB, YBR, palette) becomes RGB. A Modality LUT Sequence (non-linear) is not applied.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import math
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, convert_color_space, get_decoder
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    generate_uid,
)
from pydicom.valuerep import VALIDATORS

from medsr import __version__
from medsr.atomic import atomic_path
from medsr.errors import ImageReadError, ImageWriteError, MedsrError
from medsr.io.dicom_grid import move_to_grid
from medsr.io.image import MedicalImage
from medsr.io.quiet import collect_warnings
from medsr.io.raster import check_pixel_limit, to_integers

_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009, 0x7FE00001, 0x7FE00002, 0xFFFCFFFC}
# Attributes that describe the source's pixels and no longer hold for new ones.
_STALE = (
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "IconImageSequence",
)
# A palette maps stored values to colours: it still holds for a greyscale result in the source's encoding (a
# supplemental palette), not for colour written as RGB (medsr never writes palette colour).
_PALETTE = tuple(
    f"{kind}{colour}PaletteColorLookupTable{part}"
    for colour in ("Red", "Green", "Blue", "Alpha")
    for kind, part in (("", "Descriptor"), ("", "Data"), ("Segmented", "Data"))
) + ("PaletteColorLookupTableUID",)
_GREY_ONLY = ("RescaleSlope", "RescaleIntercept", "RescaleType", "WindowCenter", "WindowWidth")
# Enhanced MR attributes "required if Image Type value 1 is ORIGINAL or MIXED, may be present otherwise" (PS3.3
# C.8.13.4, C.7.6.18.3); dciodvfy (dicom3tools 2022) counts them as errors in a DERIVED image, so they go.
_ORIGINAL_ONLY = (
    "PulseSequenceName", "MRAcquisitionType", "EchoPulseSequence", "MultipleSpinEcho", "MultiPlanarExcitation",
    "PhaseContrast", "TimeOfFlightContrast", "SteadyStatePulseSequence", "EchoPlanarPulseSequence",
    "SaturationRecovery", "SpectrallySelectedSuppression", "OversamplingPhase", "GeometryOfKSpaceTraversal",
    "RectilinearPhaseEncodeReordering", "SegmentedKSpaceTraversal", "CoverageOfKSpace",
    "NumberOfKSpaceTrajectories", "BulkMotionCompensationTechnique", "BulkMotionSignalSource",
)


def stored_range(bits_stored: int, pixel_representation: int) -> tuple[int, int]:
    """Smallest and largest stored value for BitsStored and PixelRepresentation (0 unsigned, 1 signed)."""
    if pixel_representation:
        return -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    return 0, 2**bits_stored - 1


class InvalidRescaleError(ValueError):
    """RescaleSlope or RescaleIntercept is not a finite number (or the slope is zero)."""


def rescale(ds: Dataset) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) from the top level or an enhanced file's shared functional groups.

    Absent or empty values mean 1 and 0. Raises :class:`InvalidRescaleError` for a value that is not a finite
    number, or a zero slope: either would turn every pixel into NaN or one value.
    """
    item = ds
    if "RescaleSlope" not in ds and "SharedFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        item = shared.get("PixelValueTransformationSequence", [ds])[0]
    return _rescale_value(item, "RescaleSlope", 1.0), _rescale_value(item, "RescaleIntercept", 0.0)


def _rescale_value(item: Dataset, keyword: str, default: float) -> float:
    value = item.get(keyword)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if not math.isfinite(number) or (keyword == "RescaleSlope" and number == 0):
        text = str(value).strip()
        raise InvalidRescaleError(f"invalid {keyword} {text[:40]!r}")
    return number


def _truncation(path: Path, ds: Dataset) -> str | None:
    """Why ``ds`` looks cut short (the file ends inside an element or its header), or None.

    pydicom reads a truncated file without complaint: the last element just holds fewer bytes than its length
    says, a few bytes of a header are ignored, or (inside an undefined-length element) nothing is kept at all.
    """
    size = path.stat().st_size
    if not len(ds):
        return f"truncated DICOM file: its data set cannot be read to the end ({size:,} bytes)"
    last = max(ds.keys())
    raw = ds.get_item(last)
    length, value, start = (getattr(raw, name, None) for name in ("length", "value", "value_tell"))
    if not isinstance(length, int) or length == 0xFFFFFFFF or not isinstance(start, int):
        return None
    short = isinstance(value, bytes) and len(value) < length
    if int(last) == 0x7FE00010 and short:
        return f"truncated DICOM file: pixel data holds {len(value):,} of its {length:,} bytes"
    if "PixelData" in ds:  # complete pixel data: what follows it (padding) does not matter
        return None
    if short:
        return f"truncated DICOM file: element {last} holds {len(value):,} of its {length:,} bytes"
    if start + length < size < start + length + 8:  # a partial element header after the last element
        return f"truncated DICOM file: it ends inside the header of the element after {last}"
    return None


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    value = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if value is None and "SharedFunctionalGroupsSequence" in ds:
        measures = ds.SharedFunctionalGroupsSequence[0].get("PixelMeasuresSequence")
        value = measures[0].get("PixelSpacing") if measures else None
    if not value or len(value) != 2 or min(float(v) for v in value) <= 0:
        return None
    return float(value[0]), float(value[1])


def read_dicom(path: Path, max_pixels: int) -> MedicalImage:
    """Read a DICOM file; the dataset (less its pixel data) is kept in ``.dataset`` for the writer."""
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # InvalidDicomError, EOFError, struct.error, ...: the header cannot be parsed
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(path, f"corrupt or truncated DICOM header ({detail})") from exc
    truncated = _truncation(path, ds)
    if truncated:
        raise ImageReadError(path, truncated)
    if "PixelData" not in ds:
        sop_class = getattr(ds.get("SOPClassUID"), "name", "unknown")
        hint = "; it describes an image, so it may be a truncated DICOM file" if "Rows" in ds else ""
        raise ImageReadError(path, f"DICOM file has no pixel data (SOP class: {sop_class}){hint}")
    frames = int(ds.get("NumberOfFrames") or 1)
    check_pixel_limit(path, int(ds.Rows) * int(ds.Columns) * frames, max_pixels)
    tsyntax = ds.file_meta.TransferSyntaxUID
    try:
        arr, meta = get_decoder(tsyntax).as_array(ds, as_rgb=True)
    except Exception as exc:  # missing plugin, corrupt or truncated codestream
        raise ImageReadError(path, f"cannot decode {tsyntax.name} pixel data: {exc}") from exc
    photometric = str(ds.PhotometricInterpretation)
    decoded_as = str(meta["photometric_interpretation"])
    slope, intercept = 1.0, 0.0  # colour has no rescale
    if decoded_as == "PALETTE COLOR":  # LUT entries are display colours: 8 bits are enough to write them
        arr = apply_color_lut(arr, ds)
        bits, smin, smax = 8, 0, int(np.iinfo(arr.dtype).max)
    elif int(ds.SamplesPerPixel) == 3:
        if decoded_as.startswith("YBR"):  # decoders usually return RGB already
            arr = convert_color_space(arr, decoded_as, "RGB", per_frame=True)
        bits = int(ds.BitsStored)
        smin, smax = 0, 2**bits - 1
    else:
        bits = int(ds.BitsStored)
        smin, smax = stored_range(bits, int(ds.PixelRepresentation))
        try:
            slope, intercept = rescale(ds)
        except InvalidRescaleError as exc:
            raise ImageReadError(path, str(exc)) from None
        arr = arr[..., None]
    pixels = arr.astype(np.float32)  # then in place: a long cine holds one float copy, not three
    del arr
    np.subtract(pixels, np.float32(smin), out=pixels)
    np.divide(pixels, np.float32(smax - smin), out=pixels)
    np.clip(pixels, 0.0, 1.0, out=pixels)
    low, high = smin * slope + intercept, smax * slope + intercept
    # working image: larger = brighter = larger modality value (MONOCHROME2). A negative slope makes larger stored
    # values smaller modality values; MONOCHROME1 shows larger values darker. Each is one inversion.
    if (slope < 0) != (photometric == "MONOCHROME1"):
        np.subtract(np.float32(1.0), pixels, out=pixels)
        low, high = high, low
    del ds.PixelData  # the working pixels replace it; keeps memory to one copy
    return MedicalImage(
        pixels=pixels.astype(np.float32, copy=False),
        format="dicom",
        bit_depth=bits,
        value_range=(float(low), float(high)),
        photometric=photometric,
        path=str(path),
        modality=ds.get("Modality") or None,
        pixel_spacing=_spacing(ds),
        dataset=ds,
        extra={
            "rescale": (slope, intercept),
            "stored_range": (smin, smax),
            "bits_allocated": int(ds.BitsAllocated),
            "bits_stored": int(ds.BitsStored),
            "pixel_representation": int(ds.PixelRepresentation),
            "transfer_syntax": str(tsyntax),
            "number_of_frames": frames,
        },
    )


class SeriesUIDMap:
    """One new SeriesInstanceUID per source series: all instances of an input series go to one new series.

    With ``salt`` (e.g. the model's name) the new UIDs are derived from the source UIDs instead of drawn at
    random, so processing the same instance again gives the same Series and SOP Instance UIDs: the DICOM node
    relies on that to make a resend after a crash harmless (the PACS sees the same instance twice, not two).
    """

    def __init__(self, salt: str | None = None) -> None:
        self._uids: dict[str, str] = {}
        self.salt = salt

    def __call__(self, source_series_uid: str) -> str:
        if source_series_uid not in self._uids:
            self._uids[source_series_uid] = self._new(source_series_uid, "series")
        return self._uids[source_series_uid]

    def instance_uid(self, source_sop_uid: str) -> str | None:
        """The derived SOP Instance UID for a source instance; None (a fresh UID at write time) without a salt."""
        return self._new(source_sop_uid, "instance") if self.salt is not None and source_sop_uid else None

    def _new(self, source_uid: str, kind: str) -> str:
        if self.salt is None:
            return generate_uid()
        return generate_uid(entropy_srcs=["medsr", kind, self.salt, source_uid])


def _stored_pixels(image: MedicalImage, src: Dataset) -> tuple[np.ndarray, str, int]:
    """Working pixels -> (stored array, PhotometricInterpretation, BitsStored) in the source's encoding."""
    pixels = image.pixels
    if image.channels == 3:
        return to_integers(pixels, 8), "RGB", 8
    photometric = str(src.PhotometricInterpretation)
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):  # grey result from a colour source
        return to_integers(pixels[..., 0], 8), "MONOCHROME2", 8
    bits_allocated, bits_stored = int(src.BitsAllocated), int(src.BitsStored)
    signed = int(src.PixelRepresentation)
    if bits_allocated not in (8, 16):
        raise ValueError(f"the source's BitsAllocated {bits_allocated} cannot be written (medsr writes 8 or 16)")
    slope, intercept = rescale(src)
    low, high = image.value_range
    values = low + np.nan_to_num(pixels[..., 0], nan=0.0) * np.float32(high - low)  # modality values
    smin, smax = stored_range(bits_stored, signed)
    stored = np.clip(np.rint((values - np.float32(intercept)) / np.float32(slope)), smin, smax)
    return stored.astype(f"{'i' if signed else 'u'}{bits_allocated // 8}"), photometric, bits_stored


def _copy_header(src: Dataset) -> Dataset:
    """Deep copy of every element except the pixel data (which may be large)."""
    ds = Dataset()
    for tag in src.keys():
        if int(tag) not in _PIXEL_TAGS:
            ds.add(copy.deepcopy(src[tag]))
    return ds


def _format_scale(sy: float, sx: float) -> str:
    fmt = "{:g}".format
    return f"x{fmt(sy)}" if sy == sx else f"x{fmt(sy)} (rows) x{fmt(sx)} (columns)"


def write_derived_dicom(
    image: MedicalImage,
    path: str | os.PathLike[str],
    *,
    source: Dataset | str | os.PathLike[str] | None = None,
    scale: int | float | tuple[float, float] | None = None,
    model_name: str = "",
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
    frames: Iterable[np.ndarray] | None = None,
) -> list[str]:
    """Write ``image`` as a derived DICOM instance of ``source`` (default: ``image.dataset``); return notes on
    what had to be changed to write it (:func:`clean_values`) and pydicom's warnings while writing, never
    printed.

    Pixels are mapped back to the source's stored range and encoding (BitsAllocated, BitsStored,
    PixelRepresentation, MONOCHROME1/2, rescale); colour images become 8-bit RGB (palette attributes go). ``scale``
    (rows, columns) defaults to the size ratio between ``image`` and the source; the header follows the new grid
    (:func:`medsr.io.dicom_grid.move_to_grid`: spacings, positions, regions, overlays). The instance gets a new
    SOPInstanceUID and SeriesInstanceUID (pass ``series_uid``, e.g. from :class:`SeriesUIDMap`, to keep a whole
    input series together; ``sop_instance_uid`` to fix the instance's), keeps the study and patient, is marked
    DERIVED\\SECONDARY (enhanced multi-frame IODs: DERIVED\\PRIMARY, frames too), and is written uncompressed
    (Explicit VR Little Endian) via a temporary file.
    ``model_name`` defaults to the model :func:`medsr.infer.upscale` records in ``image.extra``.

    ``frames``: the pixels of a multi-frame image in chunks of whole frames (``(n, H, W, C)`` float32 on
    ``image.value_range``), ``image.pixels`` then only giving the shape (e.g. ``np.broadcast_to``): each chunk
    is converted to stored values and written after the header as it comes, so a long cine's output is never
    held in memory, not even as integers. The pixel data is written by :func:`_append_pixel_data`, as pydicom
    would (Explicit VR Little Endian, OB/OW, even length), without pydicom's copy of it.
    """
    src = image.dataset if source is None else source
    if src is None:
        reason = f"DICOM output needs a DICOM source; this image came from a {image.format} file"
        raise ImageWriteError(path, reason)
    try:
        with collect_warnings():  # pydicom warns as values are set and written: never printed
            return _write_derived(image, path, src, scale, model_name, series_uid, sop_instance_uid, frames)
    except MedsrError:
        raise
    except Exception as exc:  # pydicom and numpy raise many kinds; the user gets one line
        raise ImageWriteError(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc


def _write_derived(
    image: MedicalImage,
    path: str | os.PathLike[str],
    src: Dataset | str | os.PathLike[str],
    scale: int | float | tuple[float, float] | None,
    model_name: str,
    series_uid: str | None,
    sop_instance_uid: str | None,
    frames: Iterable[np.ndarray] | None,
) -> list[str]:
    """:func:`write_derived_dicom` without its error handling: derive, clean, write header then pixels."""
    if not isinstance(src, Dataset):
        src = pydicom.dcmread(src, stop_before_pixels=True)
    chunks = _stored_chunks(image, src, frames)
    first, photometric, bits_stored = next(chunks)
    ds = _derive(image, src, scale, model_name, series_uid, (first, photometric, bits_stored))
    if sop_instance_uid:
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    notes = clean_values(ds)
    with atomic_path(path) as tmp:
        with collect_warnings() as caught:  # what pydicom still finds wrong as it writes (after clean_values)
            start = len(caught)
            ds.save_as(tmp, enforce_file_format=True)
            notes += [f"pydicom: {_short_warning(text)}" for text in dict.fromkeys(caught[start:])]
        with open(tmp, "ab") as handle:
            frame_bytes = first.nbytes // (len(first) if image.is_multiframe else 1)
            total = frame_bytes * (len(image.pixels) if image.is_multiframe else 1)
            _append_pixel_data(handle, itertools.chain([first], (arr for arr, *_ in chunks)), total)
    return notes


def _short_warning(text: str) -> str:
    """pydicom's warning without its link to the standard: "Invalid value for VR UI: '1.02.3'"."""
    return text.split(". Please see")[0].strip().rstrip(".")


_TEXT_VRS = ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UR")
_TRUNCATE = {"AE": 16, "CS": 16, "LO": 64, "LT": 10240, "SH": 16, "ST": 1024}


def clean_values(ds: Dataset) -> list[str]:
    """Make the text values a derived header copies from its source valid before they are written; return
    what was changed, one phrase each ("SeriesDescription truncated to 64 characters", "ImageType value
    'ABDOM/RAD' dropped (not a valid CS)").

    A value too long for its VR (SH, LO, CS, AE, ST, LT) is truncated when that makes it valid; any other invalid
    value (characters a CS may not hold, a malformed date) is emptied, or, in a multi-valued element, dropped
    with the values after it (so that no value moves to a position that means something else).
    An invalid UID is kept (changing it would break the references to it) and reported. Values pydicom has
    already parsed (numbers, person names) are not touched.
    """
    changes: list[str] = []
    for element in list(ds.iterall()):
        if element.VR == "UI" and isinstance(element.value, str) and not VALIDATORS["UI"]("UI", element.value)[0]:
            name = element.keyword or str(element.tag)
            changes.append(f"{name} {element.value[:64]!r} kept, though not a valid UI (other objects refer to it)")
            continue
        if element.VR not in _TEXT_VRS or element.value is None:
            continue
        multiple = isinstance(element.value, MultiValue)
        values = list(element.value) if multiple else [element.value]
        kept: list[str] = []
        changed = False
        for position, value in enumerate(values):
            if not isinstance(value, str) or VALIDATORS[element.VR](element.VR, value)[0]:
                kept.append(value)
                continue
            changed = True
            limit = _TRUNCATE.get(element.VR)
            name = element.keyword or str(element.tag)
            if limit and len(value) > limit and VALIDATORS[element.VR](element.VR, value[:limit])[0]:
                kept.append(value[:limit])
                changes.append(f"{name} truncated to {limit} characters")
            elif multiple:  # values after it would move to its position and take another meaning: they go too
                rest = len(values) - position - 1
                after = f" with the {rest} value(s) after it" if rest else ""
                changes.append(f"{name} value {value[:40]!r} dropped{after} (not a valid {element.VR})")
                break
            else:
                changes.append(f"{name} {value[:40]!r} emptied (not a valid {element.VR})")
        if changed:
            element.value = kept if multiple else (kept[0] if kept else "")
    return changes


def _derive(
    image: MedicalImage,
    src: Dataset,
    scale: int | float | tuple[float, float] | None,
    model_name: str,
    series_uid: str | None,
    encoded: tuple[np.ndarray, str, int],
) -> Dataset:
    """The derived header, without pixel data (:func:`_append_pixel_data` writes it after the header);
    ``encoded``: the stored pixels (of a multi-frame image: its first frames), PhotometricInterpretation and
    BitsStored, from :func:`_stored_pixels`."""
    upscaled = image.extra.get("medsr_upscale", {})  # set by medsr.infer.upscale
    model_name = model_name or upscaled.get("model", "")
    if scale is None:
        sy, sx = image.height / int(src.Rows), image.width / int(src.Columns)
    else:
        sy, sx = (float(scale), float(scale)) if np.isscalar(scale) else (float(scale[0]), float(scale[1]))
    arr, photometric, bits_stored = encoded
    ds = _copy_header(src)
    keeps_palette = photometric == str(src.PhotometricInterpretation)  # greyscale in the source's encoding
    enhanced = _is_enhanced(src)
    drop = _STALE + (() if keeps_palette else _PALETTE) + (_GREY_ONLY if photometric == "RGB" else ())
    for keyword in drop + (_ORIGINAL_ONLY if enhanced else ()):
        ds.pop(keyword, None)
    if not keeps_palette:
        _set_pixel_presentation(ds, "TRUE_COLOR" if photometric == "RGB" else "MONOCHROME")
    sop_class = _sop_class(src)
    if sop_class and not ds.get("SOPClassUID"):  # some files carry it only in their file meta
        ds.SOPClassUID = sop_class
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    # Rows, Columns, bits, frames, new SOPInstanceUID, from the first frame (the pixel data goes in unencoded,
    # straight from arr, when the file is written: _append_pixel_data)
    ds.set_pixel_data(arr[:1] if image.is_multiframe else arr, photometric, bits_stored)
    del ds.PixelData
    if image.is_multiframe:
        ds.NumberOfFrames = len(image.pixels)
    if "NumberOfFrames" in src and "NumberOfFrames" not in ds:  # a multi-frame IOD requires it, even for 1
        ds.NumberOfFrames = 1

    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.ImageType = _derived_type(src.get("ImageType"), enhanced)
    for item in _frame_type_items(ds):
        item.FrameType = _derived_type(item.FrameType, True)
    what = _format_scale(sy, sx)
    process = "super-resolution" if min(sy, sx) >= 1 else "resampling"
    model = f", model {model_name}" if model_name else ""
    output = f", {upscaled['output']}" if upscaled.get("output") else ""  # strength, consistency projection
    ds.DerivationDescription = f"medsr {__version__} {process}{model}, scale {what}{output}"
    description = " ".join(filter(None, [src.get("SeriesDescription", ""), f"medsr {what}"]))
    ds.SeriesDescription = description[-64:]  # LO holds 64 characters; keep the medsr part
    now = datetime.datetime.now()
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    if getattr(src, "file_meta", Dataset()).get("TransferSyntaxUID") in (JPEGBaseline8Bit, JPEGExtended12Bit):
        ds.LossyImageCompression = "01"  # once lossy, always lossy (PS3.3 C.7.6.1.1.5)
    if "SharedFunctionalGroupsSequence" not in src:  # enhanced IODs reference sources per frame instead
        ref = Dataset()
        ref.ReferencedSOPClassUID = sop_class
        ref.ReferencedSOPInstanceUID = str(src.get("SOPInstanceUID", "") or "") or str(
            getattr(src, "file_meta", Dataset()).get("MediaStorageSOPInstanceUID", "") or "")
        ds.SourceImageSequence = [ref]

    move_to_grid(ds, sy, sx)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for tag in [tag for tag in ds.keys() if int(tag) > 0x7FE00010]:  # the pixel data must come last; a
        del ds[tag]  # digital signature (FFFA,FFFA) no longer holds for a derived instance anyway
    return ds


def _stored_chunks(
    image: MedicalImage, src: Dataset, frames: Iterable[np.ndarray] | None
) -> Iterator[tuple[np.ndarray, str, int]]:
    """:func:`_stored_pixels` of the whole image, or of each chunk of ``frames`` as it arrives."""
    if frames is None:
        yield _stored_pixels(image, src)
        return
    for chunk in frames:
        yield _stored_pixels(image.with_pixels(np.asarray(chunk, dtype=np.float32)), src)


def _append_pixel_data(handle: BinaryIO, chunks: Iterable[np.ndarray], total: int) -> None:
    """Write (7FE0,0010) Pixel Data of ``total`` bytes, Explicit VR Little Endian (OB for 8 bits, OW for 16,
    padded to an even length), from the stored ``chunks`` as they come: the element pydicom's
    ``set_pixel_data`` would write, without a copy of the whole. ValueError if the chunks hold another size."""
    written, vr = 0, None
    for stored in chunks:
        data = np.ascontiguousarray(stored, dtype=stored.dtype.newbyteorder("<"))
        if vr is None:
            vr = b"OB" if data.dtype.itemsize == 1 else b"OW"
            handle.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, vr, 0, total + total % 2))
        handle.write(memoryview(data).cast("B"))
        written += data.nbytes
    if written != total:
        raise ValueError(f"{written:,} bytes of pixel data arrived for {total:,}")
    if total % 2:
        handle.write(b"\x00")


def _sop_class(src: Dataset) -> str:
    """The source's SOP Class UID: its own element, else its file meta's Media Storage SOP Class UID."""
    own = str(src.get("SOPClassUID", "") or "")
    return own or str(getattr(src, "file_meta", Dataset()).get("MediaStorageSOPClassUID", "") or "")


def _is_enhanced(src: Dataset) -> bool:
    """An enhanced multi-frame IOD: functional groups, and Image/Frame Type values of its own (PS3.3 C.8.16.1)."""
    name = getattr(src.get("SOPClassUID"), "name", "")
    groups = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
    return any(keyword in src for keyword in groups) or "Enhanced" in name


def _derived_type(value: object, enhanced: bool) -> list[str]:
    """Image Type (or Frame Type) value 1 DERIVED. Value 2 becomes SECONDARY in classic IODs; enhanced CT, MR and
    PET allow PRIMARY only (PS3.3 C.8.16.1.2), so enhanced IODs keep the source's value. Values 3 and on stay."""
    old = [value] if isinstance(value, str) else list(value or [])
    second = (old[1] if len(old) > 1 and old[1] else "PRIMARY") if enhanced else "SECONDARY"
    return ["DERIVED", second, *old[2:]]


def _functional_groups(ds: Dataset) -> list[Dataset]:
    return [*ds.get("SharedFunctionalGroupsSequence", []), *ds.get("PerFrameFunctionalGroupsSequence", [])]


def _frame_type_items(ds: Dataset) -> list[Dataset]:
    """The items of each functional group's <Modality> Frame Type Sequence (they hold Frame Type)."""
    return [
        item
        for group in _functional_groups(ds)
        for element in group
        if element.VR == "SQ"
        for item in element.value
        if "FrameType" in item
    ]


def _set_pixel_presentation(ds: Dataset, value: str) -> None:
    """Pixel Presentation COLOR or MIXED promises a palette: say what the pixels are once the palette is gone."""
    for item in [ds, *_frame_type_items(ds)]:
        if item.get("PixelPresentation") in ("COLOR", "MIXED"):
            item.PixelPresentation = value
