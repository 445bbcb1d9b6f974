"""Atomic file writes: a reader (or a crash) never sees a half-written image or checkpoint.

Outputs go only to regular files or new paths: an existing device, FIFO, socket or folder under the final name
is refused (:func:`check_target`), never replaced by the rename. A temporary file left by a killed run (a
``.medsr-<8 hex>.tmp`` name) is removed by the next write into its folder (:func:`remove_stale_temporaries`):
only names of that pattern, older than this process, and not locked by a live writer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locks, the age rule alone decides
    fcntl = None  # type: ignore[assignment]

TEMP_PREFIX = ".medsr-"
"""Temporary files are ``.medsr-<8 hex>.tmp`` (plus a short suffix) beside the final file."""

TEMP_PATTERN = re.compile(r"\.medsr-[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]{1,11})?")
"""Every name :func:`temporary_name` makes, and nothing else."""

_MAX_KEPT_SUFFIX = 12  # ".png", ".safetensors": kept; anything longer is not a format suffix
_STARTED = time.time()  # every temporary file this process makes is newer than this
_cleaned: set[str] = set()  # folders this process has already swept
_cleaned_lock = threading.Lock()

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(path: str | Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file ("a character device", "a FIFO", "a folder",
    ...); None for a regular file, a path that does not exist, or one that cannot be inspected."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def output_problem(path: str | Path, *, folder: bool = False) -> str | None:
    """Why ``path`` cannot be an output (a file, or with ``folder`` a folder to write into), or None.

    A new path, a regular file (for a file) or a folder (for a folder) is fine; anything else that exists is
    not: "it exists and is a character device, not a regular file".
    """
    kind = file_kind(path)
    if folder:
        if kind == "a folder" or not os.path.lexists(path):
            return None
        return f"it exists and is {kind or 'a file'}, not a folder"
    return None if kind is None else f"it exists and is {kind}, not a regular file"


def check_target(path: str | Path) -> None:
    """Raise ``OSError`` when ``path`` exists and is not a regular file: writing there would replace a device,
    FIFO, socket or folder with a file (``/dev/null`` with a CSV)."""
    kind = file_kind(path)
    if kind is not None:
        code = errno.EISDIR if kind == "a folder" else errno.EEXIST
        raise OSError(code, f"it exists and is {kind}, not a regular file", str(path))


def temporary_name(path: str | Path) -> str:
    """A fresh temporary name for writing ``path``: hidden, at most 31 characters whatever the final name.

    The final name's suffix is kept (when short and plain) so writers that infer the format from it still work.
    """
    suffix = Path(path).suffix
    if len(suffix) > _MAX_KEPT_SUFFIX or not suffix[1:].isalnum():
        suffix = ""
    return f"{TEMP_PREFIX}{secrets.token_hex(4)}.tmp{suffix}"


def remove_stale_temporaries(folder: str | Path, before: float | None = None) -> list[Path]:
    """Remove the temporary files a killed run left in ``folder``; return what was removed.

    Only regular files named like :func:`temporary_name`'s, last modified before ``before`` (default: when this
    process started), and not locked by a live writer (:func:`atomic_path` holds a lock on its temporary file
    while it is written) are removed. Anything that cannot be inspected or removed is left alone.
    """
    before = _STARTED if before is None else before
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not TEMP_PATTERN.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or info.st_mtime >= before:
                continue
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a live writer holds it
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _sweep_once(folder: Path) -> None:
    """:func:`remove_stale_temporaries` for ``folder``, the first time this process writes into it."""
    key = os.path.abspath(folder)
    with _cleaned_lock:
        if key in _cleaned:
            return
        _cleaned.add(key)
    remove_stale_temporaries(folder)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step, on error it is removed.

    The temporary name does not depend on the final name's length (see :func:`temporary_name`), so any name
    the file system accepts can be written. The file is created empty with the permissions a plain ``open()``
    would give it (0666 less the umask), and locked (``flock``) until it is renamed, so that another process's
    :func:`remove_stale_temporaries` leaves it alone. A ``path`` that exists and is not a regular file is
    refused before anything is written (:func:`check_target`). Errors are the operating system's
    (``OSError``); callers turn them into their own one-line errors.
    """
    path = Path(path)
    check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # the parent is a file: say so, not "File exists"
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)) from None
    _sweep_once(path.parent)
    for _ in range(100):
        tmp_path = path.parent / temporary_name(path)
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        break
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise FileExistsError(f"no free temporary name in {path.parent}")
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield tmp_path
        check_target(path)  # something special appeared meanwhile: do not replace it
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
