"""Raster I/O (PNG, JPEG, TIFF at 8 and 16 bits), content dispatch, atomic writes and bad input."""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import threading
import warnings
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
    if kind == "dicom cut in its preamble":  # a DICOM-TIFF dual-personality preamble, like ../shared's CR files
        path = tmp_path / "cut.dcm"
        path.write_bytes(b"II*\x00" + (DATA / "ct_small.dcm").read_bytes()[4:100])
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
        ("dicom cut in its preamble", "truncated DICOM file (100 bytes"),
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


# --- library warnings: never printed, at most quoted in an error -------------------------------------------


def _tiff_with_invalid_tag(path: Path) -> np.ndarray:
    """A TIFF whose ImageDescription tag has an invalid data type: tifffile logs a warning and reads on."""
    arr = _ramp((8, 8), 255, "uint8")
    tifffile.imwrite(path, arr, description="medsr test")
    data = bytearray(path.read_bytes())
    entry = data.find(struct.pack("<HH", 270, 2))  # tag 270, type ASCII
    assert entry > 0
    data[entry + 2] = 99  # no such TIFF type
    path.write_bytes(bytes(data))
    return arr


def _dicom_with_excess_padding(path: Path) -> None:
    """A DICOM whose pixel data is 4 bytes longer than the image: pydicom warns (and logs) while decoding."""
    ds = pydicom.dcmread(DATA / "ct_small.dcm")
    ds.PixelData = ds.PixelData + bytes(4)
    ds.save_as(path)


def test_library_warnings_while_reading_are_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    tiff, dcm = tmp_path / "odd.tif", tmp_path / "padded.dcm"
    arr = _tiff_with_invalid_tag(tiff)
    _dicom_with_excess_padding(dcm)
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(tiff)
        assert read_image(dcm).pixels.shape == (128, 128, 1)
        # the same reads without medsr's guard do warn: the files really are odd
        tifffile.imread(tiff)
        pydicom.dcmread(dcm).pixel_array  # noqa: B018
        outside = [str(w.message) for w in caught]
        outside_logs = [r.name for r in caplog.records]
    np.testing.assert_array_equal(np.rint(image.pixels[..., 0] * 255), arr)
    assert len(outside) == 1 and "excess padding" in outside[0]  # only the unguarded pydicom read warned
    assert outside_logs == ["tifffile", "pydicom"]  # ... and only the unguarded reads logged
    assert capsys.readouterr().err == ""


def test_reading_odd_files_prints_nothing_in_a_fresh_process(tmp_path: Path) -> None:
    """Without pytest's capturing: warnings go to stderr, library loggers to logging's last-resort handler."""
    tiff, dcm = tmp_path / "odd.tif", tmp_path / "padded.dcm"
    _tiff_with_invalid_tag(tiff)
    _dicom_with_excess_padding(dcm)
    code = (
        "import sys, warnings; warnings.simplefilter('always'); from medsr.io import read_image; "
        "[read_image(p) for p in sys.argv[1:]]; print('read')"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "always"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tiff), str(dcm)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0 and done.stdout == "read\n" and done.stderr == "", done.stderr


def test_a_warning_before_a_failure_is_quoted_in_the_one_line_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from medsr.io import raster

    def warn_then_fail(path, fmt, max_pixels):
        warnings.warn("odd header\nsecond line", UserWarning, stacklevel=1)
        np.array([np.nan]).astype(np.uint8)  # numpy: "invalid value encountered in cast"
        raise ValueError("cannot decode")

    monkeypatch.setattr(raster, "read_raster", warn_then_fail)
    with warnings.catch_warnings(record=True) as caught, np.errstate(invalid="warn"):
        warnings.simplefilter("always")
        with pytest.raises(ImageReadError) as info:
            read_image(XRAY)
    assert info.value.reason == "corrupt or truncated png file (cannot decode; warning: odd header)"
    assert caught == []


def test_warnings_of_other_threads_and_after_reading_are_untouched(tmp_path: Path) -> None:
    tiff = tmp_path / "odd.tif"
    _tiff_with_invalid_tag(tiff)
    before = warnings.showwarning
    errors: list[BaseException] = []

    def read_many() -> None:
        try:
            for _ in range(20):
                read_image(tiff)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=read_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for _ in range(50):
            warnings.warn("from the main thread", UserWarning, stacklevel=1)
        for thread in threads:
            thread.join()
        warnings.warn("after reading", UserWarning, stacklevel=1)
        messages = [str(w.message) for w in caught]
    assert not errors
    assert messages == ["from the main thread"] * 50 + ["after reading"]
    assert warnings.showwarning is before


def test_error_messages_are_one_line_whatever_the_reason_or_name() -> None:
    error = ImageReadError("scan\n.png", "first line\n  second line\x00")
    assert str(error) == "cannot read scan\\n.png: first line second line\\x00"
    assert error.path == "scan\n.png" and error.reason == "first line second line\\x00"
