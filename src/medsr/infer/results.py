"""The results table of an upscaling job: one CSV row per input, appended as work finishes, read back to resume.

A job of 100,000 files must survive being killed at any moment and say what happened to each file. The table is
a CSV file (any tool reads it) used as a journal: rows are appended and flushed to disk as each input finishes, so
a killed job loses at most the rows in flight; a torn last line is ignored when read. When a job starts and when
it ends the table is rewritten atomically with one row per input (the latest; a torn row is dropped). An input
counts as done on the next run only when its row says ``done`` and its output still exists with the recorded size
(outputs are written atomically, so a file of the right name and size is complete).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from medsr.atomic import atomic_path
from medsr.errors import FileError, os_reason

STATUSES = ("done", "failed")
RESULTS_NAME = "medsr-results.csv"
"""The table's default name, in the output folder."""


class ResultsTableError(FileError):
    """The results table cannot be read or written."""

    action = "cannot use results table"


@dataclass(frozen=True)
class ResultRow:
    """What became of one input: ``output`` with its size and sha256 when done, ``reason`` when failed.

    ``input`` and ``output`` are absolute paths; ``seconds`` is the inference time of this input (its share of a
    batch); ``worker`` is ``host:pid`` of the process that did it; ``finished`` is a UTC ISO 8601 time.
    """

    input: str
    status: str
    output: str = ""
    reason: str = ""
    model: str = ""
    seconds: float = 0.0
    bytes: int = 0
    sha256: str = ""
    worker: str = ""
    finished: str = ""

    def is_complete(self) -> bool:
        """Done, and its output is still there with the size recorded."""
        if self.status != "done" or not self.output:
            return False
        try:
            return os.stat(self.output).st_size == self.bytes
        except OSError:
            return False


COLUMNS = tuple(f.name for f in fields(ResultRow))


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def file_digest(path: str | Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while piece := handle.read(2**20):
            digest.update(piece)
            size += len(piece)
    return size, digest.hexdigest()


def _parse(record: dict[str, str]) -> ResultRow | None:
    """A row from a CSV record; None for a torn or foreign line (wrong columns, unknown status, bad numbers)."""
    if None in record or any(record.get(c) is None for c in COLUMNS) or record["status"] not in STATUSES:
        return None
    try:
        return ResultRow(**{**record, "seconds": float(record["seconds"]), "bytes": int(record["bytes"])})
    except ValueError:
        return None


class ResultsTable:
    """The table at ``path``: :meth:`load` the rows of earlier runs, :meth:`append` new ones, :meth:`compact`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, ResultRow]:
        """The latest row for each input (later rows win); empty when the table does not exist yet."""
        try:
            text = self.path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ResultsTableError(self.path, os_reason(exc)) from None
        except UnicodeDecodeError:
            raise ResultsTableError(self.path, "not UTF-8 text") from None
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None:
            return {}
        if tuple(reader.fieldnames) != COLUMNS:
            raise ResultsTableError(self.path, f"not a medsr results table (columns {', '.join(COLUMNS)} expected)")
        rows: dict[str, ResultRow] = {}
        try:
            for record in reader:
                if (row := _parse(record)) is not None:
                    rows[row.input] = row
        except csv.Error:  # a torn last line inside an open quote: everything before it stands
            pass
        return rows

    def append(self, rows: Iterable[ResultRow]) -> None:
        """Add rows at the end and flush them to disk (fsync).

        A table a killed job left with a torn last row must be :meth:`compact`-ed first (a job does so when it
        starts), else the torn row could swallow the new ones.
        """
        rows = list(rows)
        if not rows:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as handle:
                end = handle.tell()
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
                if not end:
                    writer.writeheader()
                writer.writerows(asdict(row) for row in rows)
                handle.write(buffer.getvalue().encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise ResultsTableError(self.path, os_reason(exc)) from None

    def compact(self, order: Iterable[str] = ()) -> dict[str, ResultRow]:
        """Rewrite the table atomically with one row per input: those in ``order`` first, in that order."""
        rows = self.load()
        ordered = {key: rows[key] for key in order if key in rows} | rows
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(asdict(row) for row in ordered.values())
        try:
            with atomic_path(self.path) as tmp:
                tmp.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        except OSError as exc:
            raise ResultsTableError(self.path, os_reason(exc)) from None
        return ordered
