"""Atomic writes: the final file appears whole or not at all, whatever its name's length."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from medsr.atomic import atomic_path, temporary_name


def test_temporary_name_is_short_whatever_the_final_name() -> None:
    for final in ("a.png", "x" * 246 + ".png", "model.safetensors", "noext", "a." + "b" * 200, "a.b c"):
        name = temporary_name(final)
        assert re.fullmatch(r"\.medsr-[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]{1,11})?", name), name
        assert len(name) <= 31
    assert temporary_name("scan.png").endswith(".tmp.png")  # writers that infer the format still work
    assert temporary_name("scan.png") != temporary_name("scan.png")


def test_250_byte_file_name_is_written(tmp_path: Path) -> None:
    final = tmp_path / ("n" * 246 + ".bin")
    assert len(final.name.encode()) == 250
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and len(tmp.name) <= 31
        tmp.write_bytes(b"payload")
        assert not final.exists()  # nothing under the final name before the block succeeds
    assert final.read_bytes() == b"payload"
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_replaces_in_one_step_with_plain_open_permissions(tmp_path: Path) -> None:
    final = tmp_path / "out.csv"
    final.write_text("old")
    umask = os.umask(0o022)
    try:
        with atomic_path(final) as tmp:
            tmp.write_text("new")
    finally:
        os.umask(umask)
    assert final.read_text() == "new"
    assert stat.S_IMODE(final.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    final = tmp_path / "out.png"
    final.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert final.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_folders_are_created(tmp_path: Path) -> None:
    final = tmp_path / "a" / "b" / "c.txt"
    with atomic_path(final) as tmp:
        tmp.write_text("x")
    assert final.read_text() == "x"


@pytest.mark.parametrize("where", ["file_parent", "file_ancestor", "proc"])
def test_unwritable_place_raises_os_error_and_leaves_nothing(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    # tests run as root, where chmod 0o500 does not stop writes: use places no one can create files in
    final = {
        "file_parent": blocker / "x.png",
        "file_ancestor": blocker / "sub" / "x.png",
        "proc": Path("/proc/medsr-test.png"),
    }[where]
    with pytest.raises(OSError) as info, atomic_path(final) as tmp:
        tmp.write_bytes(b"never")
    if where != "proc":
        assert isinstance(info.value, NotADirectoryError) and info.value.strerror == "Not a directory"
    assert [p.name for p in tmp_path.iterdir()] == ["blocker"] and blocker.read_text() == "a file"
    assert not [p for p in Path("/proc").iterdir() if p.name.startswith(".medsr-")]


def test_replacing_a_folder_fails_and_leaves_no_temporary(tmp_path: Path) -> None:
    final = tmp_path / "taken"
    (final / "inside").mkdir(parents=True)
    with pytest.raises(OSError), atomic_path(final) as tmp:
        tmp.write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and final.is_dir()
