"""The progress display through a real pseudo-terminal: drawn on standard error when it is a terminal,
absent when it is a pipe or ``--no-progress`` is given, and standard output the same byte for byte."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mxdoctor import api, lab, progress
from mxdoctor.queues import formats

DATA = Path(__file__).resolve().parent / "data" / "queues"


def run(argv: list[str], *, tty: bool, stdin: Path | None = None) -> tuple[str, str]:
    """Run mxdoctor with standard error on a fresh pseudo-terminal (``tty``) or a pipe; stdout is a
    pipe either way; standard input is piped from ``stdin``. Returns (stdout, stderr)."""
    if stdin is not None:
        with stdin.open("rb") as fh:
            feeder = subprocess.Popen(["cat"], stdin=fh, stdout=subprocess.PIPE)
        assert feeder.stdout is not None
        try:
            return _run(argv, tty=tty, stdin=feeder.stdout.fileno())
        finally:
            feeder.stdout.close()
            feeder.wait(10)
    return _run(argv, tty=tty, stdin=subprocess.DEVNULL)


def _run(argv: list[str], *, tty: bool, stdin: int) -> tuple[str, str]:
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "mxdoctor.cli", *argv]
    if not tty:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, stdin=stdin)
        return proc.stdout, proc.stderr
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has gone
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=stdin, env=env) as p:
            os.close(slave)
            out, _ = p.communicate(timeout=60)
        reader.join(10)
    finally:
        os.close(master)
    return out.decode(), b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def big_queue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Postfix JSON listing of some 20,000 records: several progress events."""
    lines = (DATA / "postfix-3.7-postqueue-j.jsonl").read_text().splitlines()
    path = tmp_path_factory.mktemp("queue") / "big.jsonl"
    path.write_text("\n".join(lines * (20000 // len(lines) + 1)) + "\n")
    return path


def test_queue_progress_on_a_terminal_only(big_queue: Path) -> None:
    argv = ["queue", str(big_queue), "--now", "1700000000"]
    out_tty, err_tty = run(argv, tty=True)
    out_pipe, err_pipe = run(argv, tty=False)
    assert "reading " in err_tty and "MiB" in err_tty, err_tty
    assert err_pipe == ""
    assert out_tty == out_pipe and "TOTAL" in out_tty
    out_off, err_off = run([*argv, "--no-progress"], tty=True)
    assert "reading " not in err_off and out_off == out_pipe


def test_queue_from_a_pipe_counts_records(big_queue: Path) -> None:
    argv = ["queue", "-", "--now", "1700000000"]
    out_tty, err_tty = run(argv, tty=True, stdin=big_queue)
    out_pipe, err_pipe = run(argv, tty=False, stdin=big_queue)
    assert "reading stdin" in err_tty and " records" in err_tty, err_tty
    assert err_pipe == "" and out_tty == out_pipe


def test_queue_file_reports_bytes_of_its_size(big_queue: Path) -> None:
    events: list[progress.Progress] = []
    api.read_queue(formats.Source(path=str(big_queue)), now=1700000000.0, on_progress=events.append)
    size = big_queue.stat().st_size
    assert {e.unit for e in events} == {progress.Unit.BYTES} and {e.total for e in events} == {size}
    middle = [e.done for e in events[1:-1]]
    assert middle and all(0 < d < size for d in middle) and middle == sorted(middle)
    assert events[-1].finished and events[-1].done == size


def lab_argv(card: lab.Card, command: str) -> list[str]:
    resolver = next(r.hostport for r in card.resolvers if r.name == "internal")
    argv = [command, card.domains[0], "--root-hints", card.root_hints, "--dns-port", str(card.dns_port),
            "--timeout", "1", "--json"]
    return [*argv, "--resolver", resolver, "--no-system"] if command == "diagnose" else argv


@pytest.mark.parametrize("command", ["diagnose", "audit"])
def test_lab_progress_on_a_terminal_only(command: str) -> None:
    with lab.running("aaaa-servfail") as card:
        out_tty, err_tty = run(lab_argv(card, command), tty=True)
        out_pipe, err_pipe = run(lab_argv(card, command), tty=False)
    unit = "lookups" if command == "diagnose" else "probes"
    assert f"{command} example.com" in err_tty and unit in err_tty and "to the deadline" in err_tty, err_tty
    assert err_pipe == ""
    # the same report either way (the timings of the exchanges differ from run to run)
    tty, pipe = json.loads(out_tty), json.loads(out_pipe)
    assert [f["code"] for f in tty["findings"]] == [f["code"] for f in pipe["findings"]]
    assert tty["verdicts"] == pipe["verdicts"]


def test_diagnose_counts_every_route_lookup() -> None:
    events: list[progress.Progress] = []
    with lab.running("aaaa-servfail") as card:
        options = api.lab_options(card, timeout=1.0)
        d = api.diagnose(card.domains[0], api.DiagnoseOptions(**{
            **{f: getattr(options, f) for f in ("resolvers", "externals", "use_system", "root_hints", "dns_port")},
            "on_progress": events.append,
        }))
    last = events[-1]
    assert last.finished and last.unit is progress.Unit.LOOKUPS and last.deadline is not None
    # every view asked MX, then A and AAAA of mx1: three route lookups each, all answered
    assert last.done == last.total == 3 * len(d.evidence.views)
