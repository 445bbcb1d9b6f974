"""The one image finder: which files in a folder medsr treats as images, for every command.

An image is a regular file whose suffix is one medsr reads (PNG, JPEG, TIFF, DICOM under any of its usual
suffixes) or, whatever its name, a file with the DICOM ``DICM`` marker at byte 128 (DICOM files are often
named by UID, with no suffix). Hidden files and folders are skipped, and so are special files (FIFOs,
devices, sockets), which would block or fail a reader.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

RASTER_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic", ".ima"})
IMAGE_SUFFIXES = RASTER_SUFFIXES | DICOM_SUFFIXES


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file (links followed); False for folders, FIFOs, devices, sockets, missing paths."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def has_dicom_marker(path: str | os.PathLike[str]) -> bool:
    """True when a regular file holds ``DICM`` at byte 128 (the DICOM Part 10 preamble)."""
    if not is_regular_file(path):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for a regular file with an image suffix, or with the DICOM marker whatever its suffix."""
    if not is_regular_file(path):
        return False
    return Path(path).suffix.lower() in IMAGE_SUFFIXES or has_dicom_marker(path)


def find_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The images below ``folder`` (recursively; hidden entries and special files skipped), sorted."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(parent, name)
            if not name.startswith(".") and is_image_file(path):
                found.append(path)
    return sorted(found)


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, Path]]:
    """``(path, root)`` for files named in ``inputs`` and for the images :func:`find_images` finds in folders.

    ``root`` is the folder an image was found in (for a named file, its own folder): names below it keep
    outputs apart and seed random degradations. Named files are kept whatever their suffix, and so is a path
    that does not exist, so that reading it reports the failure. Duplicates are removed, order is kept.
    """
    found: dict[Path, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for image in find_images(path):
                found.setdefault(image, path)
        else:
            found.setdefault(path, path.parent)
    return list(found.items())
