"""DICOM reading (rescale, MONOCHROME1, colour, multi-frame, compression) and the derived-instance writer."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from medsr.errors import ImageReadError, ImageWriteError
from medsr.io import read_image, write_image
from medsr.io.dicom import SeriesUIDMap, write_derived_dicom

DATA = Path(__file__).parents[1] / "data"
CT, CR, US = DATA / "ct_small.dcm", DATA / "cr_mono1_small.dcm", DATA / "us_ybr_color.dcm"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "dicom"

TYPE1 = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Modality",
)


def check_derived(path: Path) -> pydicom.Dataset:
    """dciodvfy-style checks: type-1 attributes present and non-empty, file meta consistent, pixel size."""
    ds = pydicom.dcmread(path)
    missing = [k for k in TYPE1 if k not in ds or ds[k].value in (None, "", [])]
    assert not missing, f"missing type-1 attributes: {missing}"
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert ds.HighBit == ds.BitsStored - 1
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    if ds.SamplesPerPixel > 1:
        assert ds.PlanarConfiguration == 0
    frames = int(ds.get("NumberOfFrames") or 1)
    expected = ds.Rows * ds.Columns * frames * ds.SamplesPerPixel * ds.BitsAllocated // 8
    assert len(ds.PixelData) == expected + expected % 2
    samples = (ds.SamplesPerPixel,) if ds.SamplesPerPixel > 1 else ()
    assert ds.pixel_array.shape == (frames,) * (frames > 1) + (ds.Rows, ds.Columns) + samples
    return ds


def test_ct_rescale_gives_hounsfield_units() -> None:
    image = read_image(CT)
    source = pydicom.dcmread(CT)
    hu = apply_modality_lut(source.pixel_array, source)
    low, high = image.value_range
    assert image.modality == "CT" and image.format == "dicom" and image.bit_depth == 16
    assert image.pixel_spacing == pytest.approx((0.661468, 0.661468))
    assert (low, high) == (-32768 - 1024, 32767 - 1024)  # stored range of signed 16 bits, in HU
    np.testing.assert_allclose(low + image.pixels[..., 0].astype(np.float64) * (high - low), hu, atol=0.01)


def test_ct_stored_values_survive_read_and_write(tmp_path: Path) -> None:
    image = read_image(CT)
    write_derived_dicom(image, tmp_path / "ct.dcm", scale=1)
    source, written = pydicom.dcmread(CT), check_derived(tmp_path / "ct.dcm")
    for keyword in (
        "BitsAllocated",
        "BitsStored",
        "PixelRepresentation",
        "PhotometricInterpretation",
        "RescaleSlope",
        "RescaleIntercept",
        "Rows",
        "Columns",
    ):
        assert written[keyword].value == source[keyword].value, keyword
    np.testing.assert_array_equal(written.pixel_array, source.pixel_array)


def test_monochrome1_is_inverted_on_read_and_restored_on_write(tmp_path: Path) -> None:
    image = read_image(CR)
    stored = pydicom.dcmread(CR).pixel_array
    assert image.photometric == "MONOCHROME1" and image.bit_depth == 10 and image.modality == "CR"
    np.testing.assert_allclose(image.pixels[..., 0], (1023 - stored) / 1023, atol=1e-6)  # brighter = larger
    assert image.value_range == (1023.0, 0.0) and image.data_range == 1023.0
    write_image(image, tmp_path / "cr.dcm")
    written = check_derived(tmp_path / "cr.dcm")
    assert written.PhotometricInterpretation == "MONOCHROME1" and written.BitsStored == 10
    np.testing.assert_array_equal(written.pixel_array, stored)


def test_ybr_jpeg_multiframe_becomes_rgb_and_is_written_as_rgb(tmp_path: Path) -> None:
    image = read_image(US)
    source = pydicom.dcmread(US)
    assert image.pixels.shape == (30, 240, 320, 3) and image.photometric == "YBR_FULL_422"
    assert image.modality == "US" and image.bit_depth == 8
    rgb = pydicom.pixels.convert_color_space(
        pydicom.pixels.pixel_array(US, raw=True), "YBR_FULL", "RGB", per_frame=True
    )  # independent route: undecoded YCbCr, converted by pydicom
    np.testing.assert_allclose(image.pixels * 255, rgb, atol=1.01)
    write_image(image, tmp_path / "us.dcm")
    written = check_derived(tmp_path / "us.dcm")
    assert (written.PhotometricInterpretation, written.SamplesPerPixel, written.BitsStored) == ("RGB", 3, 8)
    assert int(written.NumberOfFrames) == 30 and written.LossyImageCompression == "01"
    np.testing.assert_array_equal(written.pixel_array, np.rint(image.pixels * 255).astype(np.uint8))
    assert source.SOPInstanceUID != written.SOPInstanceUID


def test_uncompressed_ybr_full_becomes_rgb(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT)
    ds.Modality = "US"
    rgb = np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    ybr = pydicom.pixels.convert_color_space(rgb, "RGB", "YBR_FULL")
    ds.set_pixel_data(ybr, "YBR_FULL", 8)
    ds.save_as(tmp_path / "ybr.dcm", enforce_file_format=True)
    image = read_image(tmp_path / "ybr.dcm")
    assert image.pixels.shape == (24, 32, 3) and image.photometric == "YBR_FULL"
    np.testing.assert_allclose(image.pixels * 255, rgb, atol=2.01)  # YCbCr rounding, both ways
    write_image(image, tmp_path / "out.dcm")
    assert check_derived(tmp_path / "out.dcm").PhotometricInterpretation == "RGB"


def test_multiframe_grayscale_round_trip(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT)
    frames = np.stack([ds.pixel_array, ds.pixel_array[::-1], ds.pixel_array[:, ::-1]])
    ds.set_pixel_data(frames, "MONOCHROME2", 16)
    ds.save_as(tmp_path / "stack.dcm", enforce_file_format=True)
    image = read_image(tmp_path / "stack.dcm")
    assert image.pixels.shape == (3, 128, 128, 1) and image.is_multiframe
    write_image(image, tmp_path / "out.dcm")
    written = check_derived(tmp_path / "out.dcm")
    assert int(written.NumberOfFrames) == 3
    np.testing.assert_array_equal(written.pixel_array, frames)


def test_derived_instance_at_new_size(tmp_path: Path) -> None:
    image = read_image(CT)
    source = pydicom.dcmread(CT)
    image.dataset.add_new("LargestImagePixelValue", "SS", 1000)  # true of the source's pixels only
    upscaled = {"model": "swift-srresnet-xray-x4", "scale": (2, 2)}  # what medsr.upscale records
    pixels = np.repeat(np.repeat(image.pixels, 2, axis=0), 2, axis=1)
    big = image.with_pixels(pixels, extra={**image.extra, "medsr_upscale": upscaled})
    write_image(big, tmp_path / "x2.dcm")  # scale inferred from the sizes: 2
    ds = check_derived(tmp_path / "x2.dcm")
    assert (ds.Rows, ds.Columns) == (256, 256)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.661468 / 2] * 2, rel=1e-5)
    assert ds.SOPInstanceUID != source.SOPInstanceUID and ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert (ds.PatientID, ds.PatientName) == (source.PatientID, source.PatientName)
    assert "medsr" in ds.DerivationDescription and "swift-srresnet-xray-x4" in ds.DerivationDescription
    assert "x2" in ds.DerivationDescription
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    np.testing.assert_array_equal(ds.pixel_array[::2, ::2], source.pixel_array)
    assert "LargestImagePixelValue" not in ds


def test_imager_pixel_spacing_and_anisotropic_scale(tmp_path: Path) -> None:
    image = read_image(CR)
    image.dataset.ImagerPixelSpacing = [0.2, 0.3]
    wide = image.with_pixels(np.repeat(image.pixels, 4, axis=1))  # ultrasound-style: columns only
    write_derived_dicom(wide, tmp_path / "wide.dcm", scale=(1, 4))
    ds = check_derived(tmp_path / "wide.dcm")
    assert (ds.Rows, ds.Columns) == (440, 1760)
    assert [float(v) for v in ds.ImagerPixelSpacing] == pytest.approx([0.2, 0.075])
    assert "x1 (rows) x4 (columns)" in ds.DerivationDescription


def test_ultrasound_regions_follow_the_new_grid(tmp_path: Path) -> None:
    image = read_image(US)
    wide = image.with_pixels(np.repeat(image.pixels[:2], 2, axis=2))  # 2 frames, columns x2
    write_image(wide, tmp_path / "wide.dcm")
    ds = check_derived(tmp_path / "wide.dcm")
    assert (int(ds.NumberOfFrames), ds.Rows, ds.Columns) == (2, 240, 640)
    for old, new in zip(
        image.dataset.SequenceOfUltrasoundRegions, ds.SequenceOfUltrasoundRegions, strict=True
    ):
        assert new.PhysicalDeltaX == pytest.approx(old.PhysicalDeltaX / 2)
        assert new.PhysicalDeltaY == pytest.approx(old.PhysicalDeltaY)
        assert (new.RegionLocationMinX0, new.RegionLocationMaxX1) == (
            old.RegionLocationMinX0 * 2,
            old.RegionLocationMaxX1 * 2 + 1,
        )
        assert (new.RegionLocationMinY0, new.RegionLocationMaxY1) == (
            old.RegionLocationMinY0,
            old.RegionLocationMaxY1,
        )


def test_series_uid_map_keeps_one_new_series_per_input_series(tmp_path: Path) -> None:
    new_uid = SeriesUIDMap()
    image = read_image(CT)
    source_series = image.dataset.SeriesInstanceUID
    for name in ("a.dcm", "b.dcm"):
        write_derived_dicom(image, tmp_path / name, series_uid=new_uid(source_series))
    a, b = pydicom.dcmread(tmp_path / "a.dcm"), pydicom.dcmread(tmp_path / "b.dcm")
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != source_series
    assert a.SOPInstanceUID != b.SOPInstanceUID
    assert new_uid("1.2.3.other") != a.SeriesInstanceUID


def test_source_given_as_path(tmp_path: Path) -> None:
    image = read_image(CT)
    plain = image.with_pixels(image.pixels, dataset=None)
    with pytest.raises(ImageWriteError, match="needs a DICOM source"):
        write_derived_dicom(plain, tmp_path / "no.dcm")
    write_derived_dicom(plain, tmp_path / "yes.dcm", source=CT)
    written = check_derived(tmp_path / "yes.dcm")
    np.testing.assert_array_equal(written.pixel_array, pydicom.dcmread(CT).pixel_array)


# --- files from ../shared (skipped when it is absent) -------------------------------------------------------


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


@pytest.mark.parametrize("name", ["ct/J2K_pixelrep_mismatch.dcm", "us/JPGLosslessP14SV1_1s_1f_8b.dcm"])
def test_compressed_grayscale_matches_pydicom(name: str, tmp_path: Path) -> None:
    path = _shared(name)
    image = read_image(path)
    source = pydicom.dcmread(path)
    low, high = image.value_range
    values = low + image.pixels[..., 0].astype(np.float64) * (high - low)
    np.testing.assert_allclose(values, apply_modality_lut(source.pixel_array, source), atol=0.01)
    write_image(image, tmp_path / "out.dcm")
    np.testing.assert_array_equal(check_derived(tmp_path / "out.dcm").pixel_array, source.pixel_array)


def test_palette_colour_becomes_rgb(tmp_path: Path) -> None:
    path = _shared("us/examples_palette.dcm")
    image = read_image(path)
    source = pydicom.dcmread(path)
    expected = pydicom.pixels.apply_color_lut(source.pixel_array, source)
    assert image.pixels.shape == (*source.pixel_array.shape, 3) and image.photometric == "PALETTE COLOR"
    np.testing.assert_allclose(image.pixels, expected / np.iinfo(expected.dtype).max, atol=1e-6)
    write_image(image, tmp_path / "out.dcm")
    written = check_derived(tmp_path / "out.dcm")
    assert written.PhotometricInterpretation == "RGB" and "RedPaletteColorLookupTableData" not in written


# --- hostile headers: invalid rescale, truncated files ------------------------------------------------------


def _ct_with(tmp_path: Path, name: str = "ct.dcm", **values: str) -> Path:
    """A copy of the CT fixture with some attributes replaced by raw strings (pydicom warns while setting)."""
    ds = pydicom.dcmread(CT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom validates values as they are set; these are meant invalid
        for keyword, value in values.items():
            setattr(ds, keyword, value)
    path = tmp_path / name
    ds.save_as(path)
    return path


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("RescaleSlope", "NaN"),
        ("RescaleSlope", "inf"),
        ("RescaleSlope", "-inf"),
        ("RescaleSlope", "0"),
        ("RescaleSlope", "0.000"),
        ("RescaleIntercept", "NaN"),
        ("RescaleIntercept", "-Infinity"),
        ("RescaleIntercept", "1e400"),  # finite text, infinite number
    ],
)
def test_invalid_rescale_is_refused_in_one_line(keyword: str, value: str, tmp_path: Path) -> None:
    path = _ct_with(tmp_path, **{keyword: value})
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(info.value) == f"cannot read {path}: invalid {keyword} {value!r}"


def test_valid_rescale_still_applies_and_empty_means_identity(tmp_path: Path) -> None:
    image = read_image(_ct_with(tmp_path, RescaleSlope="2", RescaleIntercept="-5"))
    assert image.value_range == (-32768 * 2 - 5, 32767 * 2 - 5) and np.isfinite(image.pixels).all()
    image = read_image(_ct_with(tmp_path, "empty.dcm", RescaleSlope="", RescaleIntercept=""))
    assert image.value_range == (-32768, 32767)


def test_writing_with_a_zero_slope_source_is_refused(tmp_path: Path) -> None:
    image = read_image(CT)
    source = pydicom.dcmread(CT, stop_before_pixels=True)
    source.RescaleSlope = "0"
    with pytest.raises(ImageWriteError, match=r"invalid RescaleSlope '0'$"):
        write_derived_dicom(image, tmp_path / "out.dcm", source=source)
    assert list(tmp_path.iterdir()) == []


def _pixel_data_start(path: Path) -> int:
    return pydicom.dcmread(path).get_item("PixelData").value_tell


def test_dicom_cut_in_its_pixel_data_is_named_truncated(tmp_path: Path) -> None:
    data = CT.read_bytes()
    start = _pixel_data_start(CT)
    cuts = [int(len(data) * 0.6), start + 1, *range(start + 8, start + 128 * 128 * 2, 1999)]
    for cut in cuts:
        path = tmp_path / "cut.dcm"
        path.write_bytes(data[:cut])
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        reason = info.value.reason
        assert reason.startswith("truncated DICOM file: pixel data holds"), (cut, reason)
        assert "no pixel data" not in reason and "tiff" not in reason and "\n" not in str(info.value)
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(ImageReadError, match=r"pixel data holds 17,\d{3} of its 32,768 bytes"):
        read_image(path)


def test_dicom_cut_in_its_header_is_named_truncated(tmp_path: Path) -> None:
    data = CT.read_bytes()
    path = tmp_path / "cut.dcm"
    for cut in (140, 300, 1000, 2000, 6000):
        path.write_bytes(data[:cut])
        with pytest.raises(ImageReadError, match="truncated DICOM"):
            read_image(path)


def test_compressed_dicom_cut_short_is_named_truncated(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ds = pydicom.dcmread(CT)
    ds.compress(RLELossless)  # encapsulated: undefined length, where pydicom drops the whole data set at EOF
    whole = tmp_path / "rle.dcm"
    ds.save_as(whole)
    assert read_image(whole).value_range == read_image(CT).value_range
    path = tmp_path / "cut.dcm"
    path.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageReadError, match="truncated DICOM file"):
            read_image(path)
    assert caught == []  # pydicom's "End of file reached before delimiter" is not passed on
    assert capsys.readouterr().err == ""


def test_a_source_whose_sop_uids_live_only_in_its_file_meta_still_gives_a_valid_derived_file(tmp_path):
    """Some exports (a TotalSegmentator test series) leave SOPClassUID/SOPInstanceUID empty in the data set."""
    source = pydicom.dcmread(Path(__file__).parents[1] / "data" / "ct_small.dcm")
    sop_class, sop_instance = source.SOPClassUID, source.SOPInstanceUID
    source.file_meta.MediaStorageSOPClassUID, source.file_meta.MediaStorageSOPInstanceUID = sop_class, sop_instance
    source.SOPClassUID, source.SOPInstanceUID = "", ""
    source.save_as(tmp_path / "in.dcm")
    image = read_image(tmp_path / "in.dcm")
    write_image(image.with_pixels(np.repeat(np.repeat(image.pixels, 2, 0), 2, 1)), tmp_path / "out.dcm")
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.SOPClassUID == sop_class == out.file_meta.MediaStorageSOPClassUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != sop_instance
    assert out.SourceImageSequence[0].ReferencedSOPInstanceUID == sop_instance
