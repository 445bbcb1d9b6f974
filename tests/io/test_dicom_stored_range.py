"""Derived DICOMs hold only stored values their BitsStored and PixelRepresentation allow, whatever the pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from medsr.infer import InferenceSettings, upscale
from medsr.io import read_image, write_image
from medsr.io.dicom import stored_range, write_derived_dicom
from medsr.models import build_generator

DATA = Path(__file__).parents[1] / "data"
torch.set_num_threads(1)


def raw_stored(path: Path) -> tuple[np.ndarray, pydicom.Dataset]:
    """The stored values exactly as written (PixelData bytes, no masking of bits above BitsStored)."""
    ds = pydicom.dcmread(path)
    dtype = f"<{'i' if ds.PixelRepresentation else 'u'}{ds.BitsAllocated // 8}"
    return np.frombuffer(ds.PixelData, dtype=dtype), ds


def test_upscaled_ct_written_as_derived_dicom_fits_bits_stored(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_generator("swift-srgan", in_channels=1, scale=4, num_blocks=2, num_channels=16).eval()
    source = pydicom.dcmread(DATA / "ct_small.dcm")
    hu = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)
    for clip in (True, False):
        result = upscale(read_image(DATA / "ct_small.dcm"), model, InferenceSettings(device="cpu", clip_to_input=clip))
        path = tmp_path / f"ct-{clip}.dcm"
        write_image(result, path, format="dicom")
        stored, ds = raw_stored(path)
        low, high = stored_range(int(ds.BitsStored), int(ds.PixelRepresentation))
        assert stored.size == ds.Rows * ds.Columns == 512 * 512
        assert low <= stored.min() and stored.max() <= high
        if clip:
            out = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            assert hu.min() <= out.min() and out.max() <= hu.max()


@pytest.mark.filterwarnings("ignore:overflow encountered in multiply:RuntimeWarning")  # the +-inf pixels
@pytest.mark.parametrize(("bits", "signed"), [(12, 0), (12, 1), (10, 0)])
def test_out_of_range_pixels_are_clamped_to_bits_stored(bits: int, signed: int, tmp_path: Path) -> None:
    """A narrower source (12 or 10 of 16 bits) and pixels beyond [0, 1] or NaN: the writer clamps, never wraps."""
    ds = pydicom.dcmread(DATA / "ct_small.dcm")
    values = ds.pixel_array.astype(np.int32) // 4  # 32..547: fits every variant
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, signed
    ds.PixelData = values.astype(np.int16 if signed else np.uint16).tobytes()
    source = tmp_path / "narrow.dcm"
    ds.save_as(source)
    image = read_image(source)
    low, high = stored_range(bits, signed)
    pixels = image.pixels.copy()
    pixels[0, :4, 0] = [-0.5, 1.5, np.nan, 1.0]
    pixels[1, :2, 0] = [np.inf, -np.inf]
    path = tmp_path / "derived.dcm"
    write_derived_dicom(image.with_pixels(pixels), path, scale=1)
    stored, written = raw_stored(path)
    assert (written.BitsStored, written.PixelRepresentation) == (bits, signed)
    assert low <= stored.min() and stored.max() <= high
    grid = stored.reshape(ds.Rows, ds.Columns)
    assert list(grid[0, :4]) == [low, high, low, high] and list(grid[1, :2]) == [high, low]
    np.testing.assert_array_equal(grid[2:], values[2:])  # the rest round-trips exactly
