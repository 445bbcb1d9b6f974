"""The node's spool: received instances wait here, durably, until processed; results wait until sent.

Layout under ``spool``: ``incoming/<series UID>/<SOP UID>.dcm`` (received), ``derived/<series UID>/...``
(results), ``dead-letter/<SOP UID>.dcm`` with ``<SOP UID>.txt`` (what failed and why), ``ledger.sqlite``.
Every file is written to a temporary name, flushed to disk, then renamed: after a crash a file is either
whole or absent, and only whole files are acknowledged to the sender.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from pathlib import Path

from medsr.atomic import TEMP_PREFIX, atomic_path

LEDGER_FILE = "ledger.sqlite"
_UID = re.compile(r"^[0-9.]{1,64}$")


class SpoolFull(OSError):
    """The spool is over its quota or its disk is too full to accept an instance safely."""


def safe_uid(uid: str) -> str:
    """A UID fit for a file name; anything that is not a plain UID is refused (no path tricks from a peer)."""
    uid = uid.strip().rstrip("\x00")
    if not _UID.match(uid) or ".." in uid:
        raise ValueError(f"not a valid UID: {uid[:80]!r}")
    return uid


class Spool:
    """Paths and durable writes inside one spool folder, with its quota and free-space floor."""

    def __init__(self, root: str | Path, max_bytes: int | None = None, min_free_bytes: int = 0) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        for name in ("incoming", "derived", "dead-letter"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self._used = self._measure()
        self._lock = threading.Lock()  # receivers (one thread per association) and the processor share _used

    @property
    def ledger_path(self) -> Path:
        return self.root / LEDGER_FILE

    def incoming(self, series_uid: str, sop_uid: str) -> Path:
        return self.root / "incoming" / safe_uid(series_uid) / f"{safe_uid(sop_uid)}.dcm"

    def derived_dir(self, series_uid: str) -> Path:
        return self.root / "derived" / safe_uid(series_uid)

    def _measure(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*.dcm") if p.is_file())

    def check_room(self, size: int) -> None:
        """Raise :class:`SpoolFull` when ``size`` more bytes would pass the quota or the free-space floor."""
        if self.max_bytes is not None and self._used + size > self.max_bytes:
            raise SpoolFull(f"spool quota reached ({self._used + size} > {self.max_bytes} bytes)")
        free = shutil.disk_usage(self.root).free
        if free - size < self.min_free_bytes:
            raise SpoolFull(f"only {free} bytes free on the spool's disk (keeping {self.min_free_bytes})")

    def write(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` durably (temporary file, fsync, rename, fsync of the folder).

        The room is reserved before writing, so concurrent associations cannot together pass the quota.
        """
        with self._lock:
            self.check_room(len(data))
            self._used += len(data)
        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            _fsync_dir(path.parent)
        except BaseException:
            with self._lock:
                self._used -= len(data)
            raise

    def remove(self, path: Path) -> None:
        """Delete a spool file (and its folder once empty); missing files are fine."""
        with contextlib.suppress(FileNotFoundError):
            size = path.stat().st_size
            path.unlink()
            with self._lock:
                self._used = max(0, self._used - size)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def dead_letter(self, path: Path, sop_uid: str, reason: str) -> Path:
        """Move a failed instance to ``dead-letter/`` with a text file giving its reason."""
        target = self.root / "dead-letter" / f"{safe_uid(sop_uid)}.dcm"
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, target)
        note = target.with_suffix(".txt")
        with atomic_path(note) as tmp:
            tmp.write_text(reason + "\n", encoding="utf-8")
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        return target

    def received_files(self) -> list[tuple[str, str, Path]]:
        """(series UID, SOP UID, path) of every whole received file (temporary leftovers are removed)."""
        found = []
        for path in sorted((self.root / "incoming").glob("*/*")):
            if path.name.startswith(TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    path.unlink()
            elif path.suffix == ".dcm":
                found.append((path.parent.name, path.stem, path))
        for path in (self.root / "derived").glob(f"*/{TEMP_PREFIX}*"):
            with contextlib.suppress(OSError):
                path.unlink()
        return found


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
