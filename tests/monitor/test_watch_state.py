"""The watch's state file: event ids never reused across a reset, unusable files moved aside with a
fresh start, a first-schema file adopted as it is, and a state path that works for a user without root."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watch_helpers import write_queue

from mxdoctor.errors import ConfigError
from mxdoctor.monitor import state

NOBODY = 65534
CONN = "connect to mx.slow.example[192.0.2.9]:25: Connection timed out"


def test_event_ids_are_new_after_a_reset(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    first = state.State(path)
    event = first.raise_alert("a.example", {}, 1.0)
    assert event is not None and event.id == f"a.example#{first.epoch}.1:alert"
    first.close()
    for side in tmp_path.iterdir():
        side.unlink()  # the state is lost: generation numbers start again at 1
    second = state.State(path)
    again = second.raise_alert("a.example", {}, 2.0)
    assert again is not None and again.id != event.id and second.epoch != first.epoch
    second.close()
    third = state.State(path)  # a plain restart keeps the epoch
    assert third.epoch == second.epoch


def foreign_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE accounts (id INTEGER)")
    db.commit()
    db.close()


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p: p.write_bytes(os.urandom(4096)), "file is not a database"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (foreign_database, "tables accounts"),
], ids=["random-bytes", "emptied", "other-database"])
def test_unusable_state_is_moved_aside_and_watch_starts_fresh(
        tmp_path: Path, make: object, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "watch.sqlite"
    make(path)  # type: ignore[operator]
    before = path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="mxdoctor.watch"):
        fresh = state.State(path)
    (record,) = [r for r in caplog.records if "moved aside" in r.getMessage()]
    assert reason in record.getMessage() and "starting fresh" in record.getMessage()
    assert fresh.fresh_start and reason in fresh.fresh_start
    (aside,) = tmp_path.glob("watch.sqlite.corrupt-*")
    assert aside.read_bytes() == before
    assert fresh.raise_alert("a.example", {}, 1.0) is not None and fresh.firing() == {"a.example"}
    fresh.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mxdoctor.watch"):
        reopened = state.State(path)
    assert reopened.firing() == {"a.example"} and not caplog.records and reopened.fresh_start is None


def test_a_state_of_the_first_schema_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE alerts (domain TEXT PRIMARY KEY, firing INTEGER NOT NULL, raised_at REAL NOT NULL,
                             cleared_at REAL, generation INTEGER NOT NULL DEFAULT 1);
        CREATE TABLE events (id TEXT PRIMARY KEY, domain TEXT NOT NULL, kind TEXT NOT NULL,
                             created_at REAL NOT NULL, payload TEXT NOT NULL);
        CREATE TABLE deliveries (event_id TEXT NOT NULL, notifier TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                                 last_error TEXT, sent_at REAL, PRIMARY KEY (event_id, notifier));
        CREATE TABLE diagnoses (domain TEXT PRIMARY KEY, at REAL NOT NULL, summary TEXT NOT NULL);
        INSERT INTO alerts VALUES ('a.example', 1, 1.0, NULL, 3);
    """)
    db.commit()
    db.close()
    adopted = state.State(path)
    assert adopted.fresh_start is None and adopted.firing() == {"a.example"}
    adopted.set_notifiers(["webhook"])
    clear = adopted.clear_alert("a.example", {}, 2.0)
    assert clear is not None and clear.id == f"a.example#{adopted.epoch}.3:clear"
    assert [e.id for e in adopted.pending("webhook")] == [clear.id]


def test_a_file_the_history_made_first_is_adopted(tmp_path: Path) -> None:
    from mxdoctor.monitor import history

    path = tmp_path / "watch.sqlite"
    kept = history.History(str(path))
    kept.record(1.0, [history.Sample("deferred", "a.example", 1, 60.0)])
    kept.close()
    adopted = state.State(path)
    assert adopted.fresh_start is None and not list(tmp_path.glob("*.corrupt-*"))
    assert adopted.db.execute("SELECT COUNT(*) FROM history").fetchone()[0] == 1


def test_a_state_path_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="state directory"):
        state.State(tmp_path / "file" / "watch.sqlite")
    with pytest.raises(ConfigError, match="not a regular file"):
        state.State(tmp_path)


def test_default_path_falls_back_to_the_xdg_state_directory(tmp_path: Path) -> None:
    if os.access("/var/lib", os.W_OK):
        assert state.default_path({}) == Path(state.SYSTEM_STATE_DIR) / state.STATE_FILE
        pytest.skip("the system directory is writable here; the unprivileged case runs as nobody below")
    xdg = tmp_path / "xdg"
    home = tmp_path / "home"
    home.mkdir()
    assert state.default_path({"XDG_STATE_HOME": str(xdg)}) == xdg / "mxdoctor" / state.STATE_FILE
    assert state.default_path({"HOME": str(home)}) == home / ".local/state/mxdoctor" / state.STATE_FILE


@pytest.fixture
def nobody_home() -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run watch as an unprivileged user")
    # A checkout below a 0700 directory (mktemp -d) is closed to nobody: open the way to the code and
    # the virtual environment it runs (search permission only) for the test, and close it again.
    opened: list[tuple[Path, int]] = []
    import mxdoctor

    for leaf in (Path(sys.prefix), Path(mxdoctor.__file__).parent):
        for d in (leaf, *leaf.parents):
            mode = d.stat().st_mode
            if not mode & 0o001 and all(d != o for o, _ in opened):
                opened.append((d, mode))
                os.chmod(d, mode | 0o001)
    home = Path(tempfile.mkdtemp(prefix="mxdoctor-h2-watch-nobody-"))
    os.chmod(home, 0o755)
    os.chown(home, NOBODY, NOBODY)
    try:
        probe = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c",
             "import mxdoctor.cli"],
            capture_output=True, text=True, timeout=60, cwd="/",
        )
        if probe.returncode != 0:
            pytest.skip(f"an unprivileged user cannot run this checkout's mxdoctor: {probe.stderr.strip()[-200:]}")
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)
        for d, mode in reversed(opened):
            os.chmod(d, mode)


def run_as_nobody(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    return subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-m", "mxdoctor.cli",
         "watch", str(home / "queue.jsonl"), "--once", "--no-diagnose", "--no-log", *args],
        capture_output=True, text=True, timeout=60, env={**base, **(env or {})}, cwd=home,
    )


def test_watch_as_an_unprivileged_user_keeps_its_state_in_the_home(nobody_home: Path) -> None:
    assert not os.access(state.SYSTEM_STATE_DIR, os.F_OK) or not _writable_by_nobody(state.SYSTEM_STATE_DIR)
    queue = nobody_home / "queue.jsonl"
    write_queue(queue, time.time(), [("m@a.example", 7200, CONN)])
    os.chown(queue, NOBODY, NOBODY)
    proc = run_as_nobody(nobody_home)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    made = nobody_home / ".local" / "state" / "mxdoctor" / state.STATE_FILE
    assert made.exists() and made.stat().st_uid == NOBODY
    xdg = nobody_home / "xdg"
    proc = run_as_nobody(nobody_home, env={"XDG_STATE_HOME": str(xdg)})
    assert proc.returncode == 0, proc.stderr
    assert (xdg / "mxdoctor" / state.STATE_FILE).exists()


def test_watch_as_an_unprivileged_user_with_no_usable_path_is_one_line(nobody_home: Path) -> None:
    queue = nobody_home / "queue.jsonl"
    write_queue(queue, time.time(), [("m@a.example", 7200, CONN)])
    os.chmod(nobody_home, 0o555)  # nobody may read its home but not write to it
    proc = run_as_nobody(nobody_home)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "is writable: give --state FILE" in line
    proc = run_as_nobody(nobody_home, "--state", "/var/lib/mxdoctor-h2-watch-denied/watch.sqlite")
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Permission denied" in proc.stderr


def _writable_by_nobody(path: str) -> bool:
    st = os.stat(path)
    return bool(st.st_uid == NOBODY or st.st_mode & 0o002)
