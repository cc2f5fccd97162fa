"""The history of each watched domain (held messages and oldest age per poll) and the evidence of its
latest diagnosis, in the watch's SQLite state file, for the dashboard's charts and reports.

Kept in tables of their own beside the alert state, pruned with the same retention.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    queue TEXT NOT NULL,
    domain TEXT NOT NULL,
    at REAL NOT NULL,
    messages INTEGER NOT NULL,
    oldest_age REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_domain ON history (domain, queue, at);
CREATE TABLE IF NOT EXISTS reports (
    domain TEXT PRIMARY KEY,
    at REAL NOT NULL,
    evidence TEXT NOT NULL
);
"""
# Points kept per (queue, domain) in one answer: a month of one-minute polls thinned to a chart's width.
MAX_POINTS = 720


@dataclass(frozen=True)
class Sample:
    queue: str
    domain: str
    messages: int
    oldest_age: float


class History:
    """Its own connection to the state file (WAL lets the dashboard read while the watch writes)."""

    def __init__(self, path: str) -> None:
        # Used from the watch loop and from the web server's thread: one lock serialises them.
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def record(self, at: float, samples: Iterable[Sample]) -> None:
        rows = [(s.queue, s.domain, at, s.messages, s.oldest_age) for s in samples]
        with self.lock, self.db:
            self.db.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?)", rows)

    def points(self, queue: str, domain: str) -> list[tuple[float, int, float]]:
        sql = "SELECT at, messages, oldest_age FROM history WHERE domain = ?"
        args: tuple[str, ...] = (domain,)
        if queue:
            sql += " AND queue = ?"
            args += (queue,)
        with self.lock:
            rows = [(float(a), int(m), float(o)) for a, m, o in self.db.execute(sql + " ORDER BY at", args)]
        step = max(1, len(rows) // MAX_POINTS)
        return rows[::step] if step > 1 else rows

    def store_report(self, domain: str, at: float, evidence_json: str) -> None:
        with self.lock, self.db:
            self.db.execute(
                "INSERT INTO reports VALUES (?, ?, ?) ON CONFLICT(domain) DO UPDATE SET at = excluded.at,"
                " evidence = excluded.evidence", (domain, at, evidence_json))

    def report(self, domain: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT evidence FROM reports WHERE domain = ?", (domain,)).fetchone()
        return None if row is None else str(row[0])

    def prune(self, before: float) -> None:
        with self.lock, self.db:
            self.db.execute("DELETE FROM history WHERE at < ?", (before,))
            self.db.execute("DELETE FROM reports WHERE at < ?", (before,))
