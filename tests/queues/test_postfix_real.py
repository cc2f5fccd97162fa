"""The Postfix readers against a real Postfix holding deferred mail (Debian package, own directories)."""

from __future__ import annotations

import json

import pytest
from postfix_instance import DNS_REASON, PostfixInstance

from mxdoctor import cli
from mxdoctor.queues import formats, postfix_text, shape
from mxdoctor.queues.classify import Category
from mxdoctor.queues.record import Mta, QueuedMessage

pytestmark = [pytest.mark.postfix, pytest.mark.root]


def test_postqueue_json_and_text_read_the_same_real_queue(postfix: PostfixInstance) -> None:
    postfix.submit("alice@example.org", "u1@dns.example", "v@conn.example", "u2@dns.example")
    postfix.submit("", "w@conn.example")
    postfix.submit("bob@example.org", "x@dns.example")
    postfix.wait_deferred(3)

    via_json = [i for i in formats.read(formats.Source(mta=Mta.POSTFIX, config_dir=postfix.config))]
    via_text = list(postfix_text.read(postfix.listing("-p").splitlines(keepends=True)))
    assert all(isinstance(i, QueuedMessage) for i in via_json + via_text)
    assert len(via_json) == len(via_text) == 3

    def key(items: list[QueuedMessage]) -> list[tuple[object, ...]]:
        return sorted((m.queue_id, m.queue_name, m.arrival, m.size, m.recipients) for m in items)

    # Same ids, queues, arrival seconds, sizes, recipients and reasons; only the sender spelling
    # differs (mailq prints MAILER-DAEMON for the null sender).
    assert key(via_json) == key(via_text)  # type: ignore[arg-type]
    by_id = {m.queue_id: m for m in via_json if isinstance(m, QueuedMessage)}
    first = next(m for m in by_id.values() if len(m.recipients) == 3)
    assert {r.address: r.delay_reason for r in first.recipients} == {
        "u1@dns.example": DNS_REASON,
        "u2@dns.example": DNS_REASON,
        "v@conn.example": "connect to 127.0.0.1[127.0.0.1]:1: Connection refused",
    }

    result = shape.build(via_json, now=max(m.arrival or 0 for m in by_id.values()) + 1)
    dns = result.domains["dns.example"]
    assert dns.messages == 2 and dns.dominant is not None
    assert dns.dominant.category is Category.DNS_TEMP and dns.dominant.record_type == "AAAA"
    assert result.domains["conn.example"].dominant is not None
    assert result.domains["conn.example"].dominant.category is Category.CONNECT


def test_queue_command_runs_postqueue(postfix: PostfixInstance, capsys: pytest.CaptureFixture[str]) -> None:
    postfix.submit("alice@example.org", "u1@dns.example")
    postfix.wait_deferred(1)
    code = cli.main(["queue", "--postfix", postfix.config, "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["format"] == "postfix-json"
    assert doc["domains"][0]["domain"] == "dns.example"
    assert doc["domains"][0]["dominant_reason"]["category"] == "dns-temp"
    code = cli.main(["queue", "--postfix", postfix.config, "--format", "postfix-text", "--nagios"])
    assert code == 0 and "1 message(s)" in capsys.readouterr().out


def test_empty_real_queue_is_ok(postfix: PostfixInstance, capsys: pytest.CaptureFixture[str]) -> None:
    assert postfix.listing("-p").startswith("Mail queue is empty")
    assert cli.main(["queue", "--postfix", postfix.config, "--format", "postfix-text", "--nagios"]) == 0
    assert "0 message(s)" in capsys.readouterr().out
