"""`medsr upscale` of a colour ultrasound DICOM with a lateral (1, 4) model keeps its geometry.

The file goes through the very read -> upscale -> write path of ``medsr upscale`` (:func:`upscale_files`):
only columns are added, so every spacing and region bound along x changes and nothing along y does.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pydicom
import pytest
import torch
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames

from medsr.infer.files import Source, upscale_files
from medsr.models import build_generator

US = Path(__file__).parents[1] / "data" / "us_ybr_color.dcm"
FRAMES = 2  # of the file's 30: the header is under test, not the pixels


@pytest.fixture(scope="module")
def lateral_x4():
    """A fresh plainrep that widens x4 along x only (as the bundled ultrasound model), on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield build_generator("plainrep", in_channels=1, scale=(1, 4)).eval()
    torch.set_num_threads(threads)


def _source(folder: Path) -> Path:
    """The shipped file cut to its first frames, with a pixel spacing and a second region added.

    The file has no PixelSpacing and its one region has the same delta along x and y, so a swap of the axes
    would pass unseen: the added values all differ between x and y.
    """
    ds = pydicom.dcmread(US)
    pieces = itertools.islice(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)), FRAMES)
    ds.PixelData = encapsulate(list(pieces))
    ds.NumberOfFrames = FRAMES
    ds.PixelSpacing = [0.2, 0.3]  # row spacing (y), column spacing (x), in mm
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 10, 20
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 299, 219
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX, region.PhysicalDeltaY = 0.03, 0.02
    ds.SequenceOfUltrasoundRegions.append(region)
    path = folder / "us.dcm"
    ds.save_as(path)
    return path


def test_lateral_upscale_of_colour_ultrasound_scales_x_geometry_only(lateral_x4, tmp_path: Path) -> None:
    source = _source(tmp_path)
    (outcome,) = upscale_files([Source(source, Path(source.name))], tmp_path / "out", lateral_x4)
    assert outcome.error is None, outcome.error
    old, new = pydicom.dcmread(source), pydicom.dcmread(outcome.target)

    assert (int(new.NumberOfFrames), new.Rows, new.Columns) == (FRAMES, old.Rows, old.Columns * 4)
    assert new.SamplesPerPixel == 3, "the colour was lost"
    assert [float(v) for v in new.PixelSpacing] == pytest.approx([0.2, 0.3 / 4])
    assert "x1 (rows) x4 (columns)" in new.DerivationDescription

    assert len(new.SequenceOfUltrasoundRegions) == len(old.SequenceOfUltrasoundRegions) == 2
    for before, after in zip(old.SequenceOfUltrasoundRegions, new.SequenceOfUltrasoundRegions, strict=True):
        assert after.PhysicalDeltaX == pytest.approx(before.PhysicalDeltaX / 4)
        assert after.PhysicalDeltaY == pytest.approx(before.PhysicalDeltaY)
        # a region covers whole pixels: its first column starts 4x further right, its last one ends there too
        assert after.RegionLocationMinX0 == before.RegionLocationMinX0 * 4
        assert after.RegionLocationMaxX1 == (before.RegionLocationMaxX1 + 1) * 4 - 1
        assert (after.RegionLocationMinY0, after.RegionLocationMaxY1) == (
            before.RegionLocationMinY0, before.RegionLocationMaxY1)
        # the same physical width: pixels x mm per pixel
        width = (after.RegionLocationMaxX1 - after.RegionLocationMinX0 + 1) * after.PhysicalDeltaX
        assert width == pytest.approx((before.RegionLocationMaxX1 - before.RegionLocationMinX0 + 1)
                                      * before.PhysicalDeltaX)
