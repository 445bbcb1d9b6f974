"""Errors that medsr reports to users as one line: which file, and why."""

from __future__ import annotations

from pathlib import Path


class MedsrError(Exception):
    """Base class: every error meant for a user carries a one-line message."""


class ConfigError(MedsrError):
    """A setting is invalid; the message names the setting and the allowed values."""


class FileError(MedsrError):
    """Something went wrong with one file: ``"<action> <path>: <reason>"``, e.g. ``cannot read a.dcm: ...``."""

    action = "cannot use"

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.action} {path}: {reason}")


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


class DownloadError(FileError):
    """A file could not be fetched, verified or extracted."""

    action = "cannot download"

    @property
    def name(self) -> str:
        return self.path
