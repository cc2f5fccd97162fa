"""The watch's persistent state in SQLite (WAL): which domains are alerting, the notification outbox
(one delivery row per event and notifier, with its attempts and next retry), the diagnosis cache,
and the state's epoch, a random tag in every event id so that ids are never reused, even after a reset.

Every change of alert state and the events it causes are written in one transaction before anything
is sent; a notifier's delivery is marked after it succeeds. A restart (or ``kill -9``) therefore
never loses an alert and never raises one twice; the only resend is an event whose send was cut
off before its marker was written, and it carries the same ``id`` so a receiver can drop it.
A file that is not a mxdoctor state database (random bytes, emptied, another program's database)
is renamed aside with a timestamp and a fresh state begins, with one log line saying so.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mxdoctor.errors import ConfigError

log = logging.getLogger("mxdoctor.watch")

# "MXDW" in the SQLite header: tells our state files from any other database.
APPLICATION_ID = 0x4D584457
SCHEMA_VERSION = 2

SYSTEM_STATE_DIR = "/var/lib/mxdoctor"
STATE_FILE = "watch.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
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
    next_at REAL,
    PRIMARY KEY (event_id, notifier)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (notifier, sent_at);
CREATE TABLE IF NOT EXISTS diagnoses (
    domain TEXT PRIMARY KEY,
    at REAL NOT NULL,
    summary TEXT NOT NULL
);
"""

_V1_TABLES = {"alerts", "events", "deliveries", "diagnoses"}
# Tables that other parts of the watch keep in the same file (monitor.history): not a foreign database.
_SHARED_TABLES = {"history", "reports"}


@dataclass(frozen=True)
class Event:
    id: str
    domain: str
    kind: str  # "alert" or "clear"
    created_at: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    """The oldest undelivered event of one notifier: what to send next, and when it may be tried."""

    event: Event
    attempts: int
    next_at: float | None
    last_error: str | None


class NotAState(Exception):
    """The file is not a usable mxdoctor state database (the reason is the message)."""


def default_path(environ: dict[str, str] | None = None) -> Path:
    """The state file: the system directory when it is writable, else the user's XDG state directory.

    Raises ConfigError when neither can be used.
    """
    env = os.environ if environ is None else environ
    system = Path(SYSTEM_STATE_DIR)
    if _writable_dir(system):
        return system / STATE_FILE
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and os.path.isabs(xdg):
        user = Path(xdg) / "mxdoctor"
    else:
        home = env.get("HOME") or os.path.expanduser("~")
        if not home or home == "~" or not os.path.isabs(home):
            raise ConfigError(f"{SYSTEM_STATE_DIR} is not writable and no home directory is known: give --state FILE")
        user = Path(home) / ".local" / "state" / "mxdoctor"
    if _writable_dir(user):
        return user / STATE_FILE
    raise ConfigError(f"neither {SYSTEM_STATE_DIR} nor {user} is writable: give --state FILE")


def _writable_dir(path: Path) -> bool:
    """True if ``path`` is a directory this process may create files in, or its nearest existing
    ancestor is one (so that it can be made)."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


class State:
    """One SQLite file; safe to reopen after any crash, and shared by the poll and the delivery threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.fresh_start: str | None = None  # why an unusable file was moved aside, if one was
        self.notifiers: tuple[str, ...] = ()
        self._lock = threading.RLock()
        self.db = self._open()
        self.epoch = self._epoch()

    # -- opening --------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            db = self._connect()
            self._initialise(db, 0)
            return db
        target = Path(self.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"state directory {target.parent}: {exc.strerror or exc}") from None
        if target.exists() and not target.is_file():
            raise ConfigError(f"state file {target}: not a regular file")
        try:
            if target.exists() and target.stat().st_size == 0:
                # An emptied state file: the alert state is gone; say so rather than start silently.
                raise NotAState("empty file")
            db = self._connect()
            try:
                self._adopt(db, target)
            except NotAState:
                db.close()
                raise
            return db
        except NotAState as exc:
            aside = self._move_aside(target)
            self.fresh_start = f"{exc}; moved aside to {aside}"
            log.warning("state file %s is not a mxdoctor state database (%s); moved aside to %s; starting fresh",
                        target, exc, aside)
            db = self._connect()
            self._adopt(db, target)
            return db
        except sqlite3.Error as exc:
            raise ConfigError(f"state file {target}: {exc}") from None

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"state file {self.path}: {exc}") from None

    def _adopt(self, db: sqlite3.Connection, target: Path) -> None:
        """Check that ``db`` is ours (or new, or of the first schema) and bring it to the current schema."""
        try:
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            check = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise NotAState(str(exc)) from None
        if check != "ok":
            raise NotAState(f"damaged: {check}")
        if app_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise ConfigError(f"state file {target}: written by a newer mxdoctor (schema {version})")
            self._initialise(db, version)
            return
        if app_id != 0:
            raise NotAState(f"application id {app_id:#x}")
        if tables <= _SHARED_TABLES:
            self._initialise(db, 0)
            return
        if _V1_TABLES <= tables:
            self._initialise(db, 1)  # the first schema had no header tag: adopt it
            return
        raise NotAState(f"tables {', '.join(sorted(tables))}")

    def _initialise(self, db: sqlite3.Connection, version: int) -> None:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            if version == 1:
                columns = {r[1] for r in db.execute("PRAGMA table_info(deliveries)")}
                if "next_at" not in columns:
                    db.execute("ALTER TABLE deliveries ADD COLUMN next_at REAL")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)", (secrets.token_hex(4),))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise ConfigError(f"state file {self.path}: {exc}") from None

    def _move_aside(self, target: Path) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = target.with_name(f"{target.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = target.with_name(f"{target.name}.corrupt-{stamp}-{n}")
        try:
            target.rename(aside)
            for suffix in ("-wal", "-shm"):
                side = Path(f"{target}{suffix}")
                if side.exists():
                    side.rename(Path(f"{aside}{suffix}"))
        except OSError as exc:
            raise ConfigError(f"state file {target} is unusable and cannot be moved aside: "
                              f"{exc.strerror or exc}") from None
        return aside

    def _epoch(self) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        return str(row[0])

    def close(self) -> None:
        with self._lock:
            self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    # -- alerts and their events ----------------------------------------------------------------
    def set_notifiers(self, names: Iterable[str]) -> None:
        """The notifiers each new event is queued for (one outbox row per notifier)."""
        self.notifiers = tuple(names)

    def firing(self) -> set[str]:
        with self._lock:
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
            return self._event(db, self.event_id(domain, generation, "alert"), domain, "alert", payload, now)

    def clear_alert(self, domain: str, payload: dict[str, Any], now: float) -> Event | None:
        """Mark ``domain`` cleared and queue its clear event; None if it was not firing."""
        with self.transaction() as db:
            row = db.execute("SELECT firing, generation FROM alerts WHERE domain = ?", (domain,)).fetchone()
            if row is None or not row[0]:
                return None
            db.execute("UPDATE alerts SET firing = 0, cleared_at = ? WHERE domain = ?", (now, domain))
            return self._event(db, self.event_id(domain, row[1], "clear"), domain, "clear", payload, now)

    def event_id(self, domain: str, generation: int, kind: str) -> str:
        """``domain#EPOCH.GENERATION:kind``: unique across resets, since each state has its own epoch."""
        return f"{domain}#{self.epoch}.{generation}:{kind}"

    def _event(self, db: sqlite3.Connection, event_id: str, domain: str, kind: str, payload: dict[str, Any],
               now: float) -> Event:
        payload = {**payload, "id": event_id, "event": kind}
        db.execute(
            "INSERT INTO events (id, domain, kind, created_at, payload) VALUES (?, ?, ?, ?, ?)",
            (event_id, domain, kind, now, json.dumps(payload, sort_keys=True)),
        )
        db.executemany("INSERT INTO deliveries (event_id, notifier) VALUES (?, ?)",
                       [(event_id, name) for name in self.notifiers])
        return Event(event_id, domain, kind, now, payload)

    # -- the outbox -----------------------------------------------------------------------------
    def pending(self, notifier: str) -> list[Event]:
        """Events this notifier has not delivered yet, in the order they were raised."""
        with self._lock:
            rows = self.db.execute(
                "SELECT e.id, e.domain, e.kind, e.created_at, e.payload FROM deliveries d"
                " JOIN events e ON e.id = d.event_id WHERE d.notifier = ? AND d.sent_at IS NULL ORDER BY e.rowid",
                (notifier,),
            ).fetchall()
        return [Event(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def head(self, notifier: str) -> Delivery | None:
        """The oldest event this notifier has not delivered: later ones wait for it, to keep their order."""
        with self._lock:
            r = self.db.execute(
                "SELECT e.id, e.domain, e.kind, e.created_at, e.payload, d.attempts, d.next_at, d.last_error"
                " FROM deliveries d JOIN events e ON e.id = d.event_id"
                " WHERE d.notifier = ? AND d.sent_at IS NULL ORDER BY e.rowid LIMIT 1",
                (notifier,),
            ).fetchone()
        if r is None:
            return None
        return Delivery(Event(r[0], r[1], r[2], r[3], json.loads(r[4])), int(r[5]), r[6], r[7])

    def backlog(self, notifier: str) -> int:
        """How many events wait for this notifier."""
        with self._lock:
            row = self.db.execute("SELECT COUNT(*) FROM deliveries WHERE notifier = ? AND sent_at IS NULL",
                                  (notifier,)).fetchone()
        return int(row[0])

    def attempt(self, event_id: str, notifier: str) -> None:
        """Record an attempt before sending, so repeated failures are counted across restarts."""
        with self._lock:
            self.db.execute(
                "INSERT INTO deliveries (event_id, notifier, attempts) VALUES (?, ?, 1)"
                " ON CONFLICT(event_id, notifier) DO UPDATE SET attempts = attempts + 1",
                (event_id, notifier),
            )

    def mark_sent(self, event_id: str, notifier: str, now: float) -> None:
        with self._lock:
            self.db.execute(
                "UPDATE deliveries SET sent_at = ?, last_error = NULL, next_at = NULL"
                " WHERE event_id = ? AND notifier = ?",
                (now, event_id, notifier),
            )

    def mark_failed(self, event_id: str, notifier: str, error: str, next_at: float | None = None) -> None:
        """Keep the event pending; ``next_at`` is the earliest time to try it again."""
        with self._lock:
            self.db.execute(
                "UPDATE deliveries SET last_error = ?, next_at = ? WHERE event_id = ? AND notifier = ?",
                (error, next_at, event_id, notifier),
            )

    def sent_count(self, kind: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.sent_at IS NOT NULL"
        args: tuple[str, ...] = ()
        if kind:
            sql += " AND e.kind = ?"
            args = (kind,)
        with self._lock:
            return int(self.db.execute(sql, args).fetchone()[0])

    def prune(self, before: float) -> int:
        """Forget delivered events and diagnoses older than ``before``; events still waiting for one of the
        current notifiers are kept, however old. Alert state is kept. Returns the events removed."""
        names = list(self.notifiers)
        marks = ", ".join("?" for _ in names) or "NULL"
        with self.transaction() as db:
            old = [r[0] for r in db.execute(
                "SELECT e.id FROM events e WHERE e.created_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d"
                f" WHERE d.event_id = e.id AND d.sent_at IS NULL AND d.notifier IN ({marks}))",
                (before, *names),
            )]
            db.executemany("DELETE FROM deliveries WHERE event_id = ?", [(i,) for i in old])
            db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in old])
            db.execute("DELETE FROM diagnoses WHERE at < ?", (before,))
        return len(old)

    # -- the diagnosis cache --------------------------------------------------------------------
    def cached_diagnosis(self, domain: str, max_age: float, now: float | None = None) -> dict[str, Any] | None:
        now = time.time() if now is None else now
        with self._lock:
            row = self.db.execute("SELECT at, summary FROM diagnoses WHERE domain = ?", (domain,)).fetchone()
        if row is None or now - row[0] >= max_age:
            return None
        value: dict[str, Any] = json.loads(row[1])
        return value

    def last_diagnosis(self, domain: str) -> dict[str, Any] | None:
        with self._lock:
            row = self.db.execute("SELECT summary FROM diagnoses WHERE domain = ?", (domain,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def store_diagnosis(self, domain: str, summary: dict[str, Any], now: float) -> None:
        with self._lock:
            self.db.execute(
                "INSERT INTO diagnoses (domain, at, summary) VALUES (?, ?, ?)"
                " ON CONFLICT(domain) DO UPDATE SET at = excluded.at, summary = excluded.summary",
                (domain, now, json.dumps(summary, sort_keys=True, default=str)),
            )
