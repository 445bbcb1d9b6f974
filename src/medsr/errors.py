"""Errors that medsr reports to users as one line: which file, and why."""

from __future__ import annotations

from pathlib import Path


def escape(text: object) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x00``): a file name shown on one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


def one_line(text: object) -> str:
    """A message on one line: its lines joined with spaces, other control characters escaped."""
    return escape(" ".join(part for part in (line.strip() for line in str(text).splitlines()) if part))


def os_reason(exc: OSError) -> str:
    """The operating system's reason for ``exc`` without the errno and path decoration ("Permission denied")."""
    return exc.strerror or str(exc) or type(exc).__name__


def failure_reason(exc: BaseException) -> str:
    """What a batch report prints after the input's name when ``exc`` skipped it.

    An error about the input itself gives its reason alone (the line already names the input); an error about
    an output gives its whole message, which names the output ("cannot write out/x.png: Read-only file system"),
    so a full disk or a read-only folder is never blamed on the input.
    """
    if isinstance(exc, ImageWriteError | ManifestWriteError):
        return str(exc)
    return getattr(exc, "reason", None) or str(exc) or type(exc).__name__


class MedsrError(Exception):
    """Base class: every error meant for a user carries a one-line message."""


class ConfigError(MedsrError):
    """A setting is invalid; the message names the setting and the allowed values."""


class ArrayError(ConfigError, ValueError):
    """An array given to the Python API has a layout, type or values medsr does not take; the message names its
    shape (and dtype) and the rule it breaks."""


class FileError(MedsrError):
    """Something went wrong with one file: ``"<action> <path>: <reason>"``, e.g. ``cannot read a.dcm: ...``.

    The message is always one line: a library's multi-line reason is joined, control characters in a file name
    are escaped (``.path`` keeps the name as given).
    """

    action = "cannot use"

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = one_line(reason)
        super().__init__(f"{self.action} {escape(path)}: {self.reason}")


class ImageReadError(FileError):
    """A file could not be read as an image: missing, truncated, unsupported, or too large."""

    action = "cannot read"


class ImageWriteError(FileError):
    """An image could not be written to the requested path or format."""

    action = "cannot write"


class CheckpointError(FileError):
    """A checkpoint could not be loaded or converted."""

    action = "cannot load model"


class ManifestError(FileError):
    """A manifest or metadata table is missing or malformed."""

    action = "cannot use"


class ManifestWriteError(ManifestError):
    """A manifest or list of skipped files could not be written (the reason is the operating system's)."""

    action = "cannot write"


class DownloadError(FileError):
    """A file could not be fetched, verified or extracted."""

    action = "cannot download"

    @property
    def name(self) -> str:
        return self.path
