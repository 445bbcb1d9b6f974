"""``medsr upscale``, ``medsr models`` and the file handling behind them, on the tests/data fixtures."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

from medsr.cli import app
from medsr.infer import InferenceSettings, upscale
from medsr.infer.files import collect_sources
from medsr.io import read_image
from medsr.models import build_generator, save_model

DATA = Path(__file__).parents[1] / "data"
torch.set_num_threads(1)

CPU = InferenceSettings(device="cpu")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small Swift-SRGAN x4 with random weights, saved as a medsr checkpoint."""
    torch.manual_seed(0)
    model = build_generator("swift-srgan", in_channels=1, scale=4, num_blocks=2, num_channels=16).eval()
    return save_model(model, tmp_path_factory.mktemp("model") / "tiny-x4.safetensors", {"name": "tiny-x4"})


@pytest.fixture
def small_png(tmp_path) -> Path:
    """A 64x48 8-bit grayscale crop of a real chest X-ray fixture."""
    pixels = np.asarray(Image.open(DATA / "xray_b343e657.png").convert("L"))[200:248, 300:364]
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(pixels, "L").save(folder / "chest.png")
    return folder / "chest.png"


def invoke(*args: str):
    result = CliRunner().invoke(app, ["upscale", *args])
    return result


def test_png_8bit_stays_8bit_png_at_four_times_the_size(tiny_model, small_png, tmp_path) -> None:
    out = tmp_path / "out"
    result = invoke(str(small_png), "-o", str(out), "--model", str(tiny_model), "--device", "cpu")
    assert result.exit_code == 0, result.output
    written = out / "chest.png"
    with Image.open(written) as im:
        assert im.mode == "L" and im.size == (64 * 4, 48 * 4)
        pixels = np.asarray(im)
    expected = upscale(np.asarray(Image.open(small_png)), tiny_model, CPU)  # uint8 in -> uint8 out
    assert np.abs(pixels.astype(int) - expected.astype(int)).max() <= 1
    assert "chest" in result.output and "in size" in result.output  # the summary table
    assert sorted(p.name for p in out.iterdir()) == ["chest.png"]


def test_tiff_16bit_stays_16bit(tiny_model, tmp_path) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:56]
    values = (20000 + 15000 * np.sin(yy / 5) * np.cos(xx / 7) + rng.integers(0, 500, (40, 56))).astype(np.uint16)
    source = tmp_path / "scan.tif"
    tifffile.imwrite(source, values)
    out = tmp_path / "out"
    result = invoke(str(source), "-o", str(out), "--model", str(tiny_model), "--device", "cpu")
    assert result.exit_code == 0, result.output
    written = tifffile.imread(out / "scan.tif")
    assert written.dtype == np.uint16 and written.shape == (160, 224)
    expected = upscale(values, tiny_model, CPU)
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1
    assert len(np.unique(written)) > 256  # really 16-bit content, not 8-bit values scaled up


def test_dicom_gives_a_valid_derived_dicom(tiny_model, tmp_path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(DATA / "ct_small.dcm", folder / "slice1.dcm")
    second = pydicom.dcmread(DATA / "ct_small.dcm")
    second.SOPInstanceUID = pydicom.uid.generate_uid()
    second.save_as(folder / "slice2.dcm")
    src = pydicom.dcmread(folder / "slice1.dcm")
    out = tmp_path / "out"
    result = invoke(str(folder), "-o", str(out), "--model", str(tiny_model), "--device", "cpu")
    assert result.exit_code == 0, result.output
    one, two = (pydicom.dcmread(out / name) for name in ("slice1.dcm", "slice2.dcm"))
    for ds in (one, two):
        assert (ds.Rows, ds.Columns) == (src.Rows * 4, src.Columns * 4)
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([float(v) / 4 for v in src.PixelSpacing])
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert "tiny-x4" in ds.DerivationDescription and "x4" in ds.DerivationDescription
        assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.PatientID == src.PatientID
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID
        assert ds.SOPInstanceUID not in (src.SOPInstanceUID, second.SOPInstanceUID)
        assert (ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (
            src.BitsAllocated, src.BitsStored, src.PixelRepresentation
        )
        assert ds.pixel_array.shape == (src.Rows * 4, src.Columns * 4)
    assert one.SeriesInstanceUID == two.SeriesInstanceUID  # one new series per input series
    assert one.SOPInstanceUID != two.SOPInstanceUID
    # The stored values decode to the same HU image the API gives (rescale kept).
    expected = upscale(read_image(folder / "slice1.dcm"), tiny_model, CPU)
    low, high = expected.value_range
    hu = one.pixel_array * float(one.RescaleSlope) + float(one.RescaleIntercept)
    assert np.abs(hu - (low + expected.pixels[..., 0] * (high - low))).max() <= 1.0


def test_multiframe_dicom_is_upscaled_frame_by_frame(tiny_model, tmp_path) -> None:
    ds = pydicom.dcmread(DATA / "ct_small.dcm")
    small = ds.pixel_array[::4, ::4]  # 32x32
    frames = np.stack([small, np.roll(small, 5, axis=0), np.roll(small, 9, axis=1)])
    ds.NumberOfFrames = 3
    ds.Rows, ds.Columns = small.shape
    ds.PixelData = frames.astype(small.dtype).tobytes()
    ds.PixelSpacing = [float(v) * 4 for v in ds.PixelSpacing]
    source = tmp_path / "cine.dcm"
    ds.save_as(source)
    out = tmp_path / "out"
    result = invoke(str(source), "-o", str(out), "--model", str(tiny_model), "--device", "cpu")
    assert result.exit_code == 0, result.output
    derived = pydicom.dcmread(out / "cine.dcm")
    assert int(derived.NumberOfFrames) == 3 and (derived.Rows, derived.Columns) == (128, 128)
    expected = upscale(read_image(source), tiny_model, CPU)
    low, high = expected.value_range
    hu = derived.pixel_array * float(derived.RescaleSlope) + float(derived.RescaleIntercept)
    assert hu.shape == (3, 128, 128)
    assert np.abs(hu - (low + expected.pixels[..., 0] * (high - low))).max() <= 1.0
    assert not np.allclose(hu[0], hu[1])  # each frame its own result


def test_corrupt_file_is_skipped_named_and_exit_1(tiny_model, small_png, tmp_path) -> None:
    folder = small_png.parent
    (folder / "broken.png").write_bytes(small_png.read_bytes()[:200])  # truncated PNG
    (folder / "sub").mkdir()
    shutil.copy(small_png, folder / "sub" / "other.png")
    out = tmp_path / "out"
    result = invoke(str(folder), "-o", str(out), "--model", str(tiny_model), "--device", "cpu")
    assert result.exit_code == 1
    assert "broken.png" in result.output and "1 file(s) failed" in result.output
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["chest.png", "sub/other.png"]  # the others written, nothing partial or temporary


def test_globs_formats_and_missing_inputs(tiny_model, small_png, tmp_path) -> None:
    shutil.copy(DATA / "xray_bd10d5e2_512.jpg", small_png.parent / "photo.jpg")
    Image.open(small_png.parent / "photo.jpg").resize((40, 40)).save(small_png.parent / "photo.jpg", quality=90)
    out = tmp_path / "out"
    pattern = str(small_png.parent / "*.jpg")
    result = invoke(pattern, str(tmp_path / "nope.png"), "-o", str(out), "--model", str(tiny_model),
                    "--device", "cpu")
    assert result.exit_code == 1
    assert "nope.png" in result.output
    with Image.open(out / "photo.png") as im:  # JPEG in -> lossless PNG out
        assert im.format == "PNG" and im.size == (160, 160)
    result = invoke(str(small_png), "-o", str(out), "--model", str(tiny_model), "--device", "cpu",
                    "--format", "tiff")
    assert result.exit_code == 0, result.output
    written = tifffile.imread(out / "chest.tiff")
    assert written.dtype == np.uint8 and written.shape == (192, 256)


def test_batch_size_and_onnxruntime_give_the_same_files(tiny_model, small_png, tmp_path) -> None:
    folder = small_png.parent
    for i in range(3):
        img = np.asarray(Image.open(small_png))
        Image.fromarray(np.roll(img, 7 * i, axis=1)).save(folder / f"shift{i}.png")
    runs = {}
    for name, extra in [("one", []), ("batched", ["--batch-size", "3"]), ("ort", ["--backend", "onnxruntime"])]:
        out = tmp_path / name
        result = invoke(str(folder), "-o", str(out), "--model", str(tiny_model), "--device", "cpu", *extra)
        assert result.exit_code == 0, result.output
        runs[name] = {p.name: np.asarray(Image.open(p)).astype(int) for p in sorted(out.glob("*.png"))}
    assert len(runs["one"]) == 4
    for name in ("batched", "ort"):
        assert runs[name].keys() == runs["one"].keys()
        for key, pixels in runs["one"].items():
            assert np.abs(runs[name][key] - pixels).max() <= 1  # equal up to one rounding step


def test_output_never_overwrites_the_input(tiny_model, small_png) -> None:
    result = invoke(str(small_png), "-o", str(small_png.parent), "--model", str(tiny_model), "--device", "cpu")
    assert result.exit_code == 1
    assert "overwrite the input" in result.output
    with Image.open(small_png) as im:
        assert im.size == (64, 48)


def test_collect_sources_keeps_folder_structure_and_drops_duplicates(small_png) -> None:
    folder = small_png.parent
    (folder / "deep").mkdir()
    shutil.copy(small_png, folder / "deep" / "b.png")
    (folder / "notes.txt").write_text("not an image")
    sources, failures = collect_sources([folder, small_png, str(folder / "*.png")])
    assert not failures
    assert [str(s.relative) for s in sources] == ["chest.png", "deep/b.png"]


def test_bad_model_is_one_line_and_exit_2(small_png, tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "medsr", "upscale", str(small_png), "-o", str(tmp_path / "o"), "--model",
         str(tmp_path / "missing.safetensors")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    message = proc.stderr.replace("\n", "")  # rich may wrap the one line at the terminal width
    assert message.startswith("medsr: cannot load model") and "missing.safetensors" in message
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("columns", ["200", "80"])
def test_models_command_lists_the_bundled_models_with_their_test_scores(columns: str) -> None:
    from medsr.models import list_bundled_models

    result = CliRunner(env={"COLUMNS": columns}).invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    # at 80 columns nothing is cut or folded mid-word: every line fits, every name and score is whole
    assert max(len(line) for line in result.output.splitlines()) <= int(columns)
    bundled = list_bundled_models()
    assert {"swift-srresnet-xray-x4", "swift-srgan-xray-x4"} <= {entry["name"] for entry in bundled}
    for entry in bundled:
        test = entry["meta"]["metrics"]["test"]
        assert entry["card"] is not None
        row = next(line.split() for line in result.output.splitlines()
                   if line.split() and line.split()[0] == entry["name"])
        baseline = "input" if entry["meta"]["scale"] == [1, 1] else "bicubic"
        assert row[3:6] == [f"{test['psnr']:.2f}", baseline, f"{test['bicubic_psnr']:.2f}"], row
