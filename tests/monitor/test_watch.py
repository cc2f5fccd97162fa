"""The watch loop against real loopback receivers: alerts raised once, cleared on drain, diagnosed,
delivered by webhook and mail, exported as metrics, and kept across restarts and ``kill -9``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from watch_helpers import WebhookReceiver, wait_for, write_queue

from mxdoctor.cli import watch as watch_cli
from mxdoctor.errors import ConfigError
from mxdoctor.monitor import config as watch_config
from mxdoctor.monitor import metrics, notify, state, watch
from mxdoctor.queues import formats

DNS = "Host or domain name not found. Name service error for name=mx.stuck.example type=AAAA: Host not found, try again"
CONN = "connect to mx.slow.example[192.0.2.9]:25: Connection timed out"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingDiagnoser:
    """A real (if simple) diagnoser: names a root cause from the domain, and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, domain: str) -> dict[str, Any]:
        self.calls.append(domain)
        return {"domain": domain, "root_cause": "AAAA_SERVFAIL", "message": f"AAAA of mx.{domain} fails",
                "fix_sender": "query A when AAAA fails", "verdicts": {"exchange-2010": "defer", "postfix": "deliver"}}


def make_watcher(tmp_path: Path, clock: Clock, notifiers: list[notify.Notifier],
                 diagnoser: watch.Diagnoser | None = None, wm: metrics.WatchMetrics | None = None,
                 interval: float = 60.0) -> watch.Watcher:
    options = watch.WatchOptions(source=formats.Source(path=str(tmp_path / "queue.jsonl")), interval=interval,
                                 alert_age=1800)
    return watch.Watcher(options, state.State(tmp_path / "state.sqlite"), notifiers, diagnoser, wm, clock=clock)


def test_alert_once_diagnose_once_clear_on_drain(tmp_path: Path, webhook: WebhookReceiver) -> None:
    clock = Clock(1_800_000_000.0)
    queue = tmp_path / "queue.jsonl"
    diagnoser = CountingDiagnoser()
    w = make_watcher(tmp_path, clock, [notify.WebhookNotifier(webhook.url, 5)], diagnoser)

    write_queue(queue, clock.now, [("a@stuck.example", 3 * 3600, DNS), ("b@stuck.example", 60, DNS),
                                   ("c@slow.example", 600, CONN)])
    first = w.poll()
    assert first.ok and first.raised == ["stuck.example"] and first.sent == 1
    (alert,) = webhook.bodies
    assert alert["event"] == "alert" and alert["domain"] == "stuck.example" and alert["messages"] == 2
    assert alert["oldest_age"] == "3h00m" and alert["reason"]["category"] == "dns-temp"
    assert alert["reason"]["record_type"] == "AAAA" and alert["diagnosis"]["root_cause"] == "AAAA_SERVFAIL"
    assert "stuck.example" in alert["text"] and "3h00m" in alert["text"] and "AAAA_SERVFAIL" in alert["text"]
    assert webhook.headers[0]["Idempotency-Key"] == alert["id"]
    assert diagnoser.calls == ["stuck.example"]  # slow.example's deferral is not DNS-class

    clock.now += 30  # same interval: no new alert, no new diagnosis
    write_queue(queue, clock.now, [("a@stuck.example", 3 * 3600 + 30, DNS), ("c@slow.example", 2000, CONN)])
    second = w.poll()
    assert second.raised == ["slow.example"] and diagnoser.calls == ["stuck.example"]
    clock.now += 61  # next interval: stuck.example is diagnosed again (cache expired), not re-alerted
    assert w.poll().raised == [] and diagnoser.calls == ["stuck.example"] * 2
    assert [b["domain"] for b in webhook.bodies] == ["stuck.example", "slow.example"]

    clock.now += 60
    write_queue(queue, clock.now, [("c@slow.example", 2200, CONN)])  # stuck.example drained
    drained = w.poll()
    assert drained.cleared == ["stuck.example"]
    assert webhook.bodies[-1]["event"] == "clear" and webhook.bodies[-1]["domain"] == "stuck.example"
    assert "RESOLVED" in webhook.bodies[-1]["text"]

    clock.now += 60
    write_queue(queue, clock.now, [("a@stuck.example", 4000, DNS)])  # stuck again: a new alert
    again = w.poll()
    assert again.raised == ["stuck.example"] and again.cleared == ["slow.example"]
    epoch = w.state.epoch
    assert [b["id"] for b in webhook.bodies][-2:] == [f"stuck.example#{epoch}.2:alert", f"slow.example#{epoch}.1:clear"]


def test_unreadable_queue_changes_no_alert(tmp_path: Path, webhook: WebhookReceiver) -> None:
    clock = Clock(1_800_000_000.0)
    queue = tmp_path / "queue.jsonl"
    w = make_watcher(tmp_path, clock, [notify.WebhookNotifier(webhook.url, 5)])
    write_queue(queue, clock.now, [("a@stuck.example", 7200, DNS)])
    assert w.poll().raised == ["stuck.example"]
    queue.write_bytes(b"\x00\x01garbage\n")
    failed = w.poll()
    assert not failed.ok and "not a queue listing" in (failed.error or "")
    queue.unlink()
    assert not w.poll().ok
    assert w.state.firing() == {"stuck.example"} and len(webhook.bodies) == 1


def test_failed_webhook_is_retried_next_poll_not_lost(tmp_path: Path, webhook: WebhookReceiver) -> None:
    clock = Clock(1_800_000_000.0)
    write_queue(tmp_path / "queue.jsonl", clock.now, [("a@stuck.example", 7200, DNS)])
    w = make_watcher(tmp_path, clock, [notify.WebhookNotifier(webhook.url, 5)])
    webhook.fail = True
    result = w.poll()
    assert result.raised == ["stuck.example"] and result.failed == 1 and not webhook.bodies
    webhook.fail = False
    clock.now += 60
    assert w.poll().sent == 1 and [b["domain"] for b in webhook.bodies] == ["stuck.example"]
    clock.now += 60
    assert w.poll().sent == 0 and len(webhook.bodies) == 1


def test_restart_keeps_state_no_duplicate(tmp_path: Path, webhook: WebhookReceiver) -> None:
    clock = Clock(1_800_000_000.0)
    write_queue(tmp_path / "queue.jsonl", clock.now, [("a@stuck.example", 7200, DNS)])
    w = make_watcher(tmp_path, clock, [notify.WebhookNotifier(webhook.url, 5)])
    w.poll()
    w.state.close()
    clock.now += 60
    again = make_watcher(tmp_path, clock, [notify.WebhookNotifier(webhook.url, 5)])
    assert again.poll().raised == [] and len(webhook.bodies) == 1
    assert again.state.sent_count("alert") == 1


def test_email_alert_through_a_loopback_relay(tmp_path: Path) -> None:
    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope.content)
            return "250 OK"

    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock = Clock(1_800_000_000.0)
        write_queue(tmp_path / "queue.jsonl", clock.now, [("a@stuck.example", 7200, DNS)])
        mailer = notify.EmailNotifier("127.0.0.1", port, "watch@example.org", ("ops@example.org",), timeout=5)
        w = make_watcher(tmp_path, clock, [mailer])
        assert w.poll().sent == 1
    finally:
        controller.stop()
    (raw,) = received
    msg = message_from_bytes(raw)
    assert "stuck.example" in msg["Subject"] and msg["To"] == "ops@example.org"
    assert msg["X-Mxdoctor-Event"] == f"stuck.example#{w.state.epoch}.1:alert"


def test_unreachable_relay_is_a_failed_delivery(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    write_queue(tmp_path / "queue.jsonl", clock.now, [("a@stuck.example", 7200, DNS)])
    mailer = notify.EmailNotifier("127.0.0.1", 1, "watch@example.org", ("ops@example.org",), timeout=2)
    result = make_watcher(tmp_path, clock, [mailer]).poll()
    assert result.failed == 1 and result.sent == 0


def test_metrics_endpoint(tmp_path: Path) -> None:
    clock = Clock(1_800_000_000.0)
    write_queue(tmp_path / "queue.jsonl", clock.now, [("a@stuck.example", 7200, DNS), ("b@stuck.example", 60, DNS),
                                                      ("c@slow.example", 600, CONN)])
    wm = metrics.WatchMetrics()
    server = metrics.serve(wm, "127.0.0.1:0")
    try:
        w = make_watcher(tmp_path, clock, [], CountingDiagnoser(), wm)
        w.poll()
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'mxdoctor_queue_messages{domain="stuck.example",queue="deferred"} 2.0' in text
    assert 'mxdoctor_queue_oldest_age_seconds{domain="stuck.example",queue="deferred"} 7200.0' in text
    assert 'mxdoctor_queue_deferred_recipients{category="dns-temp"} 2.0' in text
    assert 'mxdoctor_queue_deferred_recipients{category="connect"} 1.0' in text
    assert 'mxdoctor_watch_alert_firing{domain="stuck.example"} 1.0' in text
    assert 'mxdoctor_diagnosis_verdict{domain="stuck.example",mta="exchange-2010",outcome="defer"} 1.0' in text
    assert 'mxdoctor_diagnosis_root_cause{domain="stuck.example",root_cause="AAAA_SERVFAIL"} 1.0' in text
    assert 'mxdoctor_watch_polls_total{result="ok"} 1.0' in text


def test_config_file_and_command_line(tmp_path: Path) -> None:
    config = tmp_path / "watch.toml"
    config.write_text(
        'source = "/var/tmp/q.json"\ninterval = "5m"\nalert_age = "1h"\nresolvers = ["127.0.0.1"]\n'
        '[webhook]\nurl = "http://127.0.0.1:9/hook"\n[email]\nrelay = "127.0.0.1:2525"\nfrom = "w@x.example"\n'
        'to = "ops@x.example"\n'
    )
    parser = watch_cli_parser()
    opts = watch_cli.merged(parser.parse_args(["watch", "--config", str(config), "--interval", "30s"]))
    assert opts.interval == 30 and opts.alert_age == 3600 and opts.source == "/var/tmp/q.json"
    assert opts.webhooks == ("http://127.0.0.1:9/hook",) and opts.email and opts.email.recipients == ("ops@x.example",)
    names = [n.name for n in watch_config.notifiers(opts)]
    assert names == ["log", "webhook", "email"]
    opts = watch_cli.merged(parser.parse_args(["watch", "--config", str(config), "--postfix", "/etc/pf"]))
    assert opts.postfix == "/etc/pf" and opts.source is None
    config.write_text('intervall = "5m"\n')
    with pytest.raises(ConfigError, match="intervall: unknown key"):
        watch_cli.merged(parser.parse_args(["watch", "--config", str(config)]))


def watch_cli_parser() -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    watch_cli.register(parser.add_subparsers())
    return parser


# -- the daemon as a process: kill -9 and restart ---------------------------------------------------

def start_daemon(tmp_path: Path, webhook: WebhookReceiver) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "mxdoctor.cli", "watch", str(tmp_path / "queue.jsonl"), "--interval", "0.2s",
         "--alert-age", "30m", "--state", str(tmp_path / "state.sqlite"), "--webhook", webhook.url,
         "--no-diagnose", "--no-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def test_kill_9_and_restart_send_no_duplicate(tmp_path: Path, webhook: WebhookReceiver,
                                              daemons: list[subprocess.Popen[bytes]]) -> None:
    now = time.time()
    write_queue(tmp_path / "queue.jsonl", now, [("a@stuck.example", 7200, DNS), ("b@slow.example", 5400, CONN)])
    for _round in range(3):
        proc = start_daemon(tmp_path, webhook)
        daemons.append(proc)
        wait_for(lambda: len(webhook.bodies) >= 2)
        time.sleep(0.7)  # several more polls, mid-run
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert sorted(b["id"].split("#")[0] + b["id"][-6:] for b in webhook.bodies) == [
        "slow.example:alert", "stuck.example:alert"]
    assert len({b["id"] for b in webhook.bodies}) == 2

    write_queue(tmp_path / "queue.jsonl", time.time(), [("b@slow.example", 5500, CONN)])
    proc = start_daemon(tmp_path, webhook)
    daemons.append(proc)
    wait_for(lambda: len(webhook.bodies) >= 3)
    time.sleep(0.7)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert [b["id"] for b in webhook.bodies][2:] == [
        next(b["id"] for b in webhook.bodies if b["domain"] == "stuck.example").replace(":alert", ":clear")]


def test_daemon_once_with_bad_options_exits_3(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mxdoctor.cli", "watch", str(tmp_path / "q"), "--once", "--interval", "soon",
         "--state", str(tmp_path / "s.sqlite")], capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 3 and "not a duration" in proc.stderr and "Traceback" not in proc.stderr


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile
        return ""


def test_asyncio_free_of_leaks() -> None:
    # EmailNotifier runs its own event loop per message; none may be left open or set for this thread.
    def loops() -> list[str]:
        """The epoll descriptors of this process: one per open event loop (unlike sockets, which other
        tests' servers open and close meanwhile)."""
        return [fd for fd in os.listdir("/proc/self/fd") if "eventpoll" in _link(f"/proc/self/fd/{fd}")]

    mailer = notify.EmailNotifier("127.0.0.1", 1, "watch@example.org", ("ops@example.org",), timeout=2)
    before = loops()
    for _ in range(3):
        with pytest.raises(notify.NotifyError):
            mailer.send({"id": "stuck.example#1:alert", "domain": "stuck.example"})
    assert loops() == before
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_once_exits_3_when_the_queue_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mxdoctor import cli

    args = ["watch", str(tmp_path / "missing.jsonl"), "--once", "--no-diagnose", "--state", str(tmp_path / "s.db")]
    assert cli.main(args) == 3
    assert "missing.jsonl" in capsys.readouterr().err
    write_queue(tmp_path / "missing.jsonl", time.time(), [("a@b.example", 10, CONN)])
    assert cli.main(args) == 0


def test_old_events_are_pruned_but_alert_state_kept(tmp_path: Path, webhook: WebhookReceiver) -> None:
    clock = Clock(1_800_000_000.0)
    write_queue(tmp_path / "queue.jsonl", clock.now, [("a@stuck.example", 7200, DNS)])
    w = make_watcher(tmp_path, clock, [notify.WebhookNotifier(webhook.url, 5)], CountingDiagnoser())
    w.poll()
    clock.now += 31 * 86400
    write_queue(tmp_path / "queue.jsonl", clock.now, [("a@stuck.example", 31 * 86400, DNS)])
    assert w.poll().raised == []  # still firing: no second alert although its event was forgotten
    assert w.state.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    assert len(webhook.bodies) == 1 and w.state.firing() == {"stuck.example"}


def test_a_slow_diagnosis_does_not_hold_the_poll_and_is_not_started_twice(tmp_path: Path) -> None:
    import threading

    release = threading.Event()
    calls: list[str] = []

    def slow(domain: str) -> dict[str, Any]:
        calls.append(domain)
        release.wait(30)
        return {"domain": domain, "root_cause": "AAAA_SERVFAIL"}

    clock = Clock(1_800_000_000.0)
    write_queue(tmp_path / "queue.jsonl", clock.now, [("a@stuck.example", 7200, DNS)])
    options = watch.WatchOptions(source=formats.Source(path=str(tmp_path / "queue.jsonl")), alert_age=1800,
                                 diagnose_wait=0.3)
    w = watch.Watcher(options, state.State(tmp_path / "s.sqlite"), [], slow, clock=clock)
    started = time.monotonic()
    first = w.poll()
    assert first.raised == ["stuck.example"] and first.diagnosed == [] and time.monotonic() - started < 5
    clock.now += 120
    assert w.poll().diagnosed == [] and calls == ["stuck.example"]  # still running: not started again
    release.set()
    wait_for(lambda: not w._in_flight, 10, "the diagnosis to finish")
    clock.now += 120
    late = w.poll()
    assert late.diagnosed == ["stuck.example"]
    assert w.state.last_diagnosis("stuck.example") == {
        "domain": "stuck.example", "root_cause": "AAAA_SERVFAIL", "diagnosed_at": "2027-01-15T08:04:00+00:00"}
