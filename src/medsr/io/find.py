"""The one image finder: which files medsr treats as images, and the one expander of command-line inputs.

:func:`expand_inputs` turns files, folders and glob patterns into :class:`Item` s for every command (upscale,
degrade, baseline, evaluate). An image is a regular file whose suffix is one medsr reads (PNG, JPEG, TIFF,
DICOM under any of its usual suffixes) or, whatever its name, a file with the DICOM ``DICM`` marker at byte 128
(DICOM files are often named by UID, with no suffix). Hidden files and folders are skipped, and so are special
files (FIFOs, devices, sockets), which would block or fail a reader.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
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


_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Item:
    """One input image: its file, its name below the folder it was found in, and its source ("" if unknown).

    ``relative`` (a named file's own name) keeps outputs apart and, as :attr:`key`, seeds random degradations,
    so an image's LR depends on neither the other images nor where the data folder lies.
    """

    path: Path
    relative: Path
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "relative", Path(self.relative))

    @property
    def key(self) -> str:
        """The name that seeds the image's degradation: :attr:`relative` in POSIX form."""
        return self.relative.as_posix()


def image_key(path: str | os.PathLike[str] | None, root: str | os.PathLike[str] | None = None) -> str:
    """The name that seeds an image's degradation: its path below ``root`` (POSIX), else its file name."""
    if path is None:
        return ""
    path = Path(path)
    if root is not None:
        try:
            return path.absolute().relative_to(Path(root).absolute()).as_posix()
        except ValueError:
            pass
    return path.name


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> tuple[list[Item], list[tuple[str, str]]]:
    """Items for files, folders (recursively, :func:`find_images`) and glob patterns; failures for the rest.

    A folder's images are named by their path below it, a file or a glob match by its own name. Named files are
    kept whatever their suffix (reading reports what is wrong with them). Returns the items (duplicates removed,
    in input order) and ``(input, reason)`` for inputs that match nothing.
    """
    found: dict[Path, Item] = {}
    failures: list[tuple[str, str]] = []
    for entry in inputs:
        text = os.fspath(entry)
        path = Path(text)
        if path.is_dir():
            for image in find_images(path):
                found.setdefault(image.resolve(), Item(image, image.relative_to(path)))
        elif path.exists():
            found.setdefault(path.resolve(), Item(path, Path(path.name)))
        elif path.is_symlink():
            failures.append((text, "a symbolic link to nothing readable (missing target or a loop)"))
        elif _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True)) if Path(m).is_file()]
            if not matches:
                failures.append((text, "no files match this pattern"))
            for match in matches:
                found.setdefault(match.resolve(), Item(match, Path(match.name)))
        else:
            failures.append((text, "no such file or folder"))
    return list(found.values()), failures
