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
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsr.atomic import atomic_path, remove_stale_temporaries
from medsr.cli import main
from medsr.errors import ImageWriteError
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
