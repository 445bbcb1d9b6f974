"""``medsr degrade`` as a function: degrade every image of some files and folders into an output folder.

Outputs keep each input's path below its folder, its format and its bit depth (a DICOM without a suffix stays
DICOM). Random models draw from a generator seeded by ``seed`` and that path, so a file's LR does not depend on
the other files. Bad files are skipped and reported, never written half.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medsr.degrade import degrade_image, get_degradation, seeded_rng
from medsr.errors import MedsrError, failure_reason
from medsr.io import read_image, write_image
from medsr.io.find import expand_inputs


def degrade_files(
    inputs: Iterable[str | Path], out: str | Path, name: str, scale: int, *, seed: int = 0, **params: Any
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Degrade each image under ``inputs`` with model ``name`` into ``out``: ``(written, failures)``."""
    get_degradation(name)
    written: list[Path] = []
    items, failures = expand_inputs(inputs)
    for item in items:
        target = Path(out) / item.key
        try:
            image = read_image(item.path)
            lr = degrade_image(image, name, scale, rng=seeded_rng(seed, item.key), **params)
            write_image(lr, target, format=image.format)  # the input's format, whatever the name's suffix
        except (MedsrError, ValueError, OSError) as exc:
            failures.append((str(item.path), failure_reason(exc)))
            continue
        written.append(target)
    return written, failures
