"""mxdoctor scan --workers N against the lab's resolver: the chunks scanned by worker processes come
back as the same records, in input order, as one process writes; an interrupted run resumes;
``mxdoctor.scan()`` yields the same records."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _scanlab import DOMAINS, ROUTES, records, scan_cli

from mxdoctor import lab
from mxdoctor.lab import scenario as scenario_mod
from mxdoctor.scan import run


@pytest.fixture(scope="module")
def routes_lab() -> Iterator[lab.Card]:
    with lab.running(scenario_mod.parse(ROUTES, name="scan-routes")) as card:
        yield card


def _list(tmp_path: Path, n: int) -> Path:
    names = [DOMAINS[i % len(DOMAINS)] if i % 4 else f"n{i}.nxd.example.com" for i in range(n)]
    names[7] = "not a domain"
    names[n * 3 // 4] = "# a comment"
    path = tmp_path / "list.txt"
    path.write_text("\n".join(names) + "\n")
    return path


def _slow_run(source: Path, resolver: str, out: Path) -> subprocess.Popen[str]:
    """A scan on two workers at 30 queries/s into ``out``, once it has written ten records."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mxdoctor.cli", "scan", str(source), "--resolver", resolver, "--qps", "30",
         "--workers", "2", "--chunk", "5", "-o", str(out)], stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 10):
        time.sleep(0.05)
    return proc


def test_workers_equal_one_process(routes_lab: lab.Card, tmp_path: Path) -> None:
    source = _list(tmp_path, 200)
    resolver = routes_lab.resolver("internal").hostport
    single = scan_cli([str(source), "--resolver", resolver, "--qps", "0", "--workers", "1"])
    spread = scan_cli([str(source), "--resolver", resolver, "--qps", "0", "--workers", "2", "--chunk", "17"])
    assert single.returncode == 0 and spread.returncode == 0, spread.stderr
    assert records(spread.stdout) == records(single.stdout)
    assert [r["line"] for r in records(spread.stdout)] == [n for n in range(1, 201) if n != 151]  # 151: the comment
    assert spread.stderr.splitlines()[-5:] == single.stderr.splitlines()[-5:]  # the same summary
    assert "line 8: 'not a domain' contains white space" in spread.stderr
    csv_single = scan_cli([str(source), "--resolver", resolver, "--qps", "0", "--workers", "1", "--format", "csv"])
    csv_spread = scan_cli([str(source), "--resolver", resolver, "--qps", "0", "--workers", "3", "--chunk", "50",
                           "--format", "csv"])  # fmt: skip
    assert csv_spread.stdout == csv_single.stdout and csv_spread.stdout.startswith("line,")


def test_workers_resume_after_an_interruption(routes_lab: lab.Card, tmp_path: Path) -> None:
    source = _list(tmp_path, 120)
    resolver = routes_lab.resolver("internal").hostport
    out = tmp_path / "out.jsonl"
    slow = _slow_run(source, resolver, out)
    os.kill(slow.pid, signal.SIGINT)  # Ctrl-C: the pool stops, what is written is whole records
    _, err = slow.communicate(timeout=30)
    assert slow.returncode == 130 and "Traceback" not in err, err
    done_before = out.read_bytes().count(b"\n")
    assert 10 <= done_before < 119  # 120 lines, one a comment
    p = scan_cli([str(source), "--resolver", resolver, "--qps", "0", "--workers", "2", "--chunk", "7", "-o",
                  str(out), "--resume"])  # fmt: skip
    assert p.returncode == 0, p.stderr
    full = scan_cli([str(source), "--resolver", resolver, "--qps", "0", "--workers", "1"])
    assert records(out.read_text()) == records(full.stdout)  # none lost, none doubled, in order
    assert "domains: 119" in p.stderr


def test_worker_count() -> None:
    named = run.ScanOptions(resolvers=("127.0.0.1",))
    assert named.worker_count(named.limits()) == 1  # the polite default rate is one process's work
    fast = run.ScanOptions(resolvers=("127.0.0.1",), qps=0)
    cpus = len(os.sched_getaffinity(0))
    assert fast.worker_count(fast.limits()) == min(cpus, run.MAX_WORKERS)
    assert run.ScanOptions(resolvers=("127.0.0.1",), qps=0, workers=3).worker_count(fast.limits()) == 3
    bad = scan_cli(["-", "--resolver", "127.0.0.1", "--workers", "0"], stdin="")
    assert bad.returncode == 3 and "--workers must be from 1" in bad.stderr


def test_api_scan_yields_the_command_s_records(routes_lab: lab.Card, tmp_path: Path) -> None:
    import mxdoctor

    source = _list(tmp_path, 100)
    resolver = routes_lab.resolver("internal").hostport
    command = records(scan_cli([str(source), "--resolver", resolver, "--qps", "0", "--workers", "1"]).stdout)
    names = source.read_text().splitlines()
    one = mxdoctor.scan(names, mxdoctor.ScanOptions(resolvers=(resolver,), qps=0, chunk=9))
    assert next(one) == command[0]  # an iterator: records come as they are scanned
    assert [command[0], *one] == command
    spread = mxdoctor.scan(iter(names), mxdoctor.ScanOptions(resolvers=(resolver,), qps=0, workers=2, chunk=13))
    assert list(spread) == command
    (bad,) = mxdoctor.scan(["user@"], mxdoctor.ScanOptions(resolvers=(resolver,)))
    assert (bad["line"], bad["status"], bad["domain"]) == (1, "invalid", None)


def test_a_dead_worker_ends_the_run_in_one_line(routes_lab: lab.Card, tmp_path: Path) -> None:
    source = _list(tmp_path, 120)
    proc = _slow_run(source, routes_lab.resolver("internal").hostport, tmp_path / "out.jsonl")
    out = tmp_path / "out.jsonl"
    tasks = Path(f"/proc/{proc.pid}/task").iterdir()
    workers = [int(p) for task in tasks for p in (task / "children").read_text().split()]
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "Traceback" not in err, err
    assert "a worker process died" in err and "--resume continues the run" in err
    done = records(out.read_text())
    lines = [n for n in range(1, 121) if n != 91]  # 91: the comment
    assert [r["line"] for r in done] == lines[: len(done)]  # whole records, in order
