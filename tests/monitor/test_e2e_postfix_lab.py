"""End to end: a real Postfix resolving through the lab defers mail to a domain whose MX lookup
fails; ``mxdoctor watch`` alerts once by webhook with the age, the reason and the diagnosed root
cause, survives ``kill -9`` without a second alert, and clears the alert once the lab is fixed and
Postfix has delivered."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from watch_helpers import WebhookReceiver, wait_for

pytestmark = [pytest.mark.postfix, pytest.mark.root, pytest.mark.conformance]


def _postfix_helpers() -> ModuleType:
    # The Postfix instance helper lives beside the queue tests; load it by path (tests are not a package).
    if "postfix_instance" in sys.modules:
        return sys.modules["postfix_instance"]
    path = Path(__file__).parent.parent / "queues" / "postfix_instance.py"
    spec = importlib.util.spec_from_file_location("postfix_instance", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["postfix_instance"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lab_card() -> Iterator[Any]:
    if os.geteuid() != 0:
        pytest.skip("the lab on port 53 and Postfix need root")
    from mxdoctor import lab

    with lab.running("mx-servfail") as card:
        if card.dns_port != 53 or card.smtp_port != 25:
            pytest.skip("lab could not take ports 53 and 25 (busy): Postfix's resolver cannot use another port")
        yield card


def test_watch_real_postfix_through_lab(lab_card: Any, webhook: WebhookReceiver, tmp_path: Path) -> None:
    helpers = _postfix_helpers()
    resolver = lab_card.resolver("internal")
    postfix = helpers.start_postfix(
        extra="default_transport = smtp\ntransport_maps =\nsmtp_dns_support_level = enabled\n"
              "smtp_host_lookup = dns\nsmtp_connect_timeout = 5s\n",
        resolver=resolver.address,
    )
    watchers: list[subprocess.Popen[bytes]] = []

    def start_watch() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mxdoctor.cli", "watch", "--postfix", postfix.config,
             "--interval", "1s", "--alert-age", "2s", "--state", str(tmp_path / "watch.sqlite"),
             "--webhook", webhook.url, "--no-log", "--resolver", resolver.hostport,
             "--root-hints", lab_card.root_hints, "--dns-port", str(lab_card.dns_port),
             "--diagnose-deadline", "20s", "--diagnose-every", "1h"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        watchers.append(proc)
        return proc

    try:
        postfix.submit("alice@sender.example", "bob@example.com")
        postfix.wait_deferred(1, timeout=60)
        listing = json.loads(postfix.listing("-j").splitlines()[0])
        reason = listing["recipients"][0]["delay_reason"]
        assert "type=MX" in reason and "try again" in reason, reason

        first = start_watch()
        alert = wait_for(lambda: webhook.bodies, 90, "the webhook alert")[0]
        assert alert["event"] == "alert" and alert["domain"] == "example.com"
        assert alert["reason"]["category"] == "dns-temp" and alert["reason"]["record_type"] == "MX"
        assert alert["oldest_age_s"] >= 2
        diagnosis = alert["diagnosis"]
        assert diagnosis and diagnosis.get("root_cause") == "MX_LOOKUP_FAILED", diagnosis
        assert "example.com" in alert["text"] and "MX_LOOKUP_FAILED" in alert["text"]

        time.sleep(2.5)  # a few more polls, then the hard kill mid-run
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        second = start_watch()
        time.sleep(4)
        assert len(webhook.bodies) == 1, [b["id"] for b in webhook.bodies]

        for name in ("ns1.example.com", "ns2.example.com"):
            lab_card.dns_server(name).faults = ()  # the DNS operator fixes the zone
        subprocess.run(["postqueue", "-c", postfix.config, "-f"], check=True, timeout=30)
        wait_for(lambda: not postfix.listing("-j").strip(), 60, "Postfix to deliver")
        assert any("bob@example.com" in str(getattr(m, "rcpt_tos", m)) for m in lab_card.smtp_messages())
        cleared = wait_for(lambda: [b for b in webhook.bodies if b["event"] == "clear"], 30, "the clear notice")
        assert cleared[0]["domain"] == "example.com"
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
        first_id = webhook.bodies[0]["id"]
        assert first_id.startswith("example.com#") and first_id.endswith(".1:alert")
        assert [b["id"] for b in webhook.bodies] == [first_id, first_id.replace(":alert", ":clear")]
    finally:
        for proc in watchers:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            if proc.stderr:
                proc.stderr.close()
        helpers.stop_postfix(postfix)
