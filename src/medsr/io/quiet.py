"""Library warnings while reading an image: collected for the reading thread, never printed.

tifffile, pydicom and numpy report oddities of a file (an invalid tag, excess padding, a NaN cast) through
:mod:`warnings` or :mod:`logging`; printed, they would interleave stray lines with medsr's one-line reports.
:func:`collect_warnings` gathers them for the calling thread instead, so a reader can drop them or quote the
first in its error. Other threads (a manifest scan reads in several) keep their own warnings and the user's
filters: the hook is installed while at least one thread collects and passes everything else through.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator
from typing import Any

LIBRARY_LOGGERS = ("tifffile", "pydicom")
"""Loggers whose records are collected, not emitted, while a thread reads an image."""

_local = threading.local()
_lock = threading.Lock()
_collectors = 0
_passed_on: Any = None  # the showwarning in place before the hook, for other threads' warnings


def _sink() -> list[str] | None:
    return getattr(_local, "sink", None)


def _show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    sink = _sink()
    if sink is not None:
        sink.append(str(message))
        return
    previous = _passed_on
    original = getattr(warnings, "_showwarning_orig", None)
    impl = getattr(warnings, "_showwarnmsg_impl", None)
    if previous in (None, original) and impl is not None:  # keeps whatever records warnings (catch_warnings)
        impl(warnings.WarningMessage(message, category, filename, lineno, file, line))
    elif previous not in (None, _show):
        previous(message, category, filename, lineno, file, line)
    elif original is not None:
        original(message, category, filename, lineno, file, line)


class _LogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        sink = _sink()
        if sink is None:
            return True
        sink.append(record.getMessage())
        return False


_FILTER = _LogFilter()
for _name in LIBRARY_LOGGERS:
    logging.getLogger(_name).addFilter(_FILTER)


@contextlib.contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """Collect the warnings and library log records the calling thread raises inside the block (messages).

    Warning filters still apply (an ``"error"`` filter still raises; ``"default"`` shows a message once), but
    nothing that reaches the display is printed. Nests, and is safe to use from several threads at once.
    """
    global _collectors, _passed_on
    outer = _sink()
    if outer is not None:  # nested: the outer block collects
        yield outer
        return
    sink: list[str] = []
    with _lock:
        if _collectors == 0:
            _passed_on = warnings.showwarning
            warnings.showwarning = _show
        _collectors += 1
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = None
        with _lock:
            _collectors -= 1
            if _collectors == 0:
                if warnings.showwarning is _show:  # someone else replaced it meanwhile: leave theirs in place
                    warnings.showwarning = _passed_on
                _passed_on = None
