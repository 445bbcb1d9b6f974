"""Derived DICOM adds no ``dciodvfy`` error to its input's, and its header follows the new pixel grid.

``dciodvfy`` (dicom3tools; ``make test`` installs it where apt-get exists) checks every DICOM file in
``tests/data`` and ``../shared/data/dicom`` before and after ``medsr upscale``'s read -> upscale -> write path,
with a tiny x2 model: the writer is under test, not the pixels.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.encaps import encapsulate, generate_frames

from dicom_checks import dciodvfy_errors, needs_dciodvfy, new_errors
from medsr.infer.files import Source, upscale_files
from medsr.io import read_image, write_image
from medsr.models import build_generator

DATA = Path(__file__).parents[1] / "data"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "dicom"
MAX_SAMPLES = 4_000_000  # longer multi-frame inputs are cut to their first frames (decoding them takes minutes)


def _inputs() -> list:
    params = [pytest.param(path, id=f"data/{path.name}") for path in sorted(DATA.glob("*.dcm"))]
    shared = sorted(SHARED.rglob("*.dcm")) if SHARED.is_dir() else []
    params += [pytest.param(path, id=f"shared/{path.relative_to(SHARED)}") for path in shared]
    if not shared:
        params.append(pytest.param(None, id="shared", marks=pytest.mark.skip(reason=f"{SHARED} not available")))
    return params


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture(scope="module")
def tiny_x2():
    """A tiny plainrep x2, on one thread (the machine's cores may be busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield build_generator("plainrep", in_channels=1, scale=2, global_skip=True, num_channels=4, num_convs=2).eval()
    torch.set_num_threads(threads)


def _first_frames(path: Path, folder: Path, count: int = 4) -> Path:
    """``path`` itself, or for a long multi-frame file a copy holding its first ``count`` frames."""
    ds = pydicom.dcmread(path)
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames * int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) <= MAX_SAMPLES:
        return path
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        pieces = itertools.islice(generate_frames(ds.PixelData, number_of_frames=frames), count)
        ds.PixelData = encapsulate(list(pieces))
    else:
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // frames * count]
    ds.NumberOfFrames = count
    if "PerFrameFunctionalGroupsSequence" in ds:
        ds.PerFrameFunctionalGroupsSequence = ds.PerFrameFunctionalGroupsSequence[:count]
    copy = folder / f"first-frames-{path.name}"
    ds.save_as(copy)
    return copy


@needs_dciodvfy
@pytest.mark.parametrize("path", _inputs())
@pytest.mark.filterwarnings("ignore:Invalid value for VR", "ignore:The value length")  # the inputs' own faults
def test_derived_dicom_adds_no_dciodvfy_error(path: Path, tiny_x2, tmp_path: Path) -> None:
    source = _first_frames(path, tmp_path)
    (outcome,) = upscale_files([Source(source, Path(path.name))], tmp_path / "out", tiny_x2)
    assert outcome.error is None, outcome.error
    assert new_errors(dciodvfy_errors(source), dciodvfy_errors(outcome.target)) == []


def test_normalisation_keeps_inherited_errors_and_finds_new_ones() -> None:
    uid = "Error - Illegal root for UID - \"abc\" in (0x0008,0x0018) SOP Instance UID"
    before = [uid, "Error - Unrecognized enumerated value <US> for value 1 of attribute <Rescale Type>"]
    after = [
        uid.replace("(0x0008,0x0018) SOP", "(0x0008,0x1155) Referenced SOP"),  # the same bad value, copied
        "Error - Unrecognized enumerated value <HU> for value 1 of attribute <Rescale Type>",  # another value
        "Error - Unrecognized enumerated value <SECONDARY> for value 2 of attribute <Image Type>",
        "Error - Missing attribute Type 1 Required Element=<RedPaletteColorLookupTableData> Module=<X>",
    ]
    assert new_errors(before, after) == after[2:]


# --- what dciodvfy checked, checked without it ---------------------------------------------------------------


def test_enhanced_ct_keeps_its_supplemental_palette_and_functional_groups(tmp_path: Path) -> None:
    path = _shared("ct/eCT_Supplemental.dcm")
    image = read_image(path)
    big = image.with_pixels(image.pixels.repeat(2, axis=1).repeat(2, axis=2))
    write_image(big, tmp_path / "x2.dcm")
    src, ds = pydicom.dcmread(path), pydicom.dcmread(tmp_path / "x2.dcm")
    assert list(ds.ImageType[:2]) == ["DERIVED", "PRIMARY"]  # SECONDARY is not allowed in enhanced IODs
    frame_type = ds.SharedFunctionalGroupsSequence[0].CTImageFrameTypeSequence[0]
    assert list(frame_type.FrameType[:2]) == ["DERIVED", "PRIMARY"] and frame_type.PixelPresentation == "COLOR"
    for colour in ("Red", "Green", "Blue"):  # stored values keep their encoding: the palette still applies
        for part in ("Descriptor", "Data"):
            keyword = f"{colour}PaletteColorLookupTable{part}"
            assert ds[keyword].value == src[keyword].value
    spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == pytest.approx([0.388672 / 2] * 2, rel=1e-5)
    np.testing.assert_array_equal(ds.pixel_array[:, ::2, ::2], src.pixel_array)


def test_first_pixel_centre_moves_to_the_new_grid(tmp_path: Path) -> None:
    image = read_image(DATA / "ct_small.dcm")
    src = image.dataset
    write_image(image.with_pixels(image.pixels.repeat(4, axis=0).repeat(2, axis=1)), tmp_path / "x.dcm")
    ds = pydicom.dcmread(tmp_path / "x.dcm")
    rows, cols = np.array(src.ImageOrientationPatient[:3], float), np.array(src.ImageOrientationPatient[3:], float)
    dy, dx = (float(v) for v in src.PixelSpacing)
    # same field of view: the old first pixel's centre lies at new pixel (row 1.5, column 0.5)
    back = np.array(ds.ImagePositionPatient, float) + 1.5 * dy / 4 * cols + 0.5 * dx / 2 * rows
    np.testing.assert_allclose(back, np.array(src.ImagePositionPatient, float), atol=1e-4)


def test_overlay_planes_follow_the_new_grid(tmp_path: Path) -> None:
    path = _shared("mr/MR-SIEMENS-DICOM-WithOverlays.dcm")
    image = read_image(path)
    write_image(image.with_pixels(image.pixels.repeat(2, axis=0).repeat(2, axis=1)), tmp_path / "x2.dcm")
    src, ds = pydicom.dcmread(path), pydicom.dcmread(tmp_path / "x2.dcm")
    old, new = src.overlay_array(0x6000), ds.overlay_array(0x6000)
    assert new.shape == (2 * old.shape[0], 2 * old.shape[1]) == (ds.Rows, ds.Columns)
    np.testing.assert_array_equal(new[::2, ::2], old)
    np.testing.assert_array_equal(new[1::2, 1::2], old)


def test_overlay_that_cannot_follow_a_fractional_scale_is_removed(tmp_path: Path) -> None:
    path = _shared("mr/MR-SIEMENS-DICOM-WithOverlays.dcm")
    image = read_image(path)
    write_image(image.with_pixels(image.pixels[:242, :242]), tmp_path / "half.dcm")  # scale 0.5
    ds = pydicom.dcmread(tmp_path / "half.dcm")
    assert not [tag for tag in ds.keys() if tag.group == 0x6000]
