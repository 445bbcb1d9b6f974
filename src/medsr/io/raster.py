"""PNG, JPEG and TIFF at 8 and 16 bits: Pillow for PNG/JPEG, tifffile for TIFF.

Stored integers map linearly to the working range, ``pixels = stored / (2**bits - 1)``, so a read followed by
a write at the same bit depth reproduces every pixel exactly.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageOps

from medsr.atomic import atomic_path
from medsr.errors import ImageReadError, ImageWriteError
from medsr.io.image import MedicalImage


def check_pixel_limit(path: str | Path, n_pixels: int, max_pixels: int) -> None:
    """Refuse images over ``max_pixels`` (width * height * frames) before their pixels are decoded."""
    if n_pixels > max_pixels:
        raise ImageReadError(path, f"image too large: {n_pixels:,} pixels, over the limit of {max_pixels:,}")


def read_raster(path: Path, fmt: str, max_pixels: int) -> MedicalImage:
    """Read a PNG, JPEG or TIFF file (``fmt`` from its magic bytes) into a :class:`MedicalImage`."""
    arr = _read_tiff(path, max_pixels) if fmt == "tiff" else _read_pil(path, fmt, max_pixels)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] in (2, 4):  # grey + alpha, RGB + alpha: alpha is not image content
        arr = arr[..., :-1]
    if arr.shape[-1] not in (1, 3):
        raise ImageReadError(path, f"unsupported number of channels: {arr.shape[-1]}")
    if arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(path, f"unsupported sample type {arr.dtype} (only 8- and 16-bit unsigned)")
    bits = arr.dtype.itemsize * 8
    peak = 2**bits - 1
    return MedicalImage(
        pixels=np.multiply(arr, 1.0 / peak, dtype=np.float32),
        format=fmt,
        bit_depth=bits,
        value_range=(0.0, float(peak)),
        photometric="RGB" if arr.shape[-1] == 3 else "MONOCHROME2",
        path=str(path),
    )


def _read_pil(path: Path, fmt: str, max_pixels: int) -> np.ndarray:
    if fmt == "png" and _png_is_16bit_colour(path):
        raise ImageReadError(path, "16-bit colour PNG is not supported (Pillow reads 8 bits); use TIFF")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides
        try:
            im = Image.open(path, formats=[fmt.upper()])
        except Image.DecompressionBombError as exc:  # over twice Pillow's own limit: say ours, as for others
            found = re.search(r"\((\d+) pixels\)", str(exc))
            size = f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow opens"
            raise ImageReadError(path, f"image too large: {size}, over the limit of {max_pixels:,}") from None
    with im:
        check_pixel_limit(path, im.width * im.height, max_pixels)
        if exif_orientation(im) != 1:  # shown rotated or mirrored: make the pixels upright, as viewers show them
            im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
            return np.asarray(im).astype(np.uint16)
        if im.mode == "I":  # 16-bit PNG in older Pillow versions
            arr = np.asarray(im)
            if arr.min() < 0 or arr.max() > 65535:
                raise ImageReadError(path, "32-bit integer images are not supported")
            return arr.astype(np.uint16)
        if im.mode in ("L", "LA", "RGB", "RGBA"):
            return np.asarray(im)
        if im.mode == "1":
            return np.asarray(im.convert("L"))
        return np.asarray(im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB"))


ORIENTATION_TAG = 0x0112
"""EXIF/TIFF Orientation: 1 upright; 2-8 mirrored and/or rotated (the TIFF 6.0 and EXIF 2.3 meaning)."""


def exif_orientation(im: Image.Image) -> int:
    """The EXIF Orientation of an opened image (1 when absent or not 1-8)."""
    try:
        value = int(im.getexif().get(ORIENTATION_TAG, 1))
    except (TypeError, ValueError, OSError, SyntaxError):  # a broken EXIF block is not worth failing a read
        return 1
    return value if 1 <= value <= 8 else 1


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels ``(..., H, W, C)`` stored with TIFF/EXIF ``orientation`` turned upright: the transposition Pillow's
    ``ImageOps.exif_transpose`` applies, for readers (tifffile) that return pixels as stored."""
    rows, columns = arr.ndim - 3, arr.ndim - 2
    if orientation in (5, 6, 7, 8):
        arr = np.swapaxes(arr, rows, columns)  # 5 is the transpose; 6, 7, 8 are it with one flip more
    flips = {2: (columns,), 3: (rows, columns), 4: (rows,), 6: (columns,), 7: (rows, columns), 8: (rows,)}
    axes = flips.get(orientation, ())
    return np.ascontiguousarray(np.flip(arr, axes)) if axes or orientation != 1 else arr


def _png_is_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as f:
        ihdr = f.read(26)  # signature (8), chunk length + type (8), width, height (8), bit depth, colour type
    return len(ihdr) == 26 and ihdr[24] == 16 and ihdr[25] in (2, 6)


def _read_tiff(path: Path, max_pixels: int) -> np.ndarray:
    """First series of a TIFF as (H, W, S) or (F, H, W, S): any axis but Y, X and samples is a frame axis."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes, shape = series.axes, series.shape
        n_pixels = math.prod(n for n, ax in zip(shape, axes, strict=True) if ax != "S")
        check_pixel_limit(path, n_pixels, max_pixels)
        arr = series.asarray()
        tag = tif.pages[0].tags.get("Orientation")
        orientation = int(tag.value) if tag is not None and str(tag.value).isdigit() else 1
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
    else:
        arr = arr[..., None]
    frames = arr.shape[:-3]
    arr = orient(arr, orientation if 1 <= orientation <= 8 else 1)
    return arr.reshape(math.prod(frames), *arr.shape[-3:]) if frames else arr


_CHUNK_VALUES = 2**22  # values converted at a time: float temporaries of 16 MB, not of the whole image


def to_integers(pixels: np.ndarray, bits: int) -> np.ndarray:
    """Working pixels in [0, 1] -> unsigned integers of ``bits`` (8 or 16), rounded and clipped.

    Converted a few rows (or frames) at a time, so a 12288x12288 result needs its integers and 16 MB of floats,
    not three float copies of itself.
    """
    peak = 2**bits - 1
    out = np.empty(pixels.shape, dtype=np.uint8 if bits == 8 else np.uint16)
    if not out.size:
        return out
    step = max(1, _CHUNK_VALUES // max(1, out[0].size))
    for start in range(0, len(out), step):
        scaled = np.rint(np.nan_to_num(pixels[start : start + step], nan=0.0) * peak)
        out[start : start + step] = np.clip(scaled, 0, peak)
    return out


def stored_frames(image: MedicalImage, frames: Iterable[np.ndarray], convert: Callable[[np.ndarray], np.ndarray]
                  ) -> np.ndarray:
    """The stored integers of a multi-frame ``image`` whose pixels arrive as ``frames``, chunks of whole frames
    (``(n, H, W, C)`` float32 on ``image.value_range``): each chunk through ``convert`` into one array, so only
    the integers of the whole image are ever held (``image.pixels`` only gives the shape, e.g. a
    ``np.broadcast_to`` view)."""
    out: np.ndarray | None = None
    position, total = 0, len(image.pixels)
    for chunk in frames:
        stored = convert(np.asarray(chunk, dtype=np.float32))
        if out is None:
            out = np.empty((total, *stored.shape[1:]), dtype=stored.dtype)
        out[position : position + len(stored)] = stored
        position += len(stored)
    if out is None or position != total:
        raise ValueError(f"{position} frame(s) arrived for an image of {total}")
    return out


def write_raster(image: MedicalImage, path: Path, fmt: str, frames: Iterable[np.ndarray] | None = None) -> None:
    """Write PNG/JPEG/TIFF at the image's own bit depth (8 stays 8, anything deeper becomes 16).

    ``frames``: the pixels of a multi-frame TIFF in chunks of whole frames (see :func:`stored_frames`).
    """
    bits = 8 if image.bit_depth <= 8 else 16
    if fmt == "jpeg" and bits != 8:
        raise ImageWriteError(path, f"JPEG holds 8 bits, this image has {image.bit_depth}; use png or tiff")
    if fmt != "tiff" and image.is_multiframe:
        raise ImageWriteError(path, f"{fmt} holds one frame, this has {len(image.pixels)}; use tiff or dcm")
    if fmt == "png" and bits == 16 and image.channels == 3:
        raise ImageWriteError(path, "16-bit colour PNG is not supported; use tiff")
    grey = image.channels == 1  # integers made without the channel axis: contiguous, so Pillow need not copy them
    if frames is not None:
        arr = stored_frames(image, frames, lambda chunk: to_integers(chunk[..., 0] if grey else chunk, bits))
    else:
        arr = to_integers(image.pixels[..., 0] if grey else image.pixels, bits)
    with atomic_path(path) as tmp:
        if fmt == "tiff":
            photometric = "rgb" if image.channels == 3 else "minisblack"
            tifffile.imwrite(tmp, arr, photometric=photometric, compression="zlib")
        else:
            Image.fromarray(arr).save(tmp, format=fmt.upper(), **({"quality": 95} if fmt == "jpeg" else {}))
