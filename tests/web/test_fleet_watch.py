"""A running ``mxdoctor watch`` process taking pushed Exchange 2010 and 2016 snapshots from two hosts,
diagnosing through the lab's resolvers as the snapshots name them: one alert per host and delayed
domain, tokens refused, a silent host's alert raised and cleared, nothing lost to a ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "monitor"))
from watch_helpers import WebhookReceiver, wait_for  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from fleet_helpers import TOKENS, snapshots  # noqa: E402

from mxdoctor.lab import runner  # noqa: E402


class Watch:
    def __init__(self, tmp: Path, card: runner.Card, hook: WebhookReceiver) -> None:
        self.port = runner._free_port()
        (tmp / "exch16.token").write_text(TOKENS["exch16"] + "\n")
        self.config = tmp / "watch.toml"
        self.config.write_text(f"""
state = "{tmp}/state.sqlite"
interval = "0.5s"
alert_age = "60s"
queues = ["deferred"]  # the local queue's filter: no host's queue is filtered by it
resolvers = ["{card.resolver("internal").hostport}"]
dns_port = {card.dns_port}
root_hints = "{card.root_hints}"
diagnose_deadline = "20s"
log = false
webhook = "{hook.url}"

[web]
listen = "127.0.0.1:{self.port}"

[hosts.sbs1]
token = "{TOKENS["sbs1"]}"
silent_after = "4s"

[hosts.exch16]
token_file = "{tmp}/exch16.token"
silent_after = "4s"
""")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mxdoctor.cli", "watch", "--config", str(self.config)],
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        wait_for(lambda: self._up(), 30, "the dashboard to answer")

    def _up(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.proc and self.proc.stderr and \
            self.proc.stderr.read().decode()
        try:
            with urllib.request.urlopen(self.url + "/api/v1/state", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.close()

    def close(self) -> None:
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def stop(self) -> float:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(20)
        return time.monotonic() - started

    def push(self, host: str, body: bytes, token: str | None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        request = urllib.request.Request(f"{self.url}/api/v1/queues/{host}", data=body, headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.loads(e.read())

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read().decode()


class Pusher:
    """Pushes each host's current snapshot every half second, as the collector's scheduled task would."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.bodies: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def set(self, host: str, body: bytes | None) -> None:
        with self.lock:
            if body is None:
                self.bodies.pop(host, None)
            else:
                self.bodies[host] = body

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            with self.lock:
                todo = dict(self.bodies)
            for host, body in todo.items():
                try:
                    self.watch.push(host, body, TOKENS[host])
                except OSError:
                    pass  # the watch is being restarted


@pytest.fixture
def lab() -> Iterator[runner.Card]:
    with runner.running("aaaa-servfail") as card:
        yield card


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def events(hook: WebhookReceiver, **match: Any) -> list[dict[str, Any]]:
    return [b for b in list(hook.bodies) if all(b.get(k) == v for k, v in match.items())]


@pytest.mark.slow
def test_two_pushed_exchange_hosts(tmp_path: Path, lab: runner.Card, hook: WebhookReceiver) -> None:
    bodies = snapshots(lab)
    watch = Watch(tmp_path, lab, hook)
    watch.start()
    pusher = Pusher(watch)
    try:
        # Wrong or missing tokens are refused, before anything is kept.
        assert watch.push("sbs1", bodies["sbs1"], None)[0] == 401
        assert watch.push("sbs1", bodies["sbs1"], TOKENS["exch16"])[0] == 403
        assert watch.push("sbs1", bodies["sbs1"], "not-the-token-0123456789")[0] == 403
        assert watch.push("nobody", bodies["sbs1"], TOKENS["sbs1"])[0] == 403
        assert not events(hook)

        # Both hosts push; a kill -9 comes between two pushes, before the alerts are out.
        assert watch.push("sbs1", bodies["sbs1"], TOKENS["sbs1"])[0] == 202
        assert watch.push("exch16", bodies["exch16"], TOKENS["exch16"])[0] == 202
        time.sleep(0.5)
        watch.kill()
        watch.start()
        pusher.set("sbs1", bodies["sbs1"])
        pusher.set("exch16", bodies["exch16"])
        wait_for(lambda: len(events(hook, event="alert", domain="example.com")) >= 2, 90, "both hosts' alerts")

        alerts = events(hook, event="alert", domain="example.com")
        by_host = {b["host"]: b for b in alerts}
        assert set(by_host) == {"sbs1", "exch16"} and len({b["id"] for b in alerts}) == 2  # one per host
        assert by_host["sbs1"]["text"].startswith("DELAYED on sbs1: 2 message(s) to example.com queued")
        assert "; views: internal " in by_host["sbs1"]["text"]
        assert "(not reachable from here: internal " in by_host["exch16"]["text"]
        sbs1, exch16 = by_host["sbs1"]["diagnosis"], by_host["exch16"]["diagnosis"]
        assert sbs1["root_cause"] == "AAAA_SERVFAIL" and sbs1["verdicts"]["exchange2010"] == "defer"
        assert any("sbs1's internal DNS" in v for v in sbs1["views_used"]) and not sbs1["views_unreachable"]
        # exch16's internal DNS does not answer from here (RESOLVER_UNREACHABLE); its send connector's
        # external DNS is the view the Exchange models' UseExternalDNSServersEnabled ran through.
        assert any("exch16's internal DNS" in v and "RESOLVER_UNREACHABLE" in v for v in exch16["views_unreachable"])
        assert any("exch16's external DNS" in v for v in exch16["views_used"])
        assert exch16["knobs"] == ["UseExternalDNSServersEnabled"] and exch16["root_cause"] == "AAAA_SERVFAIL"

        # The dashboard lists the pushed hosts' domains under the hosts' names, each with its report.
        def listed() -> dict[str, Any]:
            state = json.loads(watch.get("/api/v1/state")[1])
            queues = {q["name"]: q for q in state["queues"]}
            return queues if all(queues.get(h, {}).get("domains") for h in ("sbs1", "exch16")) else {}

        queues = wait_for(listed, 30, "the restarted watch's dashboard to list both hosts")
        assert [d["domain"] for d in queues["sbs1"]["domains"]] == ["example.com"]
        assert queues["sbs1"]["domains"][0]["firing"]
        code, page = watch.get("/")
        assert code == 200 and "sbs1" in page and "exch16&#39;s external DNS, for its send connector" in page
        code, page = watch.get("/domain/example.com?queue=exch16")
        assert code == 200 and 'src="/domain/example.com/report?queue=exch16"' in page
        code, report = watch.get("/domain/example.com/report?queue=exch16")
        assert code == 200 and "AAAA_SERVFAIL" in report and "UseExternalDNSServersEnabled" in report

        # exch16 goes silent: its own alert; then it pushes a plain Get-Message JSON (no DNS settings),
        # which clears the silence, drains example.com there and holds stuck.example.
        pusher.set("exch16", None)
        wait_for(lambda: events(hook, kind="silence", event="alert", host="exch16"), 30, "exch16's silence alert")
        assert not events(hook, kind="silence", host="sbs1")
        pusher.set("exch16", bodies["exch16-json"])
        time.sleep(0.7)  # a push or two in, then another kill -9 before what it raises is all out
        watch.kill()
        watch.start()
        wait_for(lambda: events(hook, kind="silence", event="clear", host="exch16"), 30, "the silence to clear")
        wait_for(lambda: events(hook, event="alert", domain="stuck.example", host="exch16"), 60, "stuck.example")
        wait_for(lambda: events(hook, event="clear", domain="example.com", host="exch16"), 30, "exch16's clear")
        stuck = events(hook, event="alert", domain="stuck.example")[0]["diagnosis"]
        assert any("the watch's resolver" in v for v in stuck["views_used"])  # no DNS settings: the watch's own
        assert not events(hook, event="clear", domain="example.com", host="sbs1")
    finally:
        pusher.stop.set()
        pusher.thread.join(5)
        took = watch.stop() if watch.proc is not None and watch.proc.poll() is None else 0.0
        if watch.proc is not None and watch.proc.poll() is None:
            watch.proc.kill()
            watch.proc.wait(10)
        watch.close()
    assert took < 5.0, f"SIGTERM took {took:.1f}s"

    # Once each (a kill may at most repeat a send whose mark it cut off), in order per host.
    ids = [b["id"] for b in hook.bodies]
    assert len(set(ids)) >= len(ids) - 2, ids
    for host in ("sbs1", "exch16"):
        mine = [b for b in hook.bodies if b.get("host") == host]
        kinds = [(b.get("domain") or "(silent)", b["event"]) for b in mine]
        for key in {k for k, _ in kinds}:
            seq = [e for k, e in kinds if k == key]
            dedup = [e for i, e in enumerate(seq) if i == 0 or e != seq[i - 1]]
            assert dedup == ["alert", "clear"][: len(dedup)], (host, key, seq)
    texts = [b for b in hook.bodies if "silent_for" in b]
    assert texts and all(b["host"] == "exch16" for b in texts)
