"""Hostile inputs, round two (issue 29): outputs that are devices, blank or NaN results, array layouts, stale
temporary files, EXIF orientation, pydicom warnings on write, errors that name the wrong side, frame memory.

Every case is built at test time in a temporary folder. Commands run in this process through ``medsr.cli.main``
(as the console script does), so exit statuses and printed lines are the user's.
"""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image

from medsr.atomic import atomic_path, remove_stale_temporaries
from medsr.cli import main
from medsr.errors import ArrayError, ConfigError, ImageWriteError
from medsr.io import read_image, write_image

DATA = Path(__file__).parent / "data"
XRAY = DATA / "xray_b343e657.png"
CT = DATA / "ct_small.dcm"
MODEL = "xray-x4"


def _good_png(folder: Path, name: str = "good.png", size: int = 24) -> Path:
    """A crop of a real chest X-ray, 8-bit grey."""
    folder.mkdir(parents=True, exist_ok=True)
    crop = np.asarray(Image.open(XRAY).convert("L"))[200 : 200 + size, 300 : 300 + size]
    path = folder / name
    Image.fromarray(crop).save(path)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, list[str]]:
    """Run ``medsr ARGV`` as the console script does: (exit status, printed lines, stdout then stderr)."""
    capsys.readouterr()
    saved = sys.argv
    sys.argv = ["medsr", *map(str, argv)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return code, [line for line in (captured.out + captured.err).splitlines() if line.strip()]


def _device(folder: Path) -> Path:
    """A character device node (1, 7: the kernel's /dev/full) made in ``folder``; skips where mknod is refused."""
    path = folder / "full"
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 7))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return path


def _special(kind: str, folder: Path) -> Path:
    if kind == "device":
        return _device(folder)
    path = folder / kind
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    return path


def _still(path: Path, kind: str) -> bool:
    mode = os.stat(path).st_mode
    return {"device": stat.S_ISCHR, "fifo": stat.S_ISFIFO, "folder": stat.S_ISDIR}[kind](mode)


# --- D1: an output that exists and is not a regular file is refused before any work ---------------------------

FILE_OUTPUTS = {
    "prepare": lambda src, target: ["prepare", src, "--out", target],
    "baseline": lambda src, target: ["baseline", src, "--out", target],
    "evaluate -o": lambda src, target: ["evaluate", src, "-m", MODEL, "--device", "cpu", "--out", target],
    "evaluate --json": lambda src, target: ["evaluate", src, "-m", MODEL, "--device", "cpu", "--json", target],
    "export": lambda src, target: ["export", MODEL, "--onnx", target],
}


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
@pytest.mark.parametrize("command", list(FILE_OUTPUTS))
def test_a_special_file_as_output_is_refused_before_any_work(
    command: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _good_png(tmp_path / "in")
    target = _special(kind, tmp_path)
    code, lines = run_cli(capsys, *FILE_OUTPUTS[command](source, target))
    assert code == 2, lines
    described = {"device": "a character device", "fifo": "a FIFO", "folder": "a folder"}[kind]
    assert lines == [f"medsr: {FILE_OUTPUTS[command]('', '')[-2]} {target}: it exists and is {described}, "
                     "not a regular file; give a file path"]
    assert _still(target, kind)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in", target.name])  # no skipped list, no temp


@pytest.mark.parametrize("kind", ["device", "fifo", "file"])
@pytest.mark.parametrize("command", ["upscale", "degrade"])
def test_a_non_folder_as_output_folder_is_refused(
    command: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _good_png(tmp_path / "in")
    if kind == "file":
        target = tmp_path / "file"
        target.write_bytes(b"keep")
    else:
        target = _special(kind, tmp_path)
    extra = ["-m", MODEL, "--device", "cpu"] if command == "upscale" else []
    code, lines = run_cli(capsys, command, source, "-o", target, *extra)
    assert code == 2, lines
    described = {"device": "a character device", "fifo": "a FIFO", "file": "a file"}[kind]
    assert lines == [f"medsr: --out {target}: it exists and is {described}, not a folder; give a folder path"]
    if kind == "file":
        assert target.read_bytes() == b"keep"
    else:
        assert _still(target, kind)


def test_atomic_writes_never_replace_a_device_or_fifo(tmp_path: Path) -> None:
    for kind in ("fifo", "device"):
        try:
            target = _special(kind, tmp_path)
        except pytest.skip.Exception:
            continue
        with pytest.raises(OSError, match=f"exists and is a {'FIFO' if kind == 'fifo' else 'character device'}"):
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"x")
        assert _still(target, kind)
    image = read_image(XRAY)
    fifo = tmp_path / "fifo"
    with pytest.raises(ImageWriteError, match=r"^cannot write .*fifo: it exists and is a FIFO, not a regular file$"):
        write_image(image, fifo, format="png")
    assert _still(fifo, "fifo")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".medsr-")] == []


def test_a_fifo_inside_the_output_folder_is_one_failed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _good_png(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "good.png")
    code, lines = run_cli(capsys, "upscale", source, "-o", out, "-m", MODEL, "--device", "cpu")
    assert code == 1
    assert f"  {source}: cannot write {out / 'good.png'}: it exists and is a FIFO, not a regular file" in lines
    assert _still(out / "good.png", "fifo")


# --- D8: an error names the side that failed ------------------------------------------------------------------


def test_write_failures_name_the_output_not_the_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _good_png(tmp_path / "in")
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"a file where a folder must go")
    for command, extra in (("upscale", ["-m", MODEL, "--device", "cpu"]), ("degrade", [])):
        code, lines = run_cli(capsys, command, source, "-o", blocker / "sub", *extra)
        assert code == 1, lines
        failure = [line for line in lines if line.startswith(f"  {source}: ")]
        assert failure == [f"  {source}: cannot write {blocker / 'sub' / 'good.png'}: Not a directory"], lines
    code, lines = run_cli(capsys, "upscale", source, "-o", "/proc/medsr-no-such/x", "-m", MODEL, "--device", "cpu")
    assert code == 1
    assert f"  {source}: cannot write /proc/medsr-no-such/x/good.png: No such file or directory" in lines


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a 0555 folder")
def test_a_read_only_output_folder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _good_png(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    try:
        code, lines = run_cli(capsys, "upscale", source, "-o", out, "-m", MODEL, "--device", "cpu")
    finally:
        out.chmod(0o755)
    assert code == 1
    assert f"  {source}: cannot write {out / 'good.png'}: Permission denied" in lines


def test_an_unwritable_dicom_encoding_is_an_output_error(tmp_path: Path) -> None:
    image = read_image(CT)
    image.dataset.BitsAllocated = 32
    with pytest.raises(ImageWriteError) as info:
        write_image(image, tmp_path / "x.dcm")
    assert str(info.value) == (f"cannot write {tmp_path / 'x.dcm'}: the source's BitsAllocated 32 cannot be "
                               "written (medsr writes 8 or 16)")


# --- D5: temporary files of a killed run are removed by the next run into the folder ---------------------------


def test_a_killed_writers_temporary_file_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from medsr.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"), str(tmp_path / "x.png")], env={**os.environ})
    assert killed.returncode == -9
    (left,) = [p.name for p in tmp_path.iterdir()]
    assert left.startswith(".medsr-") and left.endswith(".tmp.png")
    live = tmp_path / ".medsr-0123abcd.tmp.png"
    live.write_bytes(b"")
    keep = [tmp_path / name for name in (".medsr-notes.txt", "a.tmp.png", ".medsr-0123abcd.tmp.png.bak")]
    for path in keep:
        path.write_bytes(b"user's")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as atomic_path holds its own while it writes
        removed = remove_stale_temporaries(tmp_path, before=time.time() + 1)
    assert [p.name for p in removed] == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, *(p.name for p in keep)])


def test_the_next_run_into_the_folder_removes_stale_temporaries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _good_png(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    stale, fresh = out / ".medsr-deadbeef.tmp.png", out / ".medsr-feedf00d.tmp"
    for path in (stale, fresh):
        path.write_bytes(b"")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))  # from before this run: a killed run's
    code, lines = run_cli(capsys, "upscale", source, "-o", out, "-m", MODEL, "--device", "cpu")
    assert code == 0, lines
    assert sorted(p.name for p in out.iterdir()) == [fresh.name, "good.png"]  # fresh: maybe a live run's


# --- D3, D4: the Python API takes documented array layouts and finite values in [0, 1], and says so otherwise ---


def _lr(shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.2, 0.8, size=shape).astype(np.float32)


@pytest.mark.parametrize(("poison", "count"), [(np.nan, 1), (np.inf, 1), (-np.inf, 3)])
def test_nan_or_inf_is_refused_not_spread(poison: float, count: int) -> None:
    import medsr

    lr = _lr((16, 16))
    lr.flat[[5, 77, 200][:count]] = poison
    with pytest.raises(ArrayError, match=rf"shape \(16, 16\), dtype float32: {count} value\(s\) are NaN or infinite"):
        medsr.upscale(lr, MODEL)


def test_floats_outside_zero_one_are_refused_not_clipped() -> None:
    import medsr

    lr = _lr((16, 16)) * 1000
    with pytest.raises(ArrayError, match=r"floats must lie in \[0, 1\], these span 2\d\d\.\d+\.\.7\d\d\.\d+"):
        medsr.upscale(lr, MODEL)
    with pytest.raises(ArrayError, match=r"span -0\.29\d+\.\.0\.29"):
        medsr.upscale(_lr((16, 16)) - 0.5, MODEL)


@pytest.mark.parametrize(("shape", "words"), [
    ((1, 2, 32, 32), r"shape \(1, 2, 32, 32\), dtype float32: the last axis holds the channels and must be 1 or 3, "
                     r"not 32"),
    ((3, 32, 32), r"shape \(3, 32, 32\).*not 32 \(channels first\? pass np.moveaxis\(a, -3, -1\)\)"),
    ((32, 32, 5), r"shape \(32, 32, 5\).*must be 1 or 3, not 5"),
    ((32,), r"shape \(32,\).*expected \(H, W\), \(H, W, C\) or \(F, H, W, C\)"),
    ((1, 1, 8, 8, 1), r"shape \(1, 1, 8, 8, 1\).*expected"),
    ((0, 5), r"shape \(0, 5\), dtype float32: it holds no pixels"),
    ((4, 0, 1), r"shape \(4, 0, 1\).*no pixels"),
    ((0, 8, 8, 1), r"shape \(0, 8, 8, 1\).*no pixels"),
])
def test_array_layouts_outside_the_rules_are_refused_with_their_shape(shape: tuple[int, ...], words: str) -> None:
    import medsr

    with pytest.raises(ArrayError, match=words):
        medsr.upscale(np.full(shape, 0.5, dtype=np.float32), MODEL)


def test_the_documented_layouts_keep_their_layout_and_agree() -> None:
    import medsr

    lr = _lr((12, 10))
    two = medsr.upscale(lr, MODEL)
    three = medsr.upscale(lr[:, :, None], MODEL)
    four = medsr.upscale(np.stack([lr[:, :, None], lr[::-1, :, None]]), MODEL)
    assert two.shape == (48, 40) and three.shape == (48, 40, 1) and four.shape == (2, 48, 40, 1)
    np.testing.assert_array_equal(two, three[:, :, 0])
    np.testing.assert_array_equal(two, four[0, :, :, 0])
    as_uint8 = medsr.upscale(np.rint(lr * 255).astype(np.uint8), MODEL)
    assert as_uint8.dtype == np.uint8 and as_uint8.shape == (48, 40)
    for dtype in (np.int16, bool, complex):
        with pytest.raises(ArrayError, match=r"shape \(12, 10\)"):
            medsr.upscale(np.zeros((12, 10), dtype=dtype), MODEL)


def test_an_empty_model_name_says_so() -> None:
    from medsr.models import load_model

    with pytest.raises(ConfigError, match=r"^the model name is empty; give a bundled model \(.*xray-x4.*\)"):
        load_model("")


# --- D2: any finite non-zero RescaleSlope, negative included; values and clipping in the file's units ----------


def _negative_slope_twin(folder: Path, intercept: float = 0.0) -> tuple[Path, np.ndarray]:
    """tests/data/ct_small.dcm stored again with RescaleSlope -1 (same HU when intercept is 0); its HU."""
    ds = pydicom.dcmread(CT)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    ds.RescaleSlope, ds.RescaleIntercept = -1, intercept
    if intercept == 0:
        ds.PixelData = np.rint(-hu).astype(np.int16).tobytes()
    path = folder / "negative.dcm"
    ds.save_as(path)
    stored = ds.pixel_array
    return path, stored * -1.0 + intercept


def _hu(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_a_negative_slope_reads_as_the_same_values_brighter_up(tmp_path: Path) -> None:
    twin, hu = _negative_slope_twin(tmp_path)
    np.testing.assert_array_equal(hu, _hu(CT))
    image, original = read_image(twin), read_image(CT)
    low, high = image.value_range
    assert low < high  # larger working value = larger HU, as for a positive slope
    values = low + image.pixels[..., 0].astype(np.float64) * (high - low)
    np.testing.assert_allclose(values, hu, atol=0.01)
    assert np.corrcoef(image.pixels.ravel(), original.pixels.ravel())[0, 1] > 0.999
    write_image(image, tmp_path / "back.dcm")
    np.testing.assert_array_equal(pydicom.dcmread(tmp_path / "back.dcm").pixel_array, pydicom.dcmread(twin).pixel_array)


@pytest.mark.parametrize("model", ["ct-sparse-view", MODEL])
def test_a_negative_slope_upscales_like_its_positive_twin(model: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    twin, hu = _negative_slope_twin(tmp_path / "in")
    code, lines = run_cli(capsys, "upscale", twin, CT, "-o", tmp_path / "out", "-m", model, "--device", "cpu")
    assert code == 0, lines
    negative, positive = _hu(tmp_path / "out" / "negative.dcm"), _hu(tmp_path / "out" / "ct_small.dcm")
    assert hu.min() <= negative.min() and negative.max() <= hu.max()  # clipped in HU, to the input's HU
    tolerance = 1.0 if model == "ct-sparse-view" else 0.02 * (hu.max() - hu.min())
    assert np.abs(negative - positive).mean() < tolerance


def test_values_outside_a_models_range_are_refused_not_blanked(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    twin, hu = _negative_slope_twin(tmp_path, intercept=-1024)  # the issue's file: -3215..-1152 HU
    assert hu.max() < -1024
    code, lines = run_cli(capsys, "upscale", twin, "-o", tmp_path / "out", "-m", "ct-sparse-view", "--device", "cpu")
    assert code == 1
    assert (f"  {twin}: its values {hu.min():g}..{hu.max():g} lie outside the model's range -1024..3071 (0.0% of "
            "pixels inside), so the result would be blank; check RescaleSlope/RescaleIntercept or choose another "
            "model") in lines
    assert not (tmp_path / "out" / "negative.dcm").exists()


def test_the_api_refuses_a_blank_result_and_keeps_the_files_range(tmp_path: Path) -> None:
    import medsr

    twin, _ = _negative_slope_twin(tmp_path, intercept=-1024)
    with pytest.raises(ConfigError, match=r"lie outside the model's range -1024\.\.3071 \(0\.0% of pixels inside\)"):
        medsr.upscale(twin, "ct-sparse-view")
    ds = pydicom.dcmread(CT)
    ds.RescaleIntercept = -1200  # the darkest 176 stored values now lie below the model's -1024
    ds.save_as(tmp_path / "dark.dcm")
    hu = _hu(tmp_path / "dark.dcm")
    assert (hu < -1024).mean() > 0.01
    result = medsr.upscale(tmp_path / "dark.dcm", "ct-sparse-view")
    low, high = result.value_range
    values = low + result.pixels.astype(np.float64) * (high - low)
    assert hu.min() - 0.01 <= values.min() and values.max() <= hu.max() + 0.01


# --- D9: a multi-frame file streams its frames through the model and the writer ------------------------------


def _cine(path: Path, frames: int, side: int) -> None:
    """A colour ultrasound cine of ``frames`` frames, ``side`` pixels square, cut from the chest X-ray."""
    grey = np.asarray(Image.open(XRAY).convert("L"))
    ds = pydicom.dcmread(DATA / "us_ybr_color.dcm")
    stack = np.stack([grey[i : i + side, 100 + i : 100 + i + side] for i in range(frames)])
    colour = np.stack([stack, stack // 2 + 60, 255 - stack], axis=-1).astype(np.uint8)
    for keyword in ("PixelData", "NumberOfFrames", "FrameIncrementPointer"):
        ds.pop(keyword, None)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.set_pixel_data(colour, "RGB", 8)
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("fmt", ["dcm", "tiff"])
def test_a_cine_never_holds_its_float_output_whole(fmt: str, tmp_path: Path) -> None:
    import tracemalloc

    from medsr.infer import InferenceSettings
    from medsr.infer.files import Source, upscale_files
    from medsr.models import load_model

    frames, side = 24, 48
    _cine(tmp_path / "cine.dcm", frames, side)
    model = load_model("ultrasound-lateral-x4")  # x4 along x
    float_output = frames * side * side * 4 * 3 * 4  # (F, H, 4W, 3) float32: 2.65 MB; held whole (as a list,
    # then stacked) it took twice that; streamed, the input (a quarter) and the stored bytes (a quarter) remain
    settings = InferenceSettings(device="cpu")
    list(upscale_files([Source(tmp_path / "cine.dcm", Path("warm.dcm"))], tmp_path / "warm", model,
                       settings=settings))  # model preparation and memory probes: not part of the measure
    tracemalloc.start()
    try:
        (outcome,) = upscale_files([Source(tmp_path / "cine.dcm", Path("cine.dcm"))], tmp_path / "out", model,
                                   fmt=fmt, settings=settings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.error is None and outcome.frames == frames
    assert peak < float_output, f"peak {peak / 1e6:.2f} MB of Python/numpy memory"
    whole = read_image(outcome.target)
    assert whole.pixels.shape == (frames, side, 4 * side, 3)
    for index in (0, frames // 2, frames - 1):  # each frame as a one-frame run makes it
        one = medsr_upscale_frame(tmp_path / "cine.dcm", index, model)
        np.testing.assert_allclose(whole.pixels[index], one, atol=0.5 / 255)


def medsr_upscale_frame(path: Path, index: int, model: object) -> np.ndarray:
    import medsr

    image = read_image(path)
    frame = image.with_pixels(image.pixels[index])
    return medsr.upscale(frame, model).pixels


# --- D6: EXIF (and TIFF) orientation applied on read: the pixels upright, as every viewer shows them --------------

_INVERSE = {6: 8, 8: 6}  # the others are their own inverse
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _upright() -> np.ndarray:
    """40 rows x 24 columns, no symmetry: a steep ramp down the rows, a gentle one across, a bright corner."""
    rows, columns = np.mgrid[0:40, 0:24]
    image = 20 + 4 * rows + 2 * columns
    image[:8, :6] = 250
    return image.astype(np.uint8)


def _stored(orientation: int) -> Image.Image:
    """The image a camera would store so that a viewer applying ``orientation`` shows :func:`_upright`."""
    upright = Image.fromarray(_upright())
    if orientation == 1:
        return upright
    return upright.transpose(_TRANSPOSE[_INVERSE.get(orientation, orientation)])


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_is_read_upright_for_every_exif_orientation(orientation: int, tmp_path: Path) -> None:
    path = tmp_path / f"o{orientation}.jpg"
    _stored(orientation).save(path, quality=95, exif=_exif(orientation))
    pixels = read_image(path).pixels[..., 0] * 255
    assert pixels.shape == (40, 24)
    assert np.abs(pixels - _upright()).mean() < 3  # JPEG error only; any wrong turn is off by tens of levels
    for wrong in (2, 3, 4):  # the check tells a mirrored or half-turned image apart
        assert np.abs(pixels - np.asarray(Image.fromarray(_upright()).transpose(_TRANSPOSE[wrong]))).mean() > 20


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_png_and_tiff_orientation_is_applied_too(orientation: int, tmp_path: Path) -> None:
    stored = _stored(orientation)
    stored.save(tmp_path / "a.png", exif=_exif(orientation))
    tifffile.imwrite(tmp_path / "a.tiff", np.asarray(stored), extratags=[(0x0112, "H", 1, orientation, True)])
    for name in ("a.png", "a.tiff"):
        np.testing.assert_array_equal(np.rint(read_image(tmp_path / name).pixels[..., 0] * 255), _upright(),
                                      err_msg=name)


def test_an_upscaled_rotated_jpeg_is_written_upright(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _stored(6).save(tmp_path / "phone.jpg", quality=95, exif=_exif(6))
    code, lines = run_cli(capsys, "upscale", tmp_path / "phone.jpg", "-o", tmp_path / "out", "-m", MODEL,
                          "--device", "cpu")
    assert code == 0, lines
    with Image.open(tmp_path / "out" / "phone.png") as written:
        assert written.size == (4 * 24, 4 * 40)  # (width, height): upright, as the input is shown
        assert written.getexif().get(0x0112, 1) == 1
        small = np.asarray(written.convert("L").resize((24, 40), Image.Resampling.BOX), dtype=np.float64)
    assert np.abs(small - _upright()).mean() < 6


# --- D7: values a derived DICOM copies are made valid (and said so), pydicom's warnings never printed ------------


def _sloppy_dicom(path: Path) -> None:
    """ct_small.dcm with the faults scanners leave: an over-long SH, a CS with '/', an invalid 3rd Image Type
    value (and a 4th after it), an invalid UID."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns as the bad values are set: that is the point
        ds = pydicom.dcmread(CT)
        ds.AccessionNumber = "ACC-2026-000000012345"  # SH: 16 characters at most
        ds.BodyPartExamined = "ABDOM/RAD"  # CS: no '/'
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL/HELIX", "0001"]
        ds.StudyInstanceUID = "1.2.03.4"  # UI: no leading zero in a component
        ds.save_as(path)


def test_invalid_copied_values_are_fixed_and_noted_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _sloppy_dicom(tmp_path / "sloppy.dcm")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        code, lines = run_cli(capsys, "upscale", tmp_path / "sloppy.dcm", "-o", tmp_path / "out", "-m", MODEL,
                              "--device", "cpu")
    assert code == 0, lines
    assert [str(w.message) for w in shown if "pydicom" in w.filename] == []
    assert not [line for line in lines if "UserWarning" in line or "pydicom" in line or "warn_and_log" in line]
    notes = [line for line in lines if line.startswith("note: ")]
    assert notes == [f"note: {tmp_path / 'sloppy.dcm'}: ImageType value 'AXIAL/HELIX' dropped with the 1 value(s) "
                     "after it (not a valid CS); AccessionNumber truncated to 16 characters; BodyPartExamined "
                     "'ABDOM/RAD' emptied (not a valid CS); and 1 more"]
    written = pydicom.dcmread(tmp_path / "out" / "sloppy.dcm")
    assert written.AccessionNumber == "ACC-2026-0000000"
    assert written.BodyPartExamined == ""
    assert list(written.ImageType) == ["DERIVED", "SECONDARY"]
    assert written.StudyInstanceUID == "1.2.03.4"  # kept: the study must stay one study


def test_the_writer_returns_every_note(tmp_path: Path) -> None:
    from medsr.io.dicom import write_derived_dicom

    _sloppy_dicom(tmp_path / "sloppy.dcm")
    notes = write_derived_dicom(read_image(tmp_path / "sloppy.dcm"), tmp_path / "x.dcm")
    assert notes[-1] == "StudyInstanceUID '1.2.03.4' kept, though not a valid UI (other objects refer to it)"
    assert len(notes) == 4


@pytest.mark.skipif(not (DATA.parent.parent.parent / "shared/data/dicom/us/gdcm-US-ALOKA-16.dcm").exists(),
                    reason="../shared/data is not here")
def test_the_aloka_file_of_the_issue_writes_without_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    source = DATA.parent.parent.parent / "shared/data/dicom/us/gdcm-US-ALOKA-16.dcm"
    image = read_image(source)
    small = image.with_pixels(image.pixels[100:132, 200:232])  # the header is what matters; 32x32 is quick
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        notes = write_image(medsr_upscale(small), tmp_path / "aloka.dcm")
    assert [str(w.message) for w in shown] == []
    assert notes == ["ImageType value 'ABDOM/RAD' dropped with the 1 value(s) after it (not a valid CS)"]


def medsr_upscale(image: object) -> object:
    import medsr

    return medsr.upscale(image, "ultrasound-lateral-x4")
