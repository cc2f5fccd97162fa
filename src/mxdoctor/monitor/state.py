"""The watch's persistent state in SQLite (WAL): which domains are alerting, the notification outbox
with a per-notifier "sent" marker, and the diagnosis cache.

Every change of alert state and the event it causes are written in one transaction before anything
is sent; a notifier's delivery is marked after it succeeds. A restart (or ``kill -9``) therefore
never loses an alert and never raises one twice; the only resend is an event whose send was cut
off before its marker was written, and it carries the same ``id`` so a receiver can drop it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    domain TEXT PRIMARY KEY,
    firing INTEGER NOT NULL,
    raised_at REAL NOT NULL,
    cleared_at REAL,
    generation INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    domain TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL REFERENCES events(id),
    notifier TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at REAL,
    PRIMARY KEY (event_id, notifier)
);
CREATE TABLE IF NOT EXISTS diagnoses (
    domain TEXT PRIMARY KEY,
    at REAL NOT NULL,
    summary TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Event:
    id: str
    domain: str
    kind: str  # "alert" or "clear"
    created_at: float
    payload: dict[str, Any]


class State:
    """One SQLite file; safe to reopen after any crash."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def firing(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT domain FROM alerts WHERE firing = 1")}

    def raise_alert(self, domain: str, payload: dict[str, Any], now: float) -> Event | None:
        """Mark ``domain`` firing and queue its alert event, in one transaction; None if already firing."""
        with self.transaction() as db:
            row = db.execute("SELECT firing, generation FROM alerts WHERE domain = ?", (domain,)).fetchone()
            if row is not None and row[0]:
                return None
            generation = 1 if row is None else row[1] + 1
            db.execute(
                "INSERT INTO alerts (domain, firing, raised_at, cleared_at, generation) VALUES (?, 1, ?, NULL, ?)"
                " ON CONFLICT(domain) DO UPDATE SET firing = 1, raised_at = excluded.raised_at,"
                " cleared_at = NULL, generation = excluded.generation",
                (domain, now, generation),
            )
            return self._event(db, f"{domain}#{generation}:alert", domain, "alert", payload, now)

    def clear_alert(self, domain: str, payload: dict[str, Any], now: float) -> Event | None:
        """Mark ``domain`` cleared and queue its clear event; None if it was not firing."""
        with self.transaction() as db:
            row = db.execute("SELECT firing, generation FROM alerts WHERE domain = ?", (domain,)).fetchone()
            if row is None or not row[0]:
                return None
            db.execute("UPDATE alerts SET firing = 0, cleared_at = ? WHERE domain = ?", (now, domain))
            return self._event(db, f"{domain}#{row[1]}:clear", domain, "clear", payload, now)

    def _event(self, db: sqlite3.Connection, event_id: str, domain: str, kind: str, payload: dict[str, Any],
               now: float) -> Event:
        payload = {**payload, "id": event_id, "event": kind}
        db.execute(
            "INSERT INTO events (id, domain, kind, created_at, payload) VALUES (?, ?, ?, ?, ?)",
            (event_id, domain, kind, now, json.dumps(payload, sort_keys=True)),
        )
        return Event(event_id, domain, kind, now, payload)

    def pending(self, notifier: str, *, max_attempts: int = 20) -> list[Event]:
        """Events this notifier has not delivered yet, oldest first."""
        rows = self.db.execute(
            "SELECT e.id, e.domain, e.kind, e.created_at, e.payload FROM events e"
            " LEFT JOIN deliveries d ON d.event_id = e.id AND d.notifier = ?"
            " WHERE d.sent_at IS NULL AND COALESCE(d.attempts, 0) < ? ORDER BY e.created_at, e.rowid",
            (notifier, max_attempts),
        ).fetchall()
        return [Event(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def attempt(self, event_id: str, notifier: str) -> None:
        """Record an attempt before sending, so repeated failures are counted across restarts."""
        self.db.execute(
            "INSERT INTO deliveries (event_id, notifier, attempts) VALUES (?, ?, 1)"
            " ON CONFLICT(event_id, notifier) DO UPDATE SET attempts = attempts + 1",
            (event_id, notifier),
        )

    def mark_sent(self, event_id: str, notifier: str, now: float) -> None:
        self.db.execute(
            "UPDATE deliveries SET sent_at = ?, last_error = NULL WHERE event_id = ? AND notifier = ?",
            (now, event_id, notifier),
        )

    def mark_failed(self, event_id: str, notifier: str, error: str) -> None:
        self.db.execute(
            "UPDATE deliveries SET last_error = ? WHERE event_id = ? AND notifier = ?", (error, event_id, notifier)
        )

    def sent_count(self, kind: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.sent_at IS NOT NULL"
        args: tuple[str, ...] = ()
        if kind:
            sql += " AND e.kind = ?"
            args = (kind,)
        return int(self.db.execute(sql, args).fetchone()[0])

    def prune(self, before: float) -> int:
        """Forget events and diagnoses older than ``before`` (alert state is kept); returns events removed."""
        with self.transaction() as db:
            db.execute("DELETE FROM deliveries WHERE event_id IN (SELECT id FROM events WHERE created_at < ?)",
                       (before,))
            removed = db.execute("DELETE FROM events WHERE created_at < ?", (before,)).rowcount
            db.execute("DELETE FROM diagnoses WHERE at < ?", (before,))
        return int(removed)

    def cached_diagnosis(self, domain: str, max_age: float, now: float | None = None) -> dict[str, Any] | None:
        now = time.time() if now is None else now
        row = self.db.execute("SELECT at, summary FROM diagnoses WHERE domain = ?", (domain,)).fetchone()
        if row is None or now - row[0] >= max_age:
            return None
        value: dict[str, Any] = json.loads(row[1])
        return value

    def last_diagnosis(self, domain: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT summary FROM diagnoses WHERE domain = ?", (domain,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def store_diagnosis(self, domain: str, summary: dict[str, Any], now: float) -> None:
        self.db.execute(
            "INSERT INTO diagnoses (domain, at, summary) VALUES (?, ?, ?)"
            " ON CONFLICT(domain) DO UPDATE SET at = excluded.at, summary = excluded.summary",
            (domain, now, json.dumps(summary, sort_keys=True, default=str)),
        )
