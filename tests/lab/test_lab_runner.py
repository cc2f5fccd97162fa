"""Running a lab: the card, the root hints, SMTP servers, and that leaving frees every port and thread."""

from __future__ import annotations

import json
import os
import shutil
import smtplib
import socket
import threading
from pathlib import Path

import pytest
from _labwire import DIG, dig, query, texts

from _helpers import free_port
from mxdoctor import lab as lab_mod
from mxdoctor.errors import LabError
from mxdoctor.lab import scenario


def assert_port_free(addresses: list[str], port: int) -> None:
    """Bind UDP and TCP on every address: proof that nothing of the lab holds the port any more."""
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(family, kind) as sock:
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))


def test_card_says_where_everything_is(lab: lab_mod.Card) -> None:
    assert lab.scenario == "healthy"
    assert lab.domains == ("example.com",)
    assert 0 < lab.dns_port < 65536 and 0 < lab.smtp_port < 65536
    internal = lab.resolver("internal")
    assert (internal.address, internal.port) == ("127.0.0.10", lab.dns_port)
    assert lab.resolver("external").address == "127.0.0.20"
    hints = Path(lab.root_hints).read_text()
    assert ".                        3600000      NS    A.ROOT-SERVERS.NET." in hints
    assert "A.ROOT-SERVERS.NET.      3600000      A     127.0.0.2" in hints
    command = lab.diagnose_command
    assert command.startswith("mxdoctor diagnose example.com --resolver 127.0.0.10:")
    assert f"--external 127.0.0.20:{lab.dns_port}" in command
    assert f"--root-hints {lab.root_hints} --dns-port {lab.dns_port}" in command
    assert command.endswith(f"--smtp --smtp-port {lab.smtp_port}")
    data = json.loads(json.dumps(lab.to_json()))
    assert {"dns_port", "smtp_port", "root_hints", "resolvers", "domains"} <= set(data)
    assert {"name": "internal", "address": "127.0.0.10", "port": lab.dns_port, "role": "recursive"} in data[
        "resolvers"
    ]
    assert data["expect"]["findings"] == ["MAIL_ROUTE_OK"]
    assert data["smtp_servers"] == [
        {"host": "mx1.example.com", "addresses": ["127.0.0.25"], "port": lab.smtp_port, "greeting": 220}
    ]
    assert "resolver internal  127.0.0.10:" in lab.to_text()


def test_root_hints_work_for_a_real_resolver_view(lab: lab_mod.Card) -> None:
    # Iterate by hand from the hints file: root -> com. -> example.com.
    hint_address = [line.split()[-1] for line in Path(lab.root_hints).read_text().splitlines() if " A " in line][0]
    referral = query(hint_address, lab.dns_port, "example.com", "MX")
    glue = [rd.to_text() for rrset in referral.additional for rd in rrset]
    tld = query(glue[0], lab.dns_port, "example.com", "MX")
    ns_address = [rd.to_text() for rrset in tld.additional for rd in rrset][0]
    assert texts(query(ns_address, lab.dns_port, "example.com", "MX"), "MX") == ["10 mx1.example.com."]


def test_leaving_frees_every_port_and_thread_and_restarts_on_the_same_ports() -> None:
    before = {t.ident for t in threading.enumerate()}
    port, smtp_port = free_port(), free_port()
    loaded = scenario.load("multi-mx-partial")
    for _ in range(2):
        with lab_mod.running(loaded, port=port, smtp_port=smtp_port) as card:
            assert (card.dns_port, card.smtp_port) == (port, smtp_port)
            assert texts(query("127.0.0.10", port, "mx2.example.com", "A"), "A") == ["127.0.0.26"]
            workdir = Path(card.workdir)
            assert workdir.is_dir()
        assert not workdir.exists()
        assert_port_free([s.address for s in loaded.servers], port)
        assert_port_free(["127.0.0.25", "127.0.0.26"], smtp_port)
    assert {t.ident for t in threading.enumerate() if t.is_alive()} <= before


def test_a_taken_port_is_a_lab_error_and_leaves_nothing_behind() -> None:
    port = free_port()
    loaded = scenario.load("healthy")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.12", port))
        with pytest.raises(LabError, match=f"port {port}"), lab_mod.running(loaded, port=port):
            pass
    assert_port_free([s.address for s in loaded.servers], port)


def test_smtp_servers_greet_offer_starttls_and_keep_mail(lab: lab_mod.Card) -> None:
    with smtplib.SMTP("127.0.0.25", lab.smtp_port, timeout=5) as client:
        code, _ = client.ehlo("client.example.org")
        assert code == 250
        assert client.has_extn("starttls") and client.has_extn("pipelining")
        client.sendmail("a@example.org", ["b@example.com"], b"Subject: lab\r\n\r\nhello\r\n")
    messages = lab.smtp_messages()
    assert [(m.mail_from, m.rcpt_tos) for m in messages] == [("a@example.org", ("b@example.com",))]
    assert b"hello" in messages[0].data


@pytest.mark.parametrize("lab", ["smtp-tempfail"], indirect=True)
def test_smtp_tempfail_greets_with_421(lab: lab_mod.Card) -> None:
    with socket.create_connection(("127.0.0.25", lab.smtp_port), timeout=5) as sock:
        greeting = sock.recv(512).decode()
    assert greeting.startswith("421 ")
    assert lab.smtp_servers[0].greeting == 421


@pytest.mark.parametrize("lab", ["ipv6-only-mx"], indirect=True)
def test_ipv6_only_mx_listens_on_ipv6_loopback(lab: lab_mod.Card) -> None:
    assert texts(query("127.0.0.10", lab.dns_port, "mx6.example.com", "AAAA"), "AAAA") == ["::1"]
    with smtplib.SMTP("::1", lab.smtp_port, timeout=5) as client:
        assert client.ehlo()[0] == 250


@pytest.mark.parametrize("lab", ["internal-resolver-stale"], indirect=True)
def test_fixture_takes_a_scenario_by_name_and_exposes_server_logs(lab: lab_mod.Card) -> None:
    assert texts(query("127.0.0.10", lab.dns_port, "mx1.example.com", "A"), "A") == ["127.0.0.99"]
    assert texts(query("127.0.0.20", lab.dns_port, "mx1.example.com", "A"), "A") == ["127.0.0.25"]
    asked = list(lab.dns_server("ns1.example.com").queries) + list(lab.dns_server("ns2.example.com").queries)
    assert ("mx1.example.com.", "A", "udp") in asked


def test_running_takes_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    shutil.copy(scenario.scenarios_dir() / "null-mx.toml", path)
    with lab_mod.running(path) as card:
        assert card.scenario == "mine"
        assert texts(query("127.0.0.10", card.dns_port, "example.com", "MX"), "MX") == ["0 ."]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="port 53 needs root")
def test_port_53_as_root() -> None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.10", 53))
    except OSError:
        pytest.skip("port 53 on 127.0.0.10 is busy")
    with lab_mod.running("aaaa-servfail", port=53) as card:
        assert card.dns_port == 53
        assert "--dns-port 53" in card.diagnose_command
        assert texts(query("127.0.0.10", 53, "mail.example.net", "A"), "A") == ["127.0.0.25"]
        if DIG is not None:
            assert dig("127.0.0.10", 53, "mail.example.net", "AAAA").status == "SERVFAIL"
    assert_port_free(["127.0.0.10", "127.0.0.11", "127.0.0.2"], 53)


LAME_AND_V6 = """
description = "a lame listing and a name server on IPv6 loopback"
domains = ["example.com"]

[zones."example.com"]
text = "@ MX 10 mx1\\nmx1 A 127.0.0.25"

[[servers]]
name = "ns1.example.com"
address = "::1"
zones = ["example.com"]

[[servers]]
name = "ns2.example.net"
address = "127.0.0.13"
lame = ["example.com"]
"""


def test_lame_server_refuses_and_an_ipv6_name_server_serves() -> None:
    loaded = scenario.parse(LAME_AND_V6, source="v6.toml", name="v6")
    with lab_mod.running(loaded) as card:
        lame = query("127.0.0.13", card.dns_port, "example.com", "MX")
        assert lame.rcode() == 5  # REFUSED: listed in the delegation, does not serve the zone
        assert texts(query("::1", card.dns_port, "example.com", "MX"), "MX") == ["10 mx1.example.com."]
        tld = query("127.0.0.3", card.dns_port, "example.com", "MX")
        glue = sorted(rd.to_text() for rrset in tld.additional for rd in rrset)
        assert glue == ["::1"]
        assert texts(query("127.0.0.10", card.dns_port, "mx1.example.com", "A"), "A") == ["127.0.0.25"]
