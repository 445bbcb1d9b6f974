"""Raster I/O (PNG, JPEG, TIFF at 8 and 16 bits), content dispatch, atomic writes and bad input."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image, ImageFile

import medsr
from medsr.errors import ImageReadError, ImageWriteError
from medsr.io import read_image, sniff_format, write_image

DATA = Path(__file__).parents[1] / "data"
XRAY = DATA / "xray_b343e657.png"


def _ramp(shape: tuple[int, ...], peak: int, dtype: str, seed: int = 0) -> np.ndarray:
    """Random values that include both ends of the range (so scaling errors show at the extremes)."""
    arr = np.random.default_rng(seed).integers(0, peak + 1, size=shape).astype(dtype)
    arr.flat[0], arr.flat[-1] = 0, peak
    return arr


def test_8bit_png_fixture_round_trip(tmp_path: Path) -> None:
    image = read_image(XRAY)
    stored = np.asarray(Image.open(XRAY))
    assert image.format == "png" and image.bit_depth == 8 and image.photometric == "MONOCHROME2"
    assert image.pixels.dtype == np.float32 and image.pixels.shape == (*stored.shape, 1)
    assert image.value_range == (0.0, 255.0) and image.data_range == 255.0
    np.testing.assert_allclose(image.pixels[..., 0] * 255, stored, atol=1e-3)
    out = tmp_path / "out.png"
    write_image(image, out)
    with Image.open(out) as written:
        assert written.mode == "L"
        np.testing.assert_array_equal(np.asarray(written), stored)


def test_16bit_png_is_read_as_16_bit_and_written_back_exactly(tmp_path: Path) -> None:
    arr = _ramp((40, 50), 65535, "uint16")
    Image.fromarray(arr).save(tmp_path / "in.png")
    image = read_image(tmp_path / "in.png")
    assert image.bit_depth == 16 and image.value_range == (0.0, 65535.0)
    assert len(np.unique(image.pixels)) > 256  # not squeezed through 8 bits
    np.testing.assert_allclose(image.pixels[..., 0], arr / 65535, atol=1e-7)
    write_image(image, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode.startswith("I;16")
        np.testing.assert_array_equal(np.asarray(written), arr)


@pytest.mark.parametrize(
    ("shape", "dtype", "peak", "photometric"),
    [
        ((30, 20), "uint16", 65535, "minisblack"),
        ((30, 20, 3), "uint16", 65535, "rgb"),
        ((30, 20), "uint8", 255, "minisblack"),
    ],
)
def test_tiff_round_trip_is_bit_exact(tmp_path: Path, shape, dtype, peak, photometric) -> None:
    arr = _ramp(shape, peak, dtype)
    tifffile.imwrite(tmp_path / "in.tif", arr, photometric=photometric)
    image = read_image(tmp_path / "in.tif")
    assert image.format == "tiff" and image.bit_depth == arr.itemsize * 8
    assert image.channels == (3 if arr.ndim == 3 else 1)
    write_image(image, tmp_path / "out.tiff")
    written = tifffile.imread(tmp_path / "out.tiff")
    assert written.dtype == arr.dtype
    np.testing.assert_array_equal(written, arr)


def test_multipage_tiff_is_a_stack_of_frames(tmp_path: Path) -> None:
    arr = _ramp((3, 16, 12), 65535, "uint16")
    tifffile.imwrite(tmp_path / "stack.tif", arr, photometric="minisblack")
    image = read_image(tmp_path / "stack.tif")
    assert image.pixels.shape == (3, 16, 12, 1) and image.is_multiframe
    write_image(image, tmp_path / "out.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), arr)
    with pytest.raises(ImageWriteError, match="one frame"):
        write_image(image, tmp_path / "out.png")


def test_rgba_png_drops_alpha_and_keeps_colour(tmp_path: Path) -> None:
    rgba = _ramp((10, 12, 4), 255, "uint8")
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    image = read_image(tmp_path / "rgba.png")
    assert image.channels == 3 and image.photometric == "RGB"
    write_image(image, tmp_path / "rgb.png")
    with Image.open(tmp_path / "rgb.png") as written:
        assert written.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(written), rgba[..., :3])


def test_jpeg_fixture_matches_pillow_and_refuses_16_bit(tmp_path: Path) -> None:
    path = DATA / "xray_bd10d5e2_512.jpg"
    image = read_image(path)
    assert image.format == "jpeg" and image.bit_depth == 8 and image.pixels.shape == (512, 512, 1)
    np.testing.assert_allclose(image.pixels[..., 0] * 255, np.asarray(Image.open(path)), atol=1e-3)
    write_image(image, tmp_path / "out.jpg")
    assert read_image(tmp_path / "out.jpg").pixels.shape == (512, 512, 1)
    deep = image.with_pixels(image.pixels, bit_depth=16)
    with pytest.raises(ImageWriteError, match="8 bits"):
        write_image(deep, tmp_path / "deep.jpg")


def test_format_comes_from_content_not_suffix(tmp_path: Path) -> None:
    misnamed = tmp_path / "really_a_png.tif"
    misnamed.write_bytes(XRAY.read_bytes())
    assert read_image(misnamed).format == "png"
    assert sniff_format(XRAY.read_bytes()[:132]) == "png"
    assert sniff_format((DATA / "ct_small.dcm").read_bytes()[:132]) == "dicom"


def test_package_level_api_is_the_same_function() -> None:
    assert medsr.read_image is read_image and medsr.write_image is write_image


def test_write_is_atomic_when_the_writer_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "result.tif"
    target.write_bytes(b"previous result")

    def crash(path, *args, **kwargs):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", crash)
    with pytest.raises(ImageWriteError, match="disk full"):
        write_image(read_image(XRAY), target)
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["result.tif"]  # no temporary file left behind


def test_unknown_output_format(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="unknown output format"):
        write_image(read_image(XRAY), tmp_path / "out.bmp")


def test_dicom_output_needs_a_dicom_source(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="needs a DICOM source"):
        write_image(read_image(XRAY), tmp_path / "out.dcm")


# --- bad input: each case is one ImageReadError naming the file ---------------------------------------------


def _png_claiming_size(path: Path, width: int, height: int) -> None:
    """A 1x1 PNG whose header claims another size (a decompression bomb's header, with a valid CRC)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def _make_bad(kind: str, tmp_path: Path) -> tuple[Path, dict]:
    if kind == "missing":
        return tmp_path / "missing.png", {}
    if kind == "truncated png":
        path = tmp_path / "truncated.png"
        path.write_bytes(XRAY.read_bytes()[:5000])
        return path, {}
    if kind == "text named dcm":
        path = tmp_path / "notes.dcm"
        path.write_text("this is not a DICOM file\n" * 10)
        return path, {}
    if kind == "dicom without pixels":
        ds = pydicom.dcmread(DATA / "ct_small.dcm")
        del ds.PixelData
        path = tmp_path / "nopixels.dcm"
        ds.save_as(path)
        return path, {}
    if kind == "over the pixel limit":
        return XRAY, {"max_pixels": 1000}
    if kind == "dicom over the pixel limit":
        return DATA / "ct_small.dcm", {"max_pixels": 128 * 128 - 1}
    if kind == "pillow decompression bomb":
        path = tmp_path / "bomb.png"
        _png_claiming_size(path, 40_000, 40_000)
        return path, {"max_pixels": 10**12}  # our limit allows it; Pillow's guard must still become ours
    if kind == "unsupported format":
        path = tmp_path / "image.bmp"
        Image.new("L", (4, 4)).save(path, format="BMP")
        return path, {}
    if kind == "empty file":
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
        return path, {}
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "no such file"),
        ("truncated png", "truncated"),
        ("text named dcm", "not a DICOM file"),
        ("dicom without pixels", "no pixel data"),
        ("over the pixel limit", "too large"),
        ("dicom over the pixel limit", "too large"),
        ("pillow decompression bomb", "too large"),
        ("unsupported format", "unsupported format"),
        ("empty file", "empty file"),
    ],
)
def test_bad_input_raises_one_line_read_error(kind: str, reason: str, tmp_path: Path) -> None:
    path, kwargs = _make_bad(kind, tmp_path)
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    message = str(info.value)
    assert path.name in message and reason in message
    assert "\n" not in message and message.startswith(f"cannot read {path}")
    assert isinstance(info.value, medsr.MedsrError)


def test_pixel_limit_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    import medsr.io.dicom

    def fail(*args, **kwargs):
        raise AssertionError("pixel data decoded despite the limit")

    monkeypatch.setattr(medsr.io.dicom, "get_decoder", fail)
    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(DATA / "ct_small.dcm", max_pixels=100)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(XRAY, max_pixels=100)
