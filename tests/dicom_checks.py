"""DICOM helpers shared by the tests: dicom3tools' ``dciodvfy`` (``make test`` installs it where apt-get exists),
which of its complaints about a derived file are new, not inherited from its source, and DICOM bytes in memory."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

DCIODVFY = shutil.which("dciodvfy")

needs_dciodvfy = pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy not installed (apt-get install dicom3tools)")


def dciodvfy_errors(path: Path) -> list[str]:
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line.strip() for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


# The same complaint about the same attribute (its value may change: spacings, UIDs, sizes), or about the same
# value elsewhere (a source's malformed SOP Instance UID, copied into Source Image Sequence), is inherited.
_VALUES = re.compile(r"(?<== )<[^<>]*>|(?<=value )<[^<>]*>|\"[^\"]*\"|values are .*$")
_ELEMENT = re.compile(r"\(0x[0-9a-fA-F]{4},0x[0-9a-fA-F]{4}\)(?: [A-Z]{2})? .*?(?=  |$)")


def new_errors(before: list[str], after: list[str]) -> list[str]:
    """Errors in ``after`` that are not one of ``before`` with another value or on another element."""
    by_element = {_VALUES.sub("<>", line) for line in before}
    by_value = {_ELEMENT.sub("", line) for line in before}
    return [e for e in after if _VALUES.sub("<>", e) not in by_element and _ELEMENT.sub("", e) not in by_value]


def dicom_bytes(ds: pydicom.Dataset) -> bytes:
    """A dataset written to bytes, as a browser upload or a download holds it."""
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def hu(data: bytes) -> np.ndarray:
    """The modality values (stored x slope + intercept) of a DICOM given as bytes."""
    ds = pydicom.dcmread(io.BytesIO(data))
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
