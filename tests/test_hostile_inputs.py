"""Every command over a folder of hostile files built at test time: one line per bad file, good files written.

The corpus (:func:`build_corpus`) mixes a few good images with broken, odd and too-small ones and with entries
a folder scan must pass over (a FIFO, a symlink loop, a folder named like an image). Each command runs once
over the whole folder, all of them one after another in one fresh process with a timeout (so a blocking read
fails the test instead of hanging it, and the import is paid once). The checks are the same for all commands:
exit status 1, no traceback or library warning, each bad file named (escaped as :func:`medsr.errors.escape`
does) on exactly one line, every good file written whole at the right size, no temporary or empty file left.
Tests at the end check the same rules through the Python API.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.encaps import encapsulate

import medsr
from medsr.degrade import degrade_image
from medsr.errors import ImageReadError, ImageWriteError, escape
from medsr.evaluate import output_names
from medsr.infer import InferenceSettings
from medsr.io import read_image, write_image
from medsr.io.image import MedicalImage
from medsr.protocol import Protocol

DATA = Path(__file__).parent / "data"
XRAY = DATA / "xray_b343e657.png"
CT = DATA / "ct_small.dcm"
SIZE = 32  # side of the good images: big enough for x4, small enough to upscale in a blink


@dataclass(frozen=True)
class Kind:
    """One corpus entry: its file name, what every command must do with it, and why it is there."""

    name: str
    fate: str  # good: read and written; bad: named as failed; small: under x4's minimum; skipped: passed over by
    # a folder scan; special: passed over by a folder scan, named as failed when given on the command line
    what: str


# --- building blocks ------------------------------------------------------------------------------------------


def _xray(height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """A crop of a real chest X-ray, 8-bit grayscale."""
    return np.asarray(Image.open(XRAY).convert("L"))[200 : 200 + height, 300 : 300 + width]


def _png_bytes(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _png_with_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (a valid CRC: a decompression bomb's header)."""
    data = bytearray(_png_bytes(Image.new("L", (1, 1))))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_with_colour16() -> bytes:
    """A 4x4 16-bit RGB PNG, written by hand (Pillow cannot)."""
    rows = b"".join(b"\x00" + bytes(4 * 3 * 2) for _ in range(4))
    header = struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _tiff_bytes(array: np.ndarray, **options: object) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def _tiff_with_tags(array: np.ndarray, **tags: int) -> bytes:
    """An uncompressed TIFF whose size tags (``width=``, ``length=``) are patched; the strip stays as it is."""
    codes = {256: tags.get("width"), 257: tags.get("length")}
    data = bytearray(_tiff_bytes(array))
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        code, _ = struct.unpack_from("<HH", data, entry)
        if codes.get(code) is not None:
            struct.pack_into("<HHII", data, entry, code, 4, 1, codes[code])  # one LONG
    return bytes(data)


def _jpeg_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _dicom(size: int = SIZE, **changes: object) -> pydicom.Dataset:
    """The CT fixture cropped to ``size`` x ``size``, with attributes changed (None deletes one)."""
    ds = pydicom.dcmread(CT)
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[:size, :size]).tobytes()
    ds.Rows = ds.Columns = size
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def _dicom_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _dicom_syntax(uid: str, encapsulated: bool) -> bytes:
    """The DICOM under transfer syntax ``uid``, its raw pixels as one (invalid) fragment when ``encapsulated``."""
    ds = _dicom()
    ds.file_meta.TransferSyntaxUID = uid
    if encapsulated:
        ds.PixelData = encapsulate([ds.PixelData])
    return _dicom_bytes(ds)


def _one_bit_dicom() -> bytes:
    ds = _dicom(BitsAllocated=1, BitsStored=1, HighBit=0, PixelRepresentation=0, RescaleSlope=1,
                RescaleIntercept=0)
    ds.PixelData = np.packbits(_xray() > np.median(_xray()), bitorder="little").tobytes()
    return _dicom_bytes(ds)


def _cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


# --- the corpus -------------------------------------------------------------------------------------------------

PNG = _png_bytes(Image.fromarray(_xray()))
JPEG = _jpeg_bytes(Image.fromarray(_xray()))
TIFF16 = _tiff_bytes(_xray().astype(np.uint16) * 257)
DICOM = _dicom_bytes(_dicom())
LONG = "long-" + "n" * 230 + ".png"  # 239 characters: the output's temporary name must not grow from it

# name -> (fate, what, bytes); "small" images are named WxH so the expected message can be checked.
FILES: dict[str, tuple[str, str, Callable[[], bytes]]] = {
    # good images, some of odd kinds
    "good.png": ("good", "8-bit grayscale PNG", lambda: PNG),
    "good16.tif": ("good", "16-bit TIFF", lambda: TIFF16),
    "good_ct.dcm": ("good", "CT DICOM", lambda: DICOM),
    "photo.jpg": ("good", "JPEG", lambda: JPEG),
    "bits1.png": ("good", "1-bit PNG", lambda: _png_bytes(Image.fromarray(_xray() > np.median(_xray())))),
    "bits12.tif": ("good", "12-bit values in a 16-bit TIFF", lambda: _tiff_bytes(_xray().astype(np.uint16) * 16)),
    "rgba.png": ("good", "RGBA PNG", lambda: _png_bytes(Image.fromarray(_xray()).convert("RGBA"))),
    "la.png": ("good", "grey + alpha PNG", lambda: _png_bytes(Image.fromarray(_xray()).convert("LA"))),
    "palette.png": ("good", "palette (P) PNG", lambda: _png_bytes(Image.fromarray(_xray()).convert("P"))),
    "cmyk.jpg": ("good", "CMYK JPEG", lambda: _jpeg_bytes(Image.fromarray(_xray()).convert("CMYK"))),
    "pages.tif": ("good", "3-page TIFF", lambda: _tiff_bytes(np.stack([_xray()] * 3), photometric="minisblack")),
    "png_named.dcm": ("good", "PNG bytes named .dcm", lambda: PNG),
    "dicom_named.png": ("good", "DICOM named .png", lambda: DICOM),
    "dicom_1bit.dcm": ("good", "DICOM with BitsAllocated 1", _one_bit_dicom),
    "ünïcode ☢.png": ("good", "unicode name", lambda: PNG),
    "-leading-dash.png": ("good", "name starting with a dash", lambda: PNG),
    LONG: ("good", "239-character name", lambda: PNG),
    # not images at all, or cut short
    "empty.png": ("bad", "zero bytes", lambda: b""),
    "empty.dcm": ("bad", "zero bytes named .dcm", lambda: b""),
    "text.png": ("bad", "text named .png", lambda: b"not an image\n" * 20),
    "gif_named.png": ("bad", "GIF named .png", lambda: b"GIF89a" + bytes(40)),
    "png_cut_20.png": ("bad", "PNG cut inside its header", lambda: PNG[:20]),
    "png_cut_half.png": ("bad", "PNG cut in half", lambda: _cut(PNG, 0.5)),
    "png_cut_idat.png": ("bad", "PNG cut at 90%", lambda: _cut(PNG, 0.9)),
    "jpeg_soi.jpg": ("bad", "JPEG marker only", lambda: JPEG[:3]),
    "jpeg_cut_half.jpg": ("bad", "JPEG cut in half", lambda: _cut(JPEG, 0.5)),
    "tiff_magic.tif": ("bad", "TIFF magic only", lambda: b"II*\x00"),
    "tiff_cut_half.tif": ("bad", "TIFF cut inside its pixels", lambda: _cut(TIFF16, 0.5)),
    "dicom_preamble.dcm": ("bad", "DICOM preamble only", lambda: bytes(128) + b"DICM"),
    "dicom_cut_header.dcm": ("bad", "DICOM cut in its header", lambda: DICOM[:300]),
    "dicom_cut_pixels.dcm": ("bad", "DICOM cut in its pixel data", lambda: _cut(DICOM, 0.8)),
    # decompression bombs and sizes that do not add up
    "bomb.png": ("bad", "PNG claiming 100000x100000", lambda: _png_with_size(100_000, 100_000)),
    "bomb.tif": ("bad", "TIFF claiming 100000x100000", lambda: _tiff_with_tags(
        _xray(), width=100_000, length=100_000)),
    "zero_height.png": ("bad", "PNG claiming 0 rows", lambda: _png_with_size(8, 0)),
    "zero_height.tif": ("bad", "TIFF with ImageLength 0", lambda: _tiff_with_tags(_xray(), length=0)),
    "zero_size.tif": ("bad", "TIFF of 5x0 pixels, as tifffile writes it", lambda: _tiff_bytes(
        np.zeros((0, 5), np.uint8))),
    "dicom_rows_wrong.dcm": ("bad", "DICOM Rows larger than its data", lambda: _dicom_bytes(_dicom(Rows=64))),
    "dicom_zero_rows.dcm": ("bad", "DICOM with 0 rows", lambda: _dicom_bytes(_dicom(Rows=0, Columns=0))),
    "dicom_frames_wrong.dcm": ("bad", "DICOM claiming 5 frames", lambda: _dicom_bytes(_dicom(NumberOfFrames=5))),
    # sample types and values medsr refuses
    "float32.tif": ("bad", "float32 TIFF", lambda: _tiff_bytes(_xray().astype(np.float32) / 255)),
    "nan_inf.tif": ("bad", "float TIFF with NaN and inf", lambda: _tiff_bytes(
        np.where(_xray() > 128, np.nan, np.inf).astype(np.float32))),
    "int32.tif": ("bad", "int32 TIFF", lambda: _tiff_bytes(_xray().astype(np.int32) * 1000)),
    "int16.tif": ("bad", "signed 16-bit TIFF", lambda: _tiff_bytes(_xray().astype(np.int16) - 100)),
    "five_samples.tif": ("bad", "TIFF with 5 samples per pixel", lambda: _tiff_bytes(
        np.stack([_xray()] * 5, axis=-1), photometric="minisblack", planarconfig="contig")),
    "rgb16.png": ("bad", "16-bit colour PNG", _png_with_colour16),
    "dicom_slope_nan.dcm": ("bad", "DICOM RescaleSlope NaN", lambda: _dicom_bytes(_dicom(RescaleSlope="NaN"))),
    "dicom_slope_inf.dcm": ("bad", "DICOM RescaleSlope inf", lambda: _dicom_bytes(_dicom(RescaleSlope="inf"))),
    "dicom_slope_zero.dcm": ("bad", "DICOM RescaleSlope 0", lambda: _dicom_bytes(_dicom(RescaleSlope=0))),
    "dicom_no_pixels.dcm": ("bad", "DICOM without PixelData", lambda: _dicom_bytes(_dicom(PixelData=None))),
    "dicom_syntax.dcm": ("bad", "DICOM with an unknown transfer syntax", lambda: _dicom_syntax("1.2.3.4.5", False)),
    "dicom_j2k.dcm": ("bad", "DICOM claiming JPEG 2000 with raw pixels", lambda: _dicom_syntax(
        "1.2.840.10008.1.2.4.90", True)),
    # bad files with names that must be escaped on their one line
    "new\nline.png": ("bad", "newline in the name", lambda: b"\n"),
    "tab\there.png": ("bad", "tab in the name", lambda: b"\t"),
    "-dash-bad.png": ("bad", "leading dash, bad content", lambda: b"-"),
    "long-bad-" + "b" * 226 + ".png": ("bad", "239-character name, bad content", lambda: b"x"),
    # too small for x4 (named WxH)
    "1x1.png": ("small", "1x1 PNG", lambda: _png_bytes(Image.fromarray(_xray(1, 1)))),
    "2x2.png": ("small", "2x2 PNG", lambda: _png_bytes(Image.fromarray(_xray(2, 2)))),
    "3x3.tif": ("small", "3x3 TIFF", lambda: _tiff_bytes(_xray(3, 3))),
    "3x5.png": ("small", "3 wide, 5 high", lambda: _png_bytes(Image.fromarray(_xray(5, 3)))),
    "1x40.png": ("small", "one column", lambda: _png_bytes(Image.fromarray(_xray(40, 1)))),
    "40x1.png": ("small", "one row", lambda: _png_bytes(Image.fromarray(_xray(1, 40)))),
    "2x2_ct.dcm": ("small", "2x2 DICOM", lambda: _dicom_bytes(_dicom(2))),
}


def build_corpus(folder: Path) -> list[Kind]:
    """Write the corpus into ``folder``; return every entry with its fate ("special": see :data:`EXPLICIT`)."""
    folder.mkdir(parents=True, exist_ok=True)
    kinds = []
    for name, (fate, what, make) in FILES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom and tifffile warn about the odd files they are asked to write
            (folder / name).write_bytes(make())
        kinds.append(Kind(name, fate, what))
    (folder / "folder.png").mkdir()
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "dangling.dcm").symlink_to("nowhere.dcm")
    (folder / ".hidden.png").write_bytes(PNG)
    kinds += [Kind("folder.png", "skipped", "a folder named like an image"),
              Kind("dangling.dcm", "skipped", "a symlink to nothing"),
              Kind(".hidden.png", "skipped", "a hidden file"),
              Kind("loop.png", "special", "a symlink to itself")]
    if hasattr(os, "mkfifo"):
        os.mkfifo(folder / "fifo.png")
        kinds.append(Kind("fifo.png", "special", "a FIFO (reading it would block)"))
    if os.geteuid() != 0:  # root reads anything
        (folder / "unreadable.png").write_bytes(PNG)
        (folder / "unreadable.png").chmod(0)
        kinds.append(Kind("unreadable.png", "bad", "a file without read permission"))
    return kinds


# --- running every command once, in one fresh process ------------------------------------------------------------

MODEL = "xray-x4"
MARK = "=== medsr-hostile-test"
# A folder scan passes over special files; named on the command line they must be reported. (A prepare root that
# does not exist, the symlink loop, stops prepare with exit 2 by design, so prepare gets only the FIFO.)
EXPLICIT = {"upscale": ("fifo.png", "loop.png"), "degrade": ("fifo.png", "loop.png"),
            "baseline": ("fifo.png", "loop.png"), "evaluate": ("fifo.png", "loop.png"), "prepare": ("fifo.png",),
            "prepare-headers": ("fifo.png",)}
# Words the one-line reason of some bad files must hold, whatever the command.
REASONS = {
    "empty.png": "empty file",
    "bomb.png": "too large",
    "bomb.tif": "too large",
    "zero_size.tif": "image has no pixels (5x0)",
    "dicom_slope_zero.dcm": "invalid RescaleSlope",
    "dicom_no_pixels.dcm": "no pixel data",
    "fifo.png": "not a regular file",
    "dicom_cut_pixels.dcm": "truncated DICOM file",
}
# Good files a command may refuse to write, with the reason it must give: the DICOM writer keeps the source's
# BitsAllocated and does not write 1-bit pixel data.
MAY_NOT_WRITE = {("upscale", "dicom_1bit.dcm"): "BitsAllocated 1", ("degrade", "dicom_1bit.dcm"): "BitsAllocated 1"}

DRIVER = f"""
import json, sys
from medsr.cli import main
for name, argv in json.loads(sys.argv[1]):
    sys.argv = ["medsr", *argv]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    for stream in (sys.stdout, sys.stderr):
        print("{MARK}", name, code, file=stream, flush=True)
"""


@dataclass(frozen=True)
class Run:
    """What one command did: exit status, its output lines (stdout and stderr), and where it wrote."""

    code: int
    lines: list[str]
    out: Path


def _commands(corpus: Path, out: Path) -> list[tuple[str, list[str]]]:
    def args(name: str) -> list[str]:
        return [str(corpus), *(str(corpus / extra) for extra in EXPLICIT[name] if (corpus / extra).is_symlink()
                                or (corpus / extra).exists())]

    return [
        ("upscale", ["upscale", *args("upscale"), "-o", str(out / "upscale"), "-m", MODEL, "--device", "cpu"]),
        ("degrade", ["degrade", *args("degrade"), "-o", str(out / "degrade")]),
        ("baseline", ["baseline", *args("baseline"), "-o", str(out / "baseline" / "rows.csv")]),
        ("evaluate", ["evaluate", *args("evaluate"), "-m", MODEL, "--device", "cpu", "--baselines", "bicubic",
                      "--save-images", str(out / "evaluate" / "images"), "-o", str(out / "evaluate" / "rows.csv")]),
        ("prepare", ["prepare", *args("prepare"), "-o", str(out / "prepare" / "manifest.csv"), "--min-size", "4"]),
        ("prepare-headers", ["prepare", *args("prepare-headers"), "-o", str(out / "prepare-headers" / "manifest.csv"),
                             "--headers-only"]),
    ]


def _split(text: str) -> dict[str, tuple[int, list[str]]]:
    """Output lines per command, cut at the driver's end-of-command marks."""
    found: dict[str, tuple[int, list[str]]] = {}
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(MARK):
            name, code = line.split()[-2:]
            found[name] = (int(code), lines)
            lines = []
        else:
            lines.append(line)
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Kind]]:
    folder = tmp_path_factory.mktemp("hostile") / "corpus"
    return folder, build_corpus(folder)


@pytest.fixture(scope="module")
def runs(corpus: tuple[Path, list[Kind]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every command over the corpus, one after the other in one fresh process (the import is paid once)."""
    folder, _ = corpus
    out = tmp_path_factory.mktemp("outputs")
    commands = _commands(folder, out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], capture_output=True, text=True,
                          env=env, timeout=400, stdin=subprocess.DEVNULL)
    stdout, stderr = _split(done.stdout), _split(done.stderr)
    assert done.returncode == 0 and set(stdout) == {name for name, _ in commands}, done.stderr[-3000:]
    return {name: Run(stdout[name][0], stdout[name][1] + stderr[name][1], out / name) for name, _ in commands}


def _named(run: Run, name: str) -> list[str]:
    """The output lines that report file ``name`` ("<folder>/<name>: <reason>", the name escaped).

    Not the warning ``upscale -m xray-x4`` gives a good CT DICOM (its modality differs from the model's).
    """
    return [line for line in run.lines if f"/{escape(name)}: " in line
            and not (line.startswith("warning: ") and "DICOM Modality" in line)]


def _expected_failures(command: str, kinds: list[Kind]) -> dict[str, str]:
    """Files ``command`` must report, each with words its reason must hold."""
    failing = {}
    for kind in kinds:
        if kind.fate == "bad" or (kind.fate == "special" and kind.name in EXPLICIT[command]):
            failing[kind.name] = REASONS.get(kind.name, "")
        elif kind.fate == "small" and command == "prepare":  # --min-size 4
            failing[kind.name] = "is smaller than --min-size 4"
        elif kind.fate == "small" and command in ("degrade", "baseline", "evaluate"):
            width, height = kind.name.split("_")[0].split(".")[0].split("x")
            failing[kind.name] = f"image too small for x4 ({width}x{height} pixels)"
    return failing


def _written(kind: Kind, command: str) -> bool:
    """Whether ``command`` writes an output for ``kind`` (upscale takes any size: 1x1 becomes 4x4)."""
    return kind.fate == "good" or (kind.fate == "small" and command == "upscale")


COMMANDS = ["upscale", "degrade", "baseline", "evaluate", "prepare"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_bad_file_is_named_on_one_line(command: str, runs: dict[str, Run], corpus) -> None:
    run, (_, kinds) = runs[command], corpus
    text = "\n".join(run.lines)
    assert run.code == 1, text[-3000:]
    assert "Traceback" not in text and "Warning" not in text, text[-3000:]
    assert len(kinds) >= 40
    failing = _expected_failures(command, kinds)
    for kind in kinds:
        lines = _named(run, kind.name)
        if (command, kind.name) in MAY_NOT_WRITE and lines:
            assert len(lines) == 1 and MAY_NOT_WRITE[command, kind.name] in lines[0], lines
        elif kind.name in failing:  # prepare lists the first 20 on screen, all of them in a CSV
            assert len(lines) == 1 or (command == "prepare" and not lines), (kind, lines)
            assert all(failing[kind.name] in line for line in lines), (kind, lines)
        elif kind.name not in failing:
            assert lines == [], (kind, lines)


@pytest.mark.parametrize("command", COMMANDS)
def test_outputs_are_whole_and_no_temporary_file_is_left(command: str, runs: dict[str, Run]) -> None:
    files = [p for p in runs[command].out.rglob("*") if not p.is_dir()]
    assert files
    assert not [p for p in files if p.name.startswith(".medsr-") or p.stat().st_size == 0]
    for path in files:
        if path.suffix != ".csv":
            assert read_image(path).pixels.size > 0


def _outputs_by_stem(folder: Path) -> dict[str, Path]:
    return {path.name.split(".")[0]: path for path in folder.rglob("*") if path.is_file()}


@pytest.mark.parametrize("command", ["upscale", "degrade", "evaluate"])
def test_good_files_are_written_at_the_right_size(command: str, runs: dict[str, Run], corpus) -> None:
    run, (folder, kinds) = runs[command], corpus
    written = _outputs_by_stem(run.out / "images" / MODEL if command == "evaluate" else run.out)
    for kind in kinds:
        stem = kind.name.split(".")[0]
        if not _written(kind, command) or ((command, kind.name) in MAY_NOT_WRITE and _named(run, kind.name)):
            assert stem not in written or kind.fate == "good", kind
            continue
        assert stem in written, kind
        source, result = read_image(folder / kind.name), read_image(written[stem])
        factor = {"upscale": 4.0, "degrade": 0.25, "evaluate": 1.0}[command]
        assert (result.width, result.height) == (int(source.width * factor), int(source.height * factor)), kind
        frames = len(source.pixels) if source.is_multiframe and command != "evaluate" else 1
        assert (len(result.pixels) if result.is_multiframe else 1) == frames, kind


def test_scores_and_manifest_hold_exactly_the_good_files(runs: dict[str, Run], corpus) -> None:
    folder, kinds = corpus
    good = {kind.name for kind in kinds if kind.fate == "good"}
    for command in ("baseline", "evaluate"):
        assert set(_csv_names(runs[command].out / "rows.csv", "image")) == good, command
    assert sorted(_csv_names(runs["prepare"].out / "manifest.csv")) == sorted(good)
    skipped = _csv_names(runs["prepare"].out / "manifest.skipped.csv")
    assert sorted(skipped) == sorted(_expected_failures("prepare", kinds))


# Files whose header is sound: a scan that reads headers only (prepare --headers-only) cannot tell them from good ones.
HEADER_BLIND = {"png_cut_half.png", "png_cut_idat.png", "jpeg_cut_half.jpg", "tiff_cut_half.tif", "rgb16.png",
                "dicom_cut_pixels.dcm", "dicom_rows_wrong.dcm", "dicom_frames_wrong.dcm", "dicom_j2k.dcm",
                "dicom_syntax.dcm"}


def _csv_names(path: Path, column: str = "path") -> list[str]:
    with open(path, newline="") as handle:
        return [Path(row[column]).name for row in csv.DictReader(handle)]


def test_a_header_scan_neither_blocks_nor_prints_nor_lets_an_empty_image_in(runs: dict[str, Run], corpus) -> None:
    run, (_, kinds) = runs["prepare-headers"], corpus
    text = "\n".join(run.lines)
    assert run.code == 1 and "Traceback" not in text and "Warning" not in text, text[-3000:]
    listed = _csv_names(run.out / "manifest.csv")
    skipped = _csv_names(run.out / "manifest.skipped.csv")
    images = {kind.name for kind in kinds if kind.fate in ("good", "small")}
    assert sorted(listed + skipped) == sorted(images | set(_expected_failures("prepare-headers", kinds)))
    assert set(listed) - HEADER_BLIND == images
    assert {"fifo.png", "zero_size.tif", "dicom_zero_rows.dcm", "dicom_slope_nan.dcm"} <= set(skipped)


# --- the same rules through the Python API ---------------------------------------------------------------------


def test_read_image_fails_in_one_line_on_every_bad_file(corpus) -> None:
    folder, kinds = corpus
    for kind in kinds:
        if kind.fate in ("good", "small"):
            assert read_image(folder / kind.name).pixels.size > 0
        elif kind.fate != "skipped":
            with pytest.raises(ImageReadError) as info:
                read_image(folder / kind.name)
            assert "\n" not in str(info.value) and escape(kind.name) in str(info.value), kind
            assert REASONS.get(kind.name, "") in info.value.reason, kind


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 2), (5, 3), (40, 1), (1, 40)])
def test_too_small_is_one_message_everywhere(height: int, width: int) -> None:
    image = MedicalImage(np.full((height, width, 1), 0.5, np.float32), "png", 8, (0.0, 255.0))
    message = f"image too small for x4 ({width}x{height} pixels)"
    with pytest.raises(ValueError, match=re.escape(message)):
        degrade_image(image, "bicubic", 4)
    with pytest.raises(ValueError, match=re.escape(message)):
        Protocol(scale=4).pair(image)
    if height > 1 or width > 1:  # the model sees at least 1x1 and gives 4x4
        return
    assert medsr.upscale(image.pixels[..., 0], MODEL, InferenceSettings(device="cpu")).shape == (4, 4)


@pytest.mark.parametrize("shape", [(0, 5, 1), (5, 0, 1), (0, 0, 1), (2, 0, 4, 1)])
def test_no_pixels_are_never_written_or_upscaled(shape: tuple[int, ...], tmp_path: Path) -> None:
    image = MedicalImage(np.zeros(shape, np.float32), "tiff", 8, (0.0, 255.0))
    for suffix in ("png", "tiff", "jpeg"):
        with pytest.raises(ImageWriteError, match="image has no pixels"):
            write_image(image, tmp_path / f"empty.{suffix}")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="image has no pixels"):
        medsr.upscale(image, MODEL, InferenceSettings(device="cpu"))


def test_saved_outputs_of_same_named_inputs_do_not_overwrite_each_other() -> None:
    names = output_names([Path("/d/a.png"), Path("/d/a.jpg"), Path("/d/1.2.3"), Path("/d/1.2.4"), Path("/d/b.tif")])
    assert [str(n) for n in names.values()] == ["a.png", "a.jpg.png", "1.2.3.png", "1.2.4.png", "b.png"]
