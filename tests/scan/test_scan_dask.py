"""mxdoctor scan --dask on a LocalCluster of two worker processes on loopback: the records equal the
single-process run's, in input order, also when a worker dies in the middle of the scan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mxdoctor import lab
from mxdoctor.lab import scenario as scenario_mod

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]  # the cluster's own warnings

from _scanlab import DOMAINS, ROUTES, records  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        worker_dashboard_address=None,
    ) as c:  # fmt: skip
        yield c


@pytest.fixture(scope="module")
def routes_card() -> Iterator[lab.Card]:
    with lab.running(scenario_mod.parse(ROUTES, name="scan-routes")) as card:
        yield card


def _scan(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mxdoctor.cli", "scan", *args], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def _list(tmp_path: Path, n: int) -> Path:
    names = [DOMAINS[i % len(DOMAINS)] if i % 4 else f"n{i}.nxd.example.com" for i in range(n)]
    names[7] = "not a domain"
    path = tmp_path / "list.txt"
    path.write_text("\n".join(names) + "\n")
    return path


def test_dask_equals_single_process(cluster: Any, routes_card: lab.Card, tmp_path: Path) -> None:
    source = _list(tmp_path, 200)
    resolver = routes_card.resolver("internal").hostport
    single = _scan([str(source), "--resolver", resolver, "--qps", "0"])
    spread = _scan([str(source), "--resolver", resolver, "--qps", "0", "--dask", cluster.scheduler_address,
                    "--chunk", "17"])  # fmt: skip
    assert single.returncode == 0 and spread.returncode == 0, spread.stderr
    assert records(spread.stdout) == records(single.stdout)
    assert [r["line"] for r in records(spread.stdout)] == list(range(1, 201))
    assert spread.stderr.splitlines()[-5:] == single.stderr.splitlines()[-5:]  # the same summary
    assert "line 8: 'not a domain' contains white space" in spread.stderr


def test_dask_survives_a_dead_worker(cluster: Any, routes_card: lab.Card, tmp_path: Path) -> None:
    source = _list(tmp_path, 240)
    resolver = routes_card.resolver("internal").hostport
    single = _scan([str(source), "--resolver", resolver, "--qps", "0"])
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mxdoctor.cli", "scan", str(source), "--resolver", resolver, "--qps", "60",
         "--dask", cluster.scheduler_address, "--chunk", "20", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = distributed.Client(cluster.scheduler_address, set_as_default=False)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size == 0):
            time.sleep(0.05)
        pids = client.run(os.getpid)
        os.kill(next(iter(pids.values())), signal.SIGKILL)  # a worker dies with chunks in hand
        _, err = proc.communicate(timeout=120)
    finally:
        client.close()
    assert proc.returncode == 0, err
    assert records(out.read_text()) == records(single.stdout)  # none lost, none doubled, in order
