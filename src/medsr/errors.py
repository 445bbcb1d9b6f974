"""Errors that medsr reports to users as one line: which file, and why."""

from __future__ import annotations

from pathlib import Path


class MedsrError(Exception):
    """Base class: every error meant for a user carries a one-line message."""


class ImageReadError(MedsrError):
    """A file could not be read as an image: missing, truncated, unsupported, or too large."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read {path}: {reason}")


class ImageWriteError(MedsrError):
    """An image could not be written to the requested path or format."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write {path}: {reason}")


class CheckpointError(MedsrError):
    """A checkpoint could not be loaded or converted."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load model {path}: {reason}")


class ConfigError(MedsrError):
    """A setting is invalid; the message names the setting and the allowed values."""
