"""Pushed hosts in the watch, without a network diagnosis: each host's watcher over its snapshot, the
dashboard naming the host and how an Exchange 2010 queue was aged, the silence alert raised and
cleared, the vantage a host's DNS settings give its diagnosis, and the [web]/[hosts] config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mxdoctor import api
from mxdoctor.errors import ConfigError
from mxdoctor.lab import runner
from mxdoctor.monitor import config, history, notify, state, watch
from mxdoctor.monitor.fleet import SILENCE, Fleet, Host, HostWatcher
from mxdoctor.queues import exchange_snapshot
from mxdoctor.web import app as web_app
from mxdoctor.web import runtime
from mxdoctor.web.server import WebServer
from mxdoctor.web.watchboard import WatchBoard

DATA = Path(__file__).parents[1] / "data" / "queues"
ROOT = Path(__file__).parents[2]
TOKEN = "token-of-sbs1-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1_796_100_000.0  # 2026-12-01 04:40 UTC, after the samples were collected

    def __call__(self) -> float:
        return self.now


class Kept:
    """A notifier that keeps what it is given (the delivery itself is tested in tests/monitor)."""

    name = "kept"

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def send(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)


def queue_only(text: str) -> str:
    """The Exchange 2010 sample without its Get-Message rows: its queues are aged from Get-Queue."""
    head, _, rest = text.partition("#section get-message")
    return head + "#section transport-server" + rest.partition("#section transport-server")[2]


class Site:
    def __init__(self, tmp: Path) -> None:
        self.clock = Clock()
        self.fleet = Fleet(tmp / "hosts", {"sbs1": Host.make("sbs1", token=TOKEN, silent_after=1200)},
                           clock=self.clock)
        self.kept = Kept()
        self.state = state.State(tmp / "sbs1.sqlite")
        self.history = history.History(str(tmp / "board.sqlite"))
        self.board = WatchBoard(self.history, lambda d: api.diagnose(d), ["none"], clock=self.clock)
        options = watch.WatchOptions(source=self.fleet.source("sbs1"), interval=60, alert_age=600, diagnose=False,
                                     host="sbs1")
        self.watcher = HostWatcher(self.fleet, "sbs1", options, self.state, [self.kept], clock=self.clock)
        self.watcher.observers.append(lambda r: self.board.observe(
            "sbs1", r, self.state, age_from=self.fleet.age_from("sbs1"), silent_for=self.fleet.silent("sbs1")))
        self.server = WebServer(web_app.Dashboard(self.board, web_app.WebOptions(), self.fleet).app, "127.0.0.1",
                                runner._free_port())
        self.server.start()

    def poll(self) -> watch.PollResult:
        result = self.watcher.poll()
        for observe in self.watcher.observers:
            observe(result)
        return result

    def push(self, body: bytes) -> int:
        request = urllib.request.Request(f"{self.server.url}/api/v1/queues/sbs1", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.server.url + path, timeout=30) as r:
            return r.read().decode()

    def close(self) -> None:
        self.server.stop()
        self.history.close()
        self.state.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    try:
        yield s
    finally:
        s.close()


def test_dashboard_names_the_host_and_how_its_queue_was_aged(site: Site) -> None:
    assert site.poll().error == "waiting for the first snapshot from sbs1"
    assert site.push(queue_only((DATA / "exchange2010-snapshot.txt").read_text()).encode()) == 202
    result = site.poll()
    assert result.ok and result.raised == ["example.com"]
    (alert,) = site.kept.payloads
    assert alert["host"] == "sbs1" and "LastRetryTime" in alert["age_from"]
    assert notify.headline(alert).startswith("DELAYED on sbs1: 2 message(s) to example.com")
    assert "aged from the LastRetryTime" in notify.headline(alert)
    (queue,) = json.loads(site.get("/api/v1/state"))["queues"]
    assert queue["name"] == "sbs1" and queue["domains"][0]["domain"] == "example.com"
    assert "LastRetryTime" in queue["domains"][0]["age_from"] and queue["domains"][0]["firing"]
    page = site.get("/")
    assert '<h2 id="q-1">sbs1</h2>' in page and 'data-domain="example.com"' in page and "LastRetryTime" in page
    assert 'href="/domain/example.com?queue=sbs1"' in page


def test_silent_host_alerts_and_clears(site: Site) -> None:
    body = (DATA / "exchange2016-snapshot.txt").read_bytes()
    assert site.push(body) == 202
    assert site.poll().raised == ["broken.example"]
    site.clock.now += 1500  # 25 minutes without a snapshot, past the host's 20
    result = site.poll()
    assert result.raised == [SILENCE] and not result.cleared
    assert site.state.firing() == {"broken.example", SILENCE}  # a silent host is not a drained one
    assert notify.headline(site.kept.payloads[-1]) == (
        "SILENT: no snapshot from sbs1 for 25m (expected at least every 20m)")
    assert json.loads(site.get("/api/v1/state"))["queues"][0]["silent_for_s"] == pytest.approx(1500)
    assert site.poll().raised == []  # raised once
    assert site.push(body) == 202
    result = site.poll()
    assert result.cleared == [SILENCE] and site.state.firing() == {"broken.example"}
    assert notify.headline(site.kept.payloads[-1]) == "RESOLVED: sbs1 pushes its queue again"
    assert [(p.get("kind"), p["event"]) for p in site.kept.payloads] == [
        (None, "alert"), ("silence", "alert"), ("silence", "clear")]


def test_vantage_of_a_pushed_exchange_host() -> None:
    base = api.DiagnoseOptions(resolvers=("127.0.0.1",), externals=(), dns_port=53)
    dns16 = exchange_snapshot.parse((DATA / "exchange2016-snapshot.txt").read_text().splitlines(True))[0].dns
    seen = runtime.vantage(base, "exch16", dns16)
    assert seen.options.resolvers == ("10.1.0.10", "10.1.0.11", "127.0.0.1")
    assert seen.options.externals == ("192.0.2.53", "198.51.100.53")
    assert seen.knobs == {"exchange2010": ("UseExternalDNSServersEnabled",),
                          "exchange2013": ("UseExternalDNSServersEnabled",)}
    assert seen.labels["10.1.0.10"] == "exch16's internal DNS"
    dns10 = exchange_snapshot.parse((DATA / "exchange2010-snapshot.txt").read_text().splitlines(True))[0].dns
    seen = runtime.vantage(base, "sbs1", dns10)
    assert seen.options.resolvers == ("192.168.16.2", "127.0.0.1") and seen.options.externals == ()
    assert seen.knobs == {}
    assert runtime.vantage(base, "pf1", None).options == base  # a Postfix host: the watch's own views


def test_web_and_hosts_config(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("z" * 24 + "\n")
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'postfix = ""\n[web]\nlisten = "[::1]:8425"\ntoken_file = "{tmp_path}/t"\nrefresh = "1m"\n'
                   f'[hosts.sbs1]\ntoken = "{TOKEN}"\nsilent-after = "30m"\n')
    s = config.merge(str(cfg), {}, {})
    assert s.web is not None and (s.web.host, s.web.port, s.web.token, s.web.refresh) == ("::1", 8425, "z" * 24, 60)
    assert s.hosts == (Host("sbs1", TOKEN, 1800.0),)
    assert TOKEN not in repr(s) and "z" * 24 not in repr(s)  # secrets never reach a log line
    assert config.merge(str(cfg), {"web": "127.0.0.1:9000"}, {}).web.port == 9000  # type: ignore[union-attr]
    for text, message in [
        ('[web]\nlisten = "0.0.0.0:8425"\n', "w.toml: web.listen: listening on 0.0.0.0 (beyond loopback) requires"),
        (f'[hosts.sbs1]\ntoken = "{TOKEN}"\n', "w.toml: hosts: pushed hosts need the [web] listener"),
        ('[web]\nlisten = "127.0.0.1:1"\n[hosts.sbs1]\ntoken = "short"\n', "w.toml: hosts.sbs1: a token"),
        ('[web]\nlisten = "127.0.0.1:1"\n[hosts.sbs1]\ntoken = "' + "x" * 20 + '"\nsilent_after = "soon"\n',
         "w.toml: hosts.sbs1.silent_after:"),
        ('[web]\nlisten = "127.0.0.1:1"\n[hosts.sbs1]\ntokn = "x"\n', "w.toml: hosts.sbs1.tokn: unknown key"),
        ('[web]\nlisten = "127.0.0.1:1"\ntoken = "' + "y" * 20 + '"\ntoken_file = "/x"\n', "w.toml: web: give token"),
        ('[web]\nlisten = 8425\n', "w.toml: web.listen: expected"),
    ]:
        cfg.write_text(text)
        with pytest.raises(ConfigError) as err:
            config.merge(str(cfg), {}, {})
        assert str(err.value).startswith(str(tmp_path)) and message in str(err.value), str(err.value)
        assert "x" * 20 not in str(err.value) and "y" * 20 not in str(err.value)


def test_web_beyond_loopback_without_token_is_one_line_exit_3(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mxdoctor.cli", "watch", str(DATA / "postfix-3.7-postqueue-j.jsonl"), "--once",
         "--no-log", "--web", "0.0.0.0:8425", "--state", str(tmp_path / "s.sqlite")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ},
    )
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--web: listening on 0.0.0.0 (beyond loopback) requires a token" in proc.stderr


def test_metrics_name_the_host() -> None:
    from prometheus_client import generate_latest

    from mxdoctor.monitor import metrics

    local, pushed = metrics.WatchMetrics(), metrics.WatchMetrics()
    local.polls.labels("ok").inc()
    pushed.polls.labels("ok").inc()
    pushed.polls.labels("ok").inc()
    pushed.alerts.labels("example.com").set(1)
    text = generate_latest(metrics.fleet_registry({"": local, "sbs1": pushed})).decode()
    assert 'mxdoctor_watch_polls_total{host="",result="ok"} 1.0' in text
    assert 'mxdoctor_watch_polls_total{host="sbs1",result="ok"} 2.0' in text
    assert 'mxdoctor_watch_alert_firing{domain="example.com",host="sbs1"} 1.0' in text \
        or 'mxdoctor_watch_alert_firing{host="sbs1",domain="example.com"} 1.0' in text
    types = text.count("# TYPE mxdoctor_watch_polls_total counter") + text.count("# TYPE mxdoctor_watch_polls counter")
    assert types == 1  # one family, both hosts' series in it


def test_watch_serves_the_dashboard_of_its_local_queue_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal
    import time

    sys.path.insert(0, str(Path(__file__).parents[1] / "monitor"))
    from watch_helpers import wait_for, write_queue

    queue = tmp_path / "queue.jsonl"
    write_queue(queue, time.time(), [("bob@example.com", 3600, "connect to mx.example.com[192.0.2.1]:25: "
                                      "Connection timed out")])
    port = runner._free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mxdoctor.cli", "watch", str(queue), "--interval", "0.5s", "--no-diagnose",
         "--no-log", "--web", f"127.0.0.1:{port}", "--state", str(tmp_path / "s.sqlite")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        def listed() -> Any:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/state", timeout=5) as r:
                    queues = json.loads(r.read())["queues"]
            except OSError:
                return None
            return queues if queues and queues[0]["domains"] else None

        (q,) = wait_for(listed, 30, "the dashboard to list the queue")
        assert q["name"] == str(queue) and q["domains"][0]["domain"] == "example.com"
        assert q["domains"][0]["category"] == "connect" and q["domains"][0]["firing"]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert time.monotonic() - started < 5.0
        assert proc.stderr is not None
        assert "dashboard at http://127.0.0.1:" in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
