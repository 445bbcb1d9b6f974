"""Atomic file writes: a reader (or a crash) never sees a half-written image or checkpoint."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".medsr-"
"""Temporary files are ``.medsr-<8 hex>.tmp`` (plus a short suffix) beside the final file."""

_MAX_KEPT_SUFFIX = 12  # ".png", ".safetensors": kept; anything longer is not a format suffix


def temporary_name(path: str | Path) -> str:
    """A fresh temporary name for writing ``path``: hidden, at most 31 characters whatever the final name.

    The final name's suffix is kept (when short and plain) so writers that infer the format from it still work.
    """
    suffix = Path(path).suffix
    if len(suffix) > _MAX_KEPT_SUFFIX or not suffix[1:].isalnum():
        suffix = ""
    return f"{TEMP_PREFIX}{secrets.token_hex(4)}.tmp{suffix}"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step, on error it is removed.

    The temporary name does not depend on the final name's length (see :func:`temporary_name`), so any name
    the file system accepts can be written. The file is created empty with the permissions a plain ``open()``
    would give it (0666 less the umask). Errors are the operating system's (``OSError``); callers turn them
    into their own one-line errors.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # the parent is a file: say so, not "File exists"
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path.parent)) from None
    for _ in range(100):
        tmp_path = path.parent / temporary_name(path)
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        break
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise FileExistsError(f"no free temporary name in {path.parent}")
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)
        raise
