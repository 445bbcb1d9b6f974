"""Reading and writing medical images: PNG/JPEG/TIFF at 8 and 16 bits, and DICOM (read, write derived).

``read_image`` chooses the reader from the file's content (magic bytes), not its name, and turns every failure
into one :class:`~medsr.errors.ImageReadError` naming the file and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from medsr.errors import ImageReadError, ImageWriteError, MedsrError, os_reason
from medsr.io import dicom, raster
from medsr.io.find import DICOM_SUFFIXES, find_images, is_regular_file
from medsr.io.image import DEFAULT_MAX_PIXELS, MedicalImage, empty_reason
from medsr.io.quiet import collect_warnings

__all__ = ["DEFAULT_MAX_PIXELS", "MedicalImage", "find_images", "read_image", "sniff_format", "write_image"]

_SUFFIXES = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".dic": "dicom",
    ".ima": "dicom",
}
_ALIASES = {"jpg": "jpeg", "tif": "tiff", "dcm": "dicom"}


def sniff_format(head: bytes) -> str | None:
    """Format from a file's first 132 bytes: "png", "jpeg", "tiff", "dicom", or None if unknown."""
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # classic and BigTIFF
        return "tiff"
    return None


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> MedicalImage:
    """Read PNG, JPEG, TIFF or DICOM into a :class:`MedicalImage` (pixels float32 in [0, 1]).

    Images over ``max_pixels`` (width * height * frames) are refused before their pixels are decoded, and
    images without pixels (a TIFF of 0 rows) after. Raises :class:`ImageReadError` for anything that cannot
    be read.
    """
    path = Path(path)
    if path.exists() and not path.is_dir() and not is_regular_file(path):
        raise ImageReadError(path, "not a regular file")  # a FIFO or device would block or never end
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a directory") from None
    except OSError as exc:
        raise ImageReadError(path, exc.strerror or str(exc)) from None
    fmt = sniff_format(head)
    dicom_named = path.suffix.lower() in DICOM_SUFFIXES
    if dicom_named and fmt in (None, "tiff") and 0 < len(head) < 132:
        # cut before its DICM marker; a DICOM-TIFF preamble ("II*") would otherwise read as a broken TIFF
        raise ImageReadError(path, f"truncated DICOM file ({len(head)} bytes; the DICM marker is at byte 128)")
    if fmt is None:
        if not head:
            reason = "empty file"
        elif dicom_named:
            reason = "not a DICOM file (no DICM preamble)"
        else:
            reason = "unsupported format (not PNG, JPEG, TIFF or DICOM)"
        raise ImageReadError(path, reason)
    with collect_warnings() as caught:  # library warnings are not printed; the first may explain a failure
        try:
            if fmt == "dicom":
                image = dicom.read_dicom(path, max_pixels)
            else:
                image = raster.read_raster(path, fmt, max_pixels)
        except MedsrError:
            raise
        except Exception as exc:  # Pillow, tifffile and pydicom raise many kinds; the user gets one line
            detail = _first_line(str(exc)) or type(exc).__name__
            if caught:
                detail += f"; warning: {_first_line(caught[0])}"
            raise ImageReadError(path, f"corrupt or truncated {fmt} file ({detail})") from exc
    reason = empty_reason(image.pixels.shape)
    if reason:
        raise ImageReadError(path, reason)
    return image


def _first_line(text: str, limit: int = 200) -> str:
    lines = text.strip().splitlines()
    return lines[0][:limit] if lines else ""


def write_image(
    image: MedicalImage,
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    frames: Iterable[np.ndarray] | None = None,
    **dicom_options: Any,
) -> list[str]:
    """Write ``image`` as PNG, JPEG, TIFF or DICOM (``format``, else from the suffix), atomically; return notes
    on what the writer had to change (DICOM: invalid values copied from the source, truncated or dropped) and
    the libraries' warnings while writing (collected, never printed).

    PNG/TIFF keep the source bit depth (8 stays 8, deeper becomes 16); JPEG is 8-bit only. DICOM output is a
    derived instance of the image's source dataset: ``dicom_options`` go to
    :func:`medsr.io.dicom.write_derived_dicom` (``model_name``, ``scale``, ``series_uid``, ``source``).
    ``frames`` streams a multi-frame TIFF or DICOM: its pixels in chunks of whole frames, ``(n, H, W, C)``
    float32, while ``image.pixels`` only gives the shape (``np.broadcast_to(np.float32(0), shape)`` costs no
    memory); only the stored integers of the whole image are held.
    """
    path = Path(path)
    fmt = format.lower() if format else _SUFFIXES.get(path.suffix.lower())
    fmt = _ALIASES.get(fmt, fmt)
    if fmt not in ("png", "jpeg", "tiff", "dicom"):
        wanted = format or path.suffix or "(no suffix)"
        raise ImageWriteError(path, f"unknown output format {wanted!r} (use png, jpeg, tiff or dcm)")
    reason = empty_reason(image.pixels.shape)
    if reason:
        raise ImageWriteError(path, reason)
    if frames is not None and not image.is_multiframe:
        raise ValueError("frames are for a multi-frame image: give its (F, H, W, C) shape in image.pixels")
    if fmt == "dicom":
        return dicom.write_derived_dicom(image, path, frames=frames, **dicom_options)
    try:
        with collect_warnings() as caught:
            raster.write_raster(image, path, fmt, frames)
    except MedsrError:
        raise
    except OSError as exc:  # no folder, no permission, disk full: the system's reason, without errno and path
        raise ImageWriteError(path, os_reason(exc)) from exc
    except Exception as exc:
        raise ImageWriteError(path, _first_line(str(exc)) or type(exc).__name__) from exc
    return [_first_line(text) for text in dict.fromkeys(caught)]
