"""A small archive for job tests: 30 inputs of every kind medsr writes, a 3-slice DICOM series and 3 bad files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import tifffile
import torch
from PIL import Image

from medsr.models import build_generator, save_model

DATA = Path(__file__).parents[1] / "data"
BAD = {"bad/notes.png", "bad/cut.png", "bad/empty.dcm"}
SERIES = [f"series/slice{i}.dcm" for i in (1, 2, 3)]


def tiny_model(folder: Path) -> Path:
    """A small Swift-SRGAN x4 with random weights (fixed seed), saved as a medsr checkpoint."""
    torch.manual_seed(0)
    model = build_generator("swift-srgan", in_channels=1, scale=4, num_blocks=2, num_channels=16).eval()
    return save_model(model, folder / "tiny-x4.safetensors", {"name": "tiny-x4"})


def make_archive(root: Path, size: int = 40) -> dict[str, str]:
    """Write the 30 inputs under ``root``; returns input (relative) -> expected output (relative), bad ones ''."""
    chest = np.asarray(Image.open(DATA / "xray_b343e657.png").convert("L"))
    expected: dict[str, str] = {}
    (root / "png").mkdir(parents=True)
    for i in range(20):
        y, x = 40 + 13 * i, 60 + 11 * i
        Image.fromarray(chest[y : y + size, x : x + size + 8], "L").save(root / f"png/crop{i:02d}.png")
        expected[f"png/crop{i:02d}.png"] = f"png/crop{i:02d}.png"
    rgb = np.stack([chest[100 : 100 + size, 100 : 100 + size]] * 3, axis=-1) // np.array([1, 2, 3], np.uint8)
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(root / "png/colour.png")
    expected["png/colour.png"] = "png/colour.png"
    Image.fromarray(chest[300 : 300 + size, 200 : 200 + size], "L").save(root / "png/photo.jpg", quality=90)
    expected["png/photo.jpg"] = "png/photo.png"
    (root / "tiff").mkdir()
    for i in range(2):
        values = (chest[50 * i : 50 * i + size, 0:size].astype(np.uint16) * 257 + i).astype(np.uint16)
        tifffile.imwrite(root / f"tiff/scan{i}.tif", values)
        expected[f"tiff/scan{i}.tif"] = f"tiff/scan{i}.tif"
    (root / "series").mkdir()
    for number, name in enumerate(SERIES, start=1):
        ds = pydicom.dcmread(DATA / "ct_small.dcm")
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = number
        ds.save_as(root / name)
        expected[name] = name
    (root / "bad").mkdir()
    (root / "bad/notes.png").write_text("not an image\n")
    (root / "bad/cut.png").write_bytes((root / "png/crop00.png").read_bytes()[:120])
    (root / "bad/empty.dcm").write_bytes(b"")
    expected.update(dict.fromkeys(BAD, ""))
    assert len(expected) == 30
    return expected


def copy_archive(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
