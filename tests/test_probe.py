"""probe_domain over every view against a DNS tree on loopback: iteration, fan-out to every server,
the summary rule, resolver views, unreachable resolvers, the deadline, the per-run cache."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "dns"))
from _tree import DEAD, NIC1, NIC2, NS1, NS2, NS3, RESOLVER, tree  # noqa: E402

from mxdoctor import analysis, evidence, probe  # noqa: E402
from mxdoctor.checks import coverage  # noqa: E402
from mxdoctor.dns import anchor  # noqa: E402
from mxdoctor.errors import ConfigError, InvalidTarget  # noqa: E402
from mxdoctor.evidence import DNSSEC_KEYS_VIEW, Evidence, Lookup, Outcome, ViewKind  # noqa: E402
from mxdoctor.lab.faults import Fault  # noqa: E402


def run_probe(
    tmp_path: Path,
    target: str,
    faults: Mapping[str, Sequence[Fault]] | None = None,
    extra: Sequence[str] = (),
    **options: object,
) -> Evidence:
    async def main() -> Evidence:
        async with tree(tmp_path, faults, extra) as t:
            settings: dict[str, object] = {
                "root_hints": str(t.root_hints),
                "dns_port": t.port,
                "timeout": 0.3,
                "deadline": 5.0,
                "use_system": False,
            }
            settings.update(options)
            return await probe.probe_domain(target, probe.ProbeOptions(**settings))  # type: ignore[arg-type]

    return asyncio.run(main())


def summary(ev: Evidence, view: str, qname: str, qtype: str) -> Lookup:
    [lk] = [x for x in ev.lookups if x.view == view and x.server is None and (x.qname, x.qtype) == (qname, qtype)]
    return lk


def per_server(ev: Evidence, view: str, qname: str, qtype: str) -> dict[str, Lookup]:
    return {
        x.server.address: x
        for x in ev.lookups
        if x.view == view and x.server is not None and (x.qname, x.qtype) == (qname, qtype)
    }


def test_healthy_domain_through_the_authoritative_view(tmp_path: Path) -> None:
    ev = run_probe(tmp_path, "User@Example.Test.")
    assert (ev.target, ev.domain, ev.deadline_hit) == ("User@Example.Test.", "example.test", False)
    assert ev.tool.startswith("mxdoctor ") and ev.created.endswith("+00:00")
    assert ev.options["dns_port"] == str(ev.exchanges[0].server.port)
    assert [v.name for v in ev.views] == ["authoritative"] and ev.views[0].reachable
    assert summary(ev, "authoritative", "example.test.", "MX").records == ("10 mx.example.test.",)
    assert summary(ev, "authoritative", "mx.example.test.", "AAAA").records == ("2001:db8::1",)
    for q in [("example.test.", "MX"), ("mx.example.test.", "A"), ("mx.example.test.", "AAAA")]:
        servers = per_server(ev, "authoritative", *q)
        assert set(servers) == {NS1, NS2}  # every server of the owner zone, directly
        assert all(lk.outcome.is_answer and lk.authoritative for lk in servers.values())
    zones = {z.name: z for z in ev.zones}
    assert set(zones) == {".", "test.", "example.test."}
    assert zones["example.test."].parent == "test."
    assert {(ns.name, ns.glue) for ns in zones["example.test."].nameservers} == {
        ("ns1.example.test.", (NS1,)),
        ("ns2.example.test.", (NS2,)),
    }
    assert all(x.server.name for x in ev.exchanges)  # NS host names travel with the addresses


def test_evidence_round_trips(tmp_path: Path) -> None:
    ev = run_probe(tmp_path, "alias.example.test", resolvers=(RESOLVER,), externals=(RESOLVER + ":1",))
    assert evidence.loads(evidence.dumps(ev)) == ev


def test_no_question_is_sent_twice(tmp_path: Path) -> None:
    ev = run_probe(tmp_path, "example.test", resolvers=(RESOLVER, RESOLVER))
    firsts = collections.Counter(
        (x.server.address, x.server.port, x.qname, x.qtype, x.rd) for x in ev.exchanges if x.attempt == 1
    )
    assert firsts and max(firsts.values()) == 1
    # the second resolver view is the same server: its lookups reuse the first view's exchanges
    assert (
        summary(ev, "internal#2", "example.test.", "MX").exchanges
        == summary(ev, "internal", "example.test.", "MX").exchanges
    )


def test_one_broken_server_of_two_does_not_change_the_summary(tmp_path: Path) -> None:
    ev = run_probe(tmp_path, "example.test", {NS2: [Fault("rcode", rcode="SERVFAIL", qtype="AAAA")]})
    servers = per_server(ev, "authoritative", "mx.example.test.", "AAAA")
    assert servers[NS1].outcome is Outcome.NOERROR and servers[NS2].outcome is Outcome.SERVFAIL
    assert summary(ev, "authoritative", "mx.example.test.", "AAAA").outcome is Outcome.NOERROR


def test_all_servers_broken_is_the_summary(tmp_path: Path) -> None:
    fault = [Fault("rcode", rcode="SERVFAIL", qtype="AAAA", name="mx.example.test.")]
    ev = run_probe(tmp_path, "example.test", {NS1: fault, NS2: fault}, resolvers=(RESOLVER,))
    assert summary(ev, "authoritative", "mx.example.test.", "AAAA").outcome is Outcome.SERVFAIL
    assert summary(ev, "authoritative", "mx.example.test.", "A").outcome is Outcome.NOERROR
    assert {lk.outcome for lk in per_server(ev, "authoritative", "mx.example.test.", "AAAA").values()} == {
        Outcome.SERVFAIL
    }


def test_broken_aaaa_at_every_server(tmp_path: Path) -> None:
    fault = [Fault("broken-aaaa", name="mx.example.test.")]
    ev = run_probe(tmp_path, "example.test", {NS1: fault, NS2: fault})
    lk = summary(ev, "authoritative", "mx.example.test.", "AAAA")
    assert lk.outcome is Outcome.BROKEN and lk.detail is not None and "AAAA rdata of 4 bytes" in lk.detail


def test_resolver_view_passes_servfail_on(tmp_path: Path) -> None:
    faults = {RESOLVER: [Fault("rcode", rcode="SERVFAIL", qtype="AAAA")]}
    ev = run_probe(tmp_path, "example.test", faults, resolvers=(RESOLVER,), authoritative=False)
    assert [(v.name, v.kind) for v in ev.views] == [("internal", ViewKind.RESOLVER)]
    lk = summary(ev, "internal", "mx.example.test.", "AAAA")
    assert lk.outcome is Outcome.SERVFAIL and lk.rcode == "SERVFAIL"  # never turned into "no data"
    assert summary(ev, "internal", "mx.example.test.", "A").outcome is Outcome.NOERROR
    assert all(x.rd for x in ev.exchanges)


def test_unreachable_resolvers_are_evidence(tmp_path: Path) -> None:
    started = time.monotonic()
    ev = run_probe(
        tmp_path,
        "example.test",
        {NS3: [Fault("drop")]},
        resolvers=(DEAD, NS3),
        externals=(RESOLVER,),
        authoritative=False,
    )
    assert time.monotonic() - started < 3.0
    views = {v.name: v for v in ev.views}
    assert not views["internal"].reachable and not views["internal#2"].reachable
    assert views[f"external {RESOLVER}"].reachable
    assert summary(ev, "internal", "example.test.", "MX").outcome is Outcome.NETWORK_ERROR
    assert summary(ev, "internal#2", "example.test.", "MX").outcome is Outcome.TIMEOUT
    assert summary(ev, f"external {RESOLVER}", "example.test.", "MX").outcome is Outcome.NOERROR


def test_system_view_tries_the_next_nameserver_after_a_failure(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {DEAD}\nnameserver {RESOLVER}\n")
    ev = run_probe(tmp_path, "example.test", authoritative=False, use_system=True, resolv_conf=str(conf))
    assert [v.kind for v in ev.views] == [ViewKind.SYSTEM]
    assert [s.address for s in ev.views[0].servers] == [DEAD, RESOLVER]
    lk = summary(ev, "system", "example.test.", "MX")
    assert lk.outcome is Outcome.NOERROR
    assert [x.outcome for x in ev.exchanges if x.id in lk.exchanges] == [Outcome.NETWORK_ERROR, Outcome.NOERROR]


def test_system_view_is_the_default_unless_resolvers_are_given() -> None:
    assert probe.ProbeOptions().system_enabled
    assert not probe.ProbeOptions(resolvers=("127.0.0.1",)).system_enabled
    assert probe.ProbeOptions(resolvers=("127.0.0.1",), use_system=True).system_enabled


def test_glueless_delegation_and_cname_to_another_zone(tmp_path: Path) -> None:
    ev = run_probe(tmp_path, "alias.example.test")
    assert summary(ev, "authoritative", "mx.other.test.", "A").records == ("192.0.2.2",)
    assert set(per_server(ev, "authoritative", "mx.other.test.", "A")) == {NS3}
    zones = {z.name: z for z in ev.zones}
    [ns] = zones["other.test."].nameservers
    assert (ns.name, ns.glue, ns.addresses) == ("ns.example.test.", (), (NS3,))
    ev = run_probe(tmp_path, "www.example.test")
    lk = summary(ev, "authoritative", "www.example.test.", "A")
    assert (lk.outcome, lk.records, lk.cnames) == (Outcome.NOERROR, ("192.0.2.2",), ("mx.other.test.",))
    # dup's exchangers are www (a CNAME to mx.other.test) and mx.other.test itself: the same
    # fan-out serves both, and each server's answer is recorded once
    ev = run_probe(tmp_path, "dup.example.test")
    assert summary(ev, "authoritative", "www.example.test.", "A").records == ("192.0.2.2",)
    assert summary(ev, "authoritative", "mx.other.test.", "A").records == ("192.0.2.2",)
    per_server_lookups = [
        (x.server, x.qname, x.qtype) for x in ev.lookups if x.view == "authoritative" and x.server is not None
    ]
    assert len(per_server_lookups) == len(set(per_server_lookups))


def test_lame_delegation(tmp_path: Path) -> None:
    ev = run_probe(tmp_path, "lame.test")
    # the delegated server does not serve the zone: it refuses, and that stays the wire fact
    lk = summary(ev, "authoritative", "lame.test.", "MX")
    assert lk.outcome is Outcome.REFUSED and lk.server is None
    assert per_server(ev, "authoritative", "lame.test.", "MX")[NS1].rcode == "REFUSED"
    assert {z.name for z in ev.zones} == {".", "test.", "lame.test."}


def test_no_aa_is_lame_per_server(tmp_path: Path) -> None:
    ev = run_probe(tmp_path, "example.test", {NS2: [Fault("no-aa")]})
    servers = per_server(ev, "authoritative", "example.test.", "MX")
    assert servers[NS2].outcome is Outcome.LAME and servers[NS1].outcome is Outcome.NOERROR
    assert summary(ev, "authoritative", "example.test.", "MX").outcome is Outcome.NOERROR


def test_tld_server_down_is_raced_past(tmp_path: Path) -> None:
    started = time.monotonic()
    ev = run_probe(tmp_path, "example.test", {NIC1: [Fault("drop")]}, timeout=1.0)
    assert time.monotonic() - started < 0.9  # the dead TLD server is not waited for
    assert summary(ev, "authoritative", "mx.example.test.", "AAAA").outcome is Outcome.NOERROR
    assert any(x.server.address == NIC2 for x in ev.exchanges)


def test_deadline_ends_the_run_with_timeout_lookups(tmp_path: Path) -> None:
    started = time.monotonic()
    slow = [Fault("delay", seconds=2.0, qtype="A")]
    ev = run_probe(tmp_path, "example.test", {NS1: slow, NS2: slow}, timeout=3.0, deadline=0.5)
    assert time.monotonic() - started < 1.5
    assert ev.deadline_hit
    lk = summary(ev, "authoritative", "mx.example.test.", "A")
    assert lk.outcome is Outcome.TIMEOUT and lk.detail is not None and "deadline" in lk.detail
    assert summary(ev, "authoritative", "example.test.", "MX").outcome is Outcome.NOERROR
    # the evidence says what the deadline left unfinished, and the diagnosis reports it
    (cut,) = [lr for lr in ev.limits_reached if lr.limit == "deadline"]
    assert "mx.example.test. A (authoritative)" in cut.detail
    found = {f.code: f for f in analysis.analyse(ev).findings}
    assert coverage.DEADLINE_REACHED.code in found and "mx.example.test. A" in found["DEADLINE_REACHED"].message


def test_the_probe_keeps_a_margin_of_its_deadline_for_analysis_and_rendering() -> None:
    assert probe.probe_time(3.0) == 2.5 and probe.probe_time(10.0) == 9.0 and probe.probe_time(30.0) == 28.0
    assert 0 < probe.probe_time(0.4) < 0.4


def test_ipv6_resolver(tmp_path: Path) -> None:
    async def main() -> Evidence:
        async with tree(tmp_path, extra=["::1"]) as t:
            options = probe.ProbeOptions(resolvers=(f"[::1]:{t.port}",), authoritative=False, timeout=0.5)
            return await probe.probe_domain("example.test", options)

    ev = asyncio.run(main())
    assert ev.views[0].servers[0].address == "::1"
    assert summary(ev, "internal", "example.test.", "MX").outcome is Outcome.NOERROR


@pytest.mark.parametrize("target", ["", "a..b", "user@", "x" * 300])
def test_bad_targets_raise_before_any_traffic(target: str) -> None:
    with pytest.raises(InvalidTarget):
        probe.collect(target, probe.ProbeOptions(use_system=False, authoritative=False))


def test_bad_options_raise_config_errors() -> None:
    with pytest.raises(ConfigError):
        probe.collect("example.test", probe.ProbeOptions(resolvers=("resolver.example",)))
    with pytest.raises(ConfigError):
        probe.collect("example.test", dataclasses.replace(probe.ProbeOptions(use_system=False), dns_port=0))


def test_the_mta_view_asks_aaaa_then_a_and_waits_as_the_stub_resolver(tmp_path: Path) -> None:
    # the MTA's resolver drops AAAA: the stub (resolv.conf timeout:1, two tries) waits about 2 s before
    # the A query goes out, where mxdoctor's own timer (0.3 s, then 0.6 s) gives up within 1 s
    conf = tmp_path / "resolv.conf"
    conf.write_text("options timeout:1 attempts:2\n")
    faults = {RESOLVER: [Fault("drop", qtype="AAAA")]}
    ev = run_probe(
        tmp_path, "example.test", faults, resolvers=(RESOLVER,), authoritative=False,
        stub_timer=True, resolv_conf=str(conf),
    )
    mine = [x for x in ev.exchanges if x.view == "internal" and x.qname == "mx.example.test."]
    aaaa = [x for x in mine if x.qtype == "AAAA"]
    [a] = [x for x in mine if x.qtype == "A"]
    assert aaaa and all(x.outcome is Outcome.TIMEOUT for x in aaaa)
    assert a.started >= max(x.started + x.duration for x in aaaa) - 0.05  # A only after the AAAA gave up
    assert 1.8 <= a.started - min(x.started for x in aaaa) <= 3.0  # 1 s x 2 tries, not mxdoctor's 0.3 s
    assert ev.options["stub_timeout"] == "1" and ev.options["stub_attempts"] == "2"
    d = analysis.analyse(ev)
    postfix = next(v for v in d.verdicts if v.mta == "postfix")
    assert any("up to 2 s for one answer (stub resolver timeout:1 x attempts:2" in n for n in postfix.notes)


def test_zone_keys_are_asked_only_with_a_trust_anchor(tmp_path: Path) -> None:
    # --root-hints without --trust-anchor: nothing is validated, so no DNSKEY/DS/TLSA lookups cost time
    ev = run_probe(tmp_path, "example.test")
    assert not [lk for lk in ev.lookups if lk.view == DNSSEC_KEYS_VIEW]
    key = tmp_path / "root.key"
    key.write_text(anchor.IANA_ROOT[0] + "\n")
    ev = run_probe(tmp_path, "example.test", trust_anchor=str(key))
    assert {(lk.qname, lk.qtype) for lk in ev.lookups if lk.view == DNSSEC_KEYS_VIEW} >= {(".", "DNSKEY")}
