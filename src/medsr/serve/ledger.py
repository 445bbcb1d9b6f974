"""What the node received, processed and sent, in a small SQLite database beside the spool.

The ledger is what makes ``kill -9`` harmless. An instance is recorded as received only after its file is safely
in the spool; it is marked processed in the same transaction that queues its derived instances for sending; a
queued instance is marked sent only after the destination confirmed it. After a crash the node redoes exactly
the steps that were not recorded: processing is redone for instances not marked processed (giving the same
derived UIDs, so nothing appears twice), sending is redone for instances not marked sent (a resend of the same
SOP Instance UID, which a PACS treats as the same instance).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_uid TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL,
    path TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    received REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('received', 'done', 'failed', 'ignored')),
    reason TEXT
);
CREATE INDEX IF NOT EXISTS instances_series ON instances (series_uid, state);
CREATE TABLE IF NOT EXISTS outbox (
    sop_uid TEXT NOT NULL,
    destination TEXT NOT NULL,
    path TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    sent REAL,
    error TEXT,
    PRIMARY KEY (sop_uid, destination)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (sent, next_try);
"""


@dataclass(frozen=True)
class Outgoing:
    """One derived (or passed-through) instance to send to one destination."""

    sop_uid: str
    destination: str
    path: Path
    series_uid: str
    attempts: int


class Ledger:
    """Thread-safe access to the node's SQLite ledger (one connection, WAL, synchronous=FULL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic transaction: all its changes are recorded, or none."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Iterable[object] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    # received instances

    def record_received(self, sop_uid: str, series_uid: str, path: Path, calling_ae: str) -> bool:
        """Record an instance safely in the spool; False when it was already processed (a duplicate send)."""
        with self.transaction() as db:
            row = db.execute("SELECT state FROM instances WHERE sop_uid = ?", (sop_uid,)).fetchone()
            if row is not None and row[0] != "received":
                return False
            db.execute(
                "INSERT INTO instances (sop_uid, series_uid, path, calling_ae, received, state) "
                "VALUES (?, ?, ?, ?, ?, 'received') ON CONFLICT (sop_uid) DO UPDATE SET "
                "series_uid = excluded.series_uid, path = excluded.path, calling_ae = excluded.calling_ae, "
                "received = excluded.received",
                (sop_uid, series_uid, str(path), calling_ae, time.time()),
            )
        return True

    def state(self, sop_uid: str) -> str | None:
        rows = self._rows("SELECT state FROM instances WHERE sop_uid = ?", (sop_uid,))
        return rows[0][0] if rows else None

    def idle_series(self, idle_seconds: float, now: float | None = None) -> list[str]:
        """Series with unprocessed instances whose newest instance arrived at least ``idle_seconds`` ago."""
        now = time.time() if now is None else now
        rows = self._rows(
            "SELECT series_uid FROM instances GROUP BY series_uid "
            "HAVING SUM(state = 'received') > 0 AND MAX(received) <= ? ORDER BY MAX(received)",
            (now - idle_seconds,),
        )
        return [r[0] for r in rows]

    def pending(self, series_uid: str) -> list[tuple[str, Path, str]]:
        """(sop_uid, path, calling_ae) of a series' instances not yet processed."""
        rows = self._rows("SELECT sop_uid, path, calling_ae FROM instances WHERE series_uid = ? AND state = "
                          "'received' ORDER BY path", (series_uid,))
        return [(sop, Path(path), ae) for sop, path, ae in rows]

    def finish(
        self,
        done: Iterable[str],
        outgoing: Iterable[tuple[str, str, Path, str]],
        failed: Iterable[tuple[str, str]] = (),
        ignored: Iterable[str] = (),
    ) -> None:
        """In one transaction: mark instances done/failed/ignored and queue (sop, destination, path, series)."""
        with self.transaction() as db:
            db.executemany("UPDATE instances SET state = 'done' WHERE sop_uid = ?", [(s,) for s in done])
            db.executemany("UPDATE instances SET state = 'failed', reason = ? WHERE sop_uid = ?",
                           [(reason, sop) for sop, reason in failed])
            db.executemany("UPDATE instances SET state = 'ignored' WHERE sop_uid = ?", [(s,) for s in ignored])
            db.executemany(
                "INSERT INTO outbox (sop_uid, destination, path, series_uid) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (sop_uid, destination) DO UPDATE SET path = excluded.path, sent = NULL, "
                "attempts = 0, next_try = 0, error = NULL",
                [(sop, dest, str(path), series) for sop, dest, path, series in outgoing],
            )

    # outgoing instances

    def due(self, now: float | None = None, limit: int = 500) -> list[Outgoing]:
        """Queued instances whose next try is due, oldest first."""
        now = time.time() if now is None else now
        rows = self._rows("SELECT sop_uid, destination, path, series_uid, attempts FROM outbox "
                          "WHERE sent IS NULL AND next_try <= ? ORDER BY rowid LIMIT ?", (now, limit))
        return [Outgoing(sop, dest, Path(path), series, attempts) for sop, dest, path, series, attempts in rows]

    def mark_sent(self, items: Iterable[Outgoing]) -> None:
        now = time.time()
        with self.transaction() as db:
            db.executemany("UPDATE outbox SET sent = ?, error = NULL WHERE sop_uid = ? AND destination = ?",
                           [(now, i.sop_uid, i.destination) for i in items])

    def mark_retry(self, item: Outgoing, error: str, delay: float) -> None:
        with self.transaction() as db:
            db.execute("UPDATE outbox SET attempts = attempts + 1, next_try = ?, error = ? "
                       "WHERE sop_uid = ? AND destination = ?", (time.time() + delay, error, item.sop_uid,
                                                                 item.destination))

    def unsent_paths(self) -> set[Path]:
        """Files some destination still waits for: they must stay in the spool."""
        return {Path(r[0]) for r in self._rows("SELECT path FROM outbox WHERE sent IS NULL")}

    # figures

    def counts(self) -> dict[str, int]:
        """Instances per state, and ``outbox`` (instances waiting to be sent)."""
        counts = dict(self._rows("SELECT state, COUNT(*) FROM instances GROUP BY state"))
        counts["outbox"] = self._rows("SELECT COUNT(*) FROM outbox WHERE sent IS NULL")[0][0]
        return {key: int(value) for key, value in counts.items()}

    def problems(self, limit: int = 20) -> list[tuple[str, str, str]]:
        """(what, UID, reason) of failed instances and of results still waiting after a failed send, newest first."""
        failed = self._rows("SELECT 'failed', sop_uid, reason FROM instances WHERE state = 'failed' "
                            "ORDER BY received DESC LIMIT ?", (limit,))
        waiting = self._rows("SELECT 'unsent to ' || destination, sop_uid, error || ' (' || attempts || "
                             "' attempts)' FROM outbox WHERE sent IS NULL AND error IS NOT NULL "
                             "ORDER BY next_try DESC LIMIT ?", (limit,))
        return [(a, b, c or "") for a, b, c in failed + waiting]

    def known(self) -> dict[str, str]:
        """Every recorded instance's state, by SOP Instance UID (for recovery after a crash)."""
        return dict(self._rows("SELECT sop_uid, state FROM instances"))
