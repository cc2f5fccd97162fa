"""Pushed queues: POST /api/v1/queues/HOST on the dashboard's listener, per-host bearer tokens,
size and format checks with one-line reasons, the snapshot kept as the host's queue source."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mxdoctor.lab import runner
from mxdoctor.monitor.fleet import Fleet, Host
from mxdoctor.queues import formats
from mxdoctor.web import app as web_app
from mxdoctor.web.server import WebServer

DATA = Path(__file__).parents[1] / "data" / "queues"
TOKENS = {"sbs1": "token-of-sbs1-0123456789", "exch16": "token-of-exch16-0123456789"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class EmptyBoard:
    def queues(self) -> list[Any]:
        return []

    def history(self, queue: str, domain: str) -> list[Any]:
        return []

    def report(self, domain: str, queue: str = "") -> None:
        return None

    def diagnose(self, domain: str) -> Any:
        raise AssertionError("not used")

    def views(self) -> list[str]:
        return []


@pytest.fixture
def pushed(tmp_path: Path) -> Iterator[tuple[Fleet, WebServer, Clock]]:
    clock = Clock()
    fleet = Fleet(tmp_path / "hosts", {n: Host.make(n, token=t, silent_after=1200) for n, t in TOKENS.items()},
                  max_body=256 * 1024, clock=clock)
    server = WebServer(web_app.Dashboard(EmptyBoard(), web_app.WebOptions(), fleet).app, "127.0.0.1",
                       runner._free_port())
    server.start()
    try:
        yield fleet, server, clock
    finally:
        server.stop()


def post(server: WebServer, host: str, body: bytes, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{server.url}/api/v1/queues/{host}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def test_snapshot_taken_and_read_as_the_hosts_queue(pushed: tuple[Fleet, WebServer, Clock]) -> None:
    fleet, server, _ = pushed
    code, answer = post(server, "sbs1", (DATA / "exchange2010-snapshot.txt").read_bytes(), TOKENS["sbs1"])
    assert code == 202 and answer["format"] == "exchange-snapshot" and answer["records"] == 4
    items = list(formats.read(fleet.source("sbs1")))
    assert any(getattr(i, "queue_id", "") == "SBS1\\12\\4294967297" for i in items)
    dns = fleet.dns("sbs1")
    assert dns is not None and dns.internal == ("192.168.16.2",) and not dns.uses_external
    # A Postfix host pushes the same way (postqueue -j | curl ...).
    code, answer = post(server, "exch16", (DATA / "postfix-3.7-postqueue-j.jsonl").read_bytes(), TOKENS["exch16"])
    assert code == 202 and answer["format"] == "postfix-json" and fleet.dns("exch16") is None


@pytest.mark.parametrize(("host", "token", "status"), [
    ("sbs1", None, 401),
    ("sbs1", TOKENS["exch16"], 403),  # another host's token
    ("sbs1", "not-the-token-0123456789", 403),
    ("nobody", TOKENS["sbs1"], 403),
])
def test_tokens(pushed: tuple[Fleet, WebServer, Clock], host: str, token: str | None, status: int) -> None:
    fleet, server, _ = pushed
    code, answer = post(server, host, (DATA / "exchange2010-snapshot.txt").read_bytes(), token)
    assert code == status and "\n" not in answer["error"]
    assert not fleet.snapshot_path("sbs1").exists()


def test_too_large_and_unreadable(pushed: tuple[Fleet, WebServer, Clock]) -> None:
    fleet, server, _ = pushed
    code, answer = post(server, "sbs1", b"x" * (300 * 1024), TOKENS["sbs1"])
    assert code == 413 and "larger than" in answer["error"]
    code, answer = post(server, "sbs1", b"\x00\xff\xfe garbage", TOKENS["sbs1"])
    assert code == 400 and "\n" not in answer["error"]
    code, answer = post(server, "sbs1", b"hello\nworld\n", TOKENS["sbs1"])
    assert code == 400 and "not a queue listing" in answer["error"]
    assert not fleet.snapshot_path("sbs1").exists()


def test_silence_is_measured(pushed: tuple[Fleet, WebServer, Clock]) -> None:
    fleet, server, clock = pushed
    assert fleet.silent("sbs1") is None  # never pushed
    assert post(server, "sbs1", (DATA / "exchange2016-snapshot.txt").read_bytes(), TOKENS["sbs1"])[0] == 202
    clock.now += 600
    assert fleet.silent("sbs1") is None
    clock.now += 900
    assert fleet.silent("sbs1") == pytest.approx(1500)
    assert post(server, "sbs1", (DATA / "exchange2016-snapshot.txt").read_bytes(), TOKENS["sbs1"])[0] == 202
    assert fleet.silent("sbs1") is None


def test_host_config_errors(tmp_path: Path) -> None:
    from mxdoctor.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 16"):
        Host.make("sbs1", token="short")
    with pytest.raises(ConfigError, match="host name"):
        Host.make("../etc", token="x" * 20)
    with pytest.raises(ConfigError, match="cannot read"):
        Host.make("sbs1", token_file=str(tmp_path / "missing"))
    (tmp_path / "t").write_text("y" * 20 + "\n")
    assert Host.make("sbs1", token_file=str(tmp_path / "t")).token == "y" * 20
