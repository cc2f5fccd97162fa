"""probe_domain against the lab's built-in scenarios: what each view and each server records."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from pathlib import Path

import pytest

from mxdoctor import evidence, lab, probe
from mxdoctor.evidence import Evidence, Lookup, Outcome, Transport
from mxdoctor.lab import scenario as scenario_mod
from mxdoctor.lab.faults import Fault


def probe_card(card: lab.Card, *, internal: bool = True, **changes: object) -> Evidence:
    options = probe.ProbeOptions(
        resolvers=tuple(r.hostport for r in card.resolvers if r.name == "internal") if internal else (),
        use_system=False,
        root_hints=card.root_hints,
        dns_port=card.dns_port,
        timeout=1.0,
        deadline=15.0,
    )
    return probe.collect(card.domains[0], dataclasses.replace(options, **changes))  # type: ignore[arg-type]


def summary(ev: Evidence, view: str, qname: str, qtype: str) -> Lookup:
    [lk] = [x for x in ev.lookups if x.view == view and x.server is None and (x.qname, x.qtype) == (qname, qtype)]
    return lk


def servers(ev: Evidence, qname: str, qtype: str) -> dict[str, Lookup]:
    return {
        str(lk.server.name): lk
        for lk in ev.lookups
        if lk.view == "authoritative" and lk.server is not None and (lk.qname, lk.qtype) == (qname, qtype)
    }


@pytest.mark.parametrize("lab", ["aaaa-servfail"], indirect=True)
def test_aaaa_servfail_is_seen_at_every_server_and_through_the_internal_resolver(lab: lab.Card) -> None:
    ev = probe_card(lab)
    mx = summary(ev, "authoritative", ev.domain + ".", "MX")
    [host] = [r.split()[1] for r in mx.records]
    per_server = servers(ev, host, "AAAA")
    assert len(per_server) == 2 and {lk.outcome for lk in per_server.values()} == {Outcome.SERVFAIL}
    assert summary(ev, "authoritative", host, "AAAA").outcome is Outcome.SERVFAIL
    assert summary(ev, "authoritative", host, "A").outcome is Outcome.NOERROR
    assert summary(ev, "internal", host, "AAAA").outcome is Outcome.SERVFAIL
    assert summary(ev, "internal", host, "A").outcome is Outcome.NOERROR
    assert evidence.loads(evidence.dumps(ev)) == ev


@pytest.mark.parametrize("lab", ["edns-intolerant"], indirect=True)
def test_edns_intolerant_servers_answer_after_the_recorded_fallback(lab: lab.Card) -> None:
    ev = probe_card(lab, internal=False)
    mx = summary(ev, "authoritative", "example.com.", "MX")
    assert mx.outcome is Outcome.NOERROR
    fallbacks = [x for x in ev.exchanges if x.workaround == "RetryWithoutEdnsOnFormerr"]
    assert {x.server.name for x in fallbacks} == {"ns1.example.com.", "ns2.example.com."}
    assert all(x.edns is None and x.outcome.is_answer for x in fallbacks)
    first = [x for x in ev.exchanges if x.server.name == "ns1.example.com." and x.attempt == 1]
    assert first and all(x.edns == 0 and x.outcome is Outcome.FORMERR for x in first)


@pytest.mark.parametrize("lab", ["tcp-refused-truncated"], indirect=True)
def test_truncated_mx_with_tcp_refused(lab: lab.Card) -> None:
    ev = probe_card(lab, internal=False)
    per_server = servers(ev, "example.com.", "MX")
    assert {lk.outcome for lk in per_server.values()} == {Outcome.NETWORK_ERROR}
    tcp = [x for x in ev.exchanges if x.transport is Transport.TCP]
    assert tcp and all(x.workaround == "TcpOnTruncation" for x in tcp)


@pytest.mark.parametrize("lab", ["aaaa-broken"], indirect=True)
def test_four_byte_aaaa_from_the_lab(lab: lab.Card) -> None:
    ev = probe_card(lab, internal=False)
    lk = summary(ev, "authoritative", "mx1.example.com.", "AAAA")
    assert lk.outcome is Outcome.BROKEN and lk.detail is not None and "AAAA rdata of 4 bytes" in lk.detail


@pytest.mark.parametrize("lab", ["lame-delegation"], indirect=True)
def test_lame_server_among_good_ones(lab: lab.Card) -> None:
    ev = probe_card(lab, internal=False)
    per_server = servers(ev, "example.com.", "MX")
    assert per_server["ns2.example.net."].outcome is Outcome.LAME
    assert per_server["ns1.example.com."].outcome is Outcome.NOERROR
    assert summary(ev, "authoritative", "example.com.", "MX").outcome is Outcome.NOERROR


def test_independent_queries_run_concurrently() -> None:
    delay = 0.1
    sc = scenario_mod.load("healthy")
    sc = dataclasses.replace(
        sc, servers=tuple(dataclasses.replace(s, faults=(Fault("delay", seconds=delay),)) for s in sc.servers)
    )
    with lab.running(sc) as card:
        options = probe.ProbeOptions(
            use_system=False, root_hints=card.root_hints, dns_port=card.dns_port, timeout=2.0, deadline=10.0
        )
        started = time.monotonic()
        ev = asyncio.run(probe.probe_domain(card.domains[0], options))
        wall = time.monotonic() - started
    # root -> TLD -> zone (MX) -> A/AAAA of the exchangers: four dependent steps
    assert [z.name for z in ev.zones] == [".", "com.", "example.com."]
    assert 4 * delay <= wall < 1.5 * 4 * delay


@pytest.mark.unbound
@pytest.mark.root
@pytest.mark.parametrize(
    ("scenario", "aaaa"),
    [("aaaa-servfail", Outcome.SERVFAIL), ("healthy", Outcome.NODATA)],
    ids=["servfail", "healthy"],
)
def test_real_unbound_as_the_internal_resolver(scenario: str, aaaa: Outcome) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "lab"))
    from _resolver_unbound import (  # type: ignore[import-not-found]  # the lab tests' own helper
        lab_on_port_53,
        running_unbound,
        skip_unless_unbound_can_run,
    )

    skip_unless_unbound_can_run()
    with lab_on_port_53(scenario) as card, running_unbound(card) as unbound:
        ev = probe_card(card, internal=False, resolvers=(f"{unbound.address}:{unbound.port}",))
    [mx] = summary(ev, "internal", ev.domain + ".", "MX").records
    host = mx.split()[1]
    assert summary(ev, "internal", host, "AAAA").outcome is aaaa
    assert summary(ev, "authoritative", host, "AAAA").outcome is aaaa
    assert summary(ev, "internal", host, "A").outcome is Outcome.NOERROR
    view = ev.view("internal")
    assert view is not None and view.reachable
