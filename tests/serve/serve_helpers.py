"""Helpers for the DICOM node's tests: test studies made from tests/data, config dicts, polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

DATA = Path(__file__).parents[1] / "data"


def node_config(spool: Path, **changes: object) -> dict:
    """A node configuration dict for tests: loopback, free port, 0.3 s idle, callers ORTHANC and TESTSCU."""
    config = {
        "ae_title": "MEDSR", "host": "127.0.0.1", "port": 0, "spool": str(spool), "idle_seconds": 0.3,
        "callers": [{"ae_title": "ORTHANC", "hosts": ["127.0.0.1"]}, {"ae_title": "TESTSCU"}],
        "send_retry_seconds": 0.2, "send_retry_max_seconds": 1.0,
    }
    config.update(changes)
    return config


def new_study(path: Path, out: Path, *, study_uid: str | None = None, series_uid: str | None = None,
              count: int = 1) -> list[Path]:
    """Copies of a DICOM file as ``count`` new instances of one new (or given) series and study."""
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = index + 1
        if "PixelData" in ds and not ds.file_meta.TransferSyntaxUID.is_compressed and index:
            pixels = ds.pixel_array.copy()
            pixels.flat[index] = pixels.flat[index] ^ 1  # slices differ a little, as real ones do
            ds.PixelData = pixels.tobytes()
        target = out / f"{series_uid[-8:]}-{index}.dcm"
        ds.save_as(target, enforce_file_format=True)
        paths.append(target)
    return paths


def single_frame_us(out: Path) -> Path:
    """One frame of the bundled colour ultrasound cine as a single-frame US image (RGB, uncompressed)."""
    ds = pydicom.dcmread(DATA / "us_ybr_color.dcm")
    frame = ds.pixel_array[0]  # pydicom converts YBR_FULL_422 to RGB
    for keyword in ("NumberOfFrames", "FrameIncrementPointer", "FrameTime", "CineRate"):
        ds.pop(keyword, None)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.UltrasoundImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.PixelData = np.ascontiguousarray(frame).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def wait_for(condition: Callable[[], object], timeout: float = 120, what: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)
