"""Fixed modality ranges (medsr.intensity): HU in and out of CT models, for DICOM and HU + 1024 PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsr.errors import ConfigError
from medsr.intensity import for_model, restore, to_value_range
from medsr.io import read_image, write_image

DATA = Path(__file__).parent / "data"
HU_RANGE = (-1024.0, 3071.0)


def _hu(image) -> np.ndarray:
    """Modality values of a one-frame grey image, from its own value_range."""
    low, high = image.value_range
    return low + image.pixels[..., 0].astype(np.float64) * (high - low)


def test_a_ct_dicom_is_mapped_to_the_fixed_hu_range_and_written_back_in_hu(tmp_path):
    source = read_image(DATA / "ct_small.dcm")
    mapped = for_model(source, {"value_range": HU_RANGE})
    hu = _hu(source)
    expected = (np.clip(hu, *HU_RANGE) - HU_RANGE[0]) / (HU_RANGE[1] - HU_RANGE[0])
    np.testing.assert_allclose(mapped.pixels[..., 0], expected, atol=1e-6)
    assert mapped.value_range == HU_RANGE
    write_image(restore(mapped), tmp_path / "out.dcm")
    back = read_image(tmp_path / "out.dcm")
    inside = (hu >= HU_RANGE[0]) & (hu <= HU_RANGE[1])
    np.testing.assert_allclose(_hu(back)[inside], hu[inside], atol=0.51)
    assert float(back.dataset.RescaleIntercept) == float(source.dataset.RescaleIntercept)


def test_a_16_bit_png_of_hu_plus_1024_is_read_as_hu_and_written_back_in_its_convention(tmp_path):
    hu = np.array([[-1024, -1000, 0], [40, 1000, 3071]], dtype=np.int32)
    Image.fromarray((hu + 1024).astype(np.uint16)).save(tmp_path / "ct.png")
    mapped = for_model(read_image(tmp_path / "ct.png"), {"value_range": HU_RANGE, "raster_offset": 1024})
    np.testing.assert_allclose(mapped.pixels[..., 0] * 4095 - 1024, hu, atol=1e-3)
    write_image(restore(mapped), tmp_path / "back.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "back.png")).astype(np.int32) - 1024, hu)


def test_an_8_bit_raster_has_no_units_and_is_refused_with_the_reason(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ConfigError, match="16-bit"):
        to_value_range(read_image(tmp_path / "a.png"), HU_RANGE, raster_offset=1024)


def test_models_without_a_value_range_see_the_image_unchanged():
    image = read_image(DATA / "ct_small.dcm")
    assert for_model(image, {"arch": "plainrep"}) is image
    mapped = for_model(image, {"value_range": list(HU_RANGE), "raster_offset": 1024})
    assert mapped.value_range == HU_RANGE
