"""Scenario table: ``mxdoctor audit`` on every built-in lab scenario over real loopback servers, with
the finding codes each must report (exactly: no other code at NOTICE or above), by catalogue code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mxdoctor import analysis, diagnosis, evidence, lab
from mxdoctor.audit import run
from mxdoctor.checks import _registry as registry
from mxdoctor.checks import address, audit, mx, nameserver
from mxdoctor.diagnosis import Severity
from mxdoctor.dns import probeset
from mxdoctor.lab import scenario as scenario_mod
from mxdoctor.mta.models import MODELS
from mxdoctor.report import audit as report

TIMEOUT = 0.3

# scenario -> (codes audit must report, and no others at NOTICE or above; exit status)
TABLE: dict[str, tuple[set[str], int]] = {
    "healthy": (set(), 0),
    "aaaa-servfail": ({address.AAAA_SERVFAIL.code}, 2),
    "aaaa-nxdomain": ({address.AAAA_NXDOMAIN.code}, 2),
    "aaaa-dropped": ({address.AAAA_TIMEOUT.code}, 2),
    "aaaa-refused": ({address.AAAA_UNEXPECTED_RCODE.code}, 2),
    "aaaa-broken": ({address.AAAA_BROKEN_RESPONSE.code}, 2),
    "mx-servfail": ({mx.MX_LOOKUP_FAILED.code}, 2),
    "domain-nxdomain": ({mx.DOMAIN_NXDOMAIN.code}, 2),
    "null-mx": ({mx.NULL_MX.code}, 2),
    "mx-cname": ({mx.MX_TARGET_IS_CNAME.code}, 1),
    "cname-loop": ({mx.CNAME_CHAIN_BROKEN.code}, 2),
    "cname-chain": ({mx.CNAME_CHAIN_BROKEN.code}, 2),
    "mx-literal": ({mx.MX_TARGET_IS_ADDRESS.code}, 2),
    "no-address": ({mx.NO_ADDRESSES.code}, 2),
    "lame-delegation": ({nameserver.LAME_DELEGATION.code}, 2),
    "ns-disagree": ({address.AAAA_SERVFAIL.code, nameserver.NS_DISAGREE.code}, 2),
    # the resolvers' faults are invisible to an audit of the authoritative servers, as they should be
    "internal-resolver-stale": (set(), 0),
    "internal-forwarder-broken": (set(), 0),
    "edns-intolerant": ({nameserver.EDNS_INTOLERANT.code}, 1),
    # the MX query fails (every resolver fails the zone); audit's own EDNS probe finds the same drop
    "edns-dropped": ({nameserver.EDNS_DROPPED.code, mx.MX_LOOKUP_FAILED.code}, 2),
    "tcp-refused-truncated": ({nameserver.TCP_FAILS.code, mx.MX_LOOKUP_FAILED.code}, 2),
    "smtp-tempfail": (set(), 0),  # an SMTP fault: audit does not speak SMTP
    "ipv6-only-mx": (set(), 0),
    "multi-mx-partial": ({address.AAAA_SERVFAIL.code, address.A_LOOKUP_FAILED.code}, 2),
    "a-servfail-aaaa-ok": ({address.A_LOOKUP_FAILED.code}, 2),
    "a-servfail-aaaa-refused": ({address.A_LOOKUP_FAILED.code}, 2),
    "mx-nxdomain": ({mx.MX_TARGET_NXDOMAIN.code, mx.NO_ADDRESSES.code}, 2),
    "no-mx": ({mx.IMPLICIT_MX.code, mx.NO_ADDRESSES.code}, 2),
    "smtp-refused": (set(), 0),  # an SMTP fault: audit does not speak SMTP
    # one per audit probe that can fail
    "audit-unknown-type": ({audit.UNKNOWN_TYPE_MISHANDLED.code}, 2),
    "audit-edns-version": ({audit.EDNS_VERSION_IGNORED.code}, 1),
    "audit-edns-option": ({audit.EDNS_OPTION_MISHANDLED.code}, 2),
    "audit-edns-flags": ({audit.EDNS_FLAG_MISHANDLED.code}, 1),
    "audit-no-truncation": ({audit.NO_TRUNCATION.code}, 1),
    "audit-qname-case": ({audit.QNAME_CASE_MISHANDLED.code}, 1),
    "audit-empty-nonterminal": ({audit.NXDOMAIN_FOR_EMPTY_NONTERMINAL.code}, 2),
    "audit-opcode": ({audit.OPCODE_MISHANDLED.code}, 1),
    "audit-zflag": ({audit.ZFLAG_MISHANDLED.code}, 1),
    "audit-not-authoritative": ({audit.NOT_AUTHORITATIVE.code}, 2),
    "audit-tcp-unsupported": ({audit.TCP_UNSUPPORTED.code}, 2),
    "audit-nxdomain-no-soa": ({audit.NXDOMAIN_MISHANDLED.code}, 1),
    "audit-soa-serial": ({audit.SOA_SERIAL_MISMATCH.code}, 1),
    # ns3, named only by the zone's own NS set, is audited too: it answers nothing
    "audit-ns-set": ({audit.NS_SET_MISMATCH.code, audit.NS_UNREACHABLE.code}, 2),
    # DNSSEC, per server of the signed zones (docs/audit.md); signed and healthy gives no DNSSEC noise
    "dnssec-healthy": (set(), 0),
    "dnssec-nsec3": (set(), 0),
    "dnssec-unsupported-algorithm": (set(), 0),  # insecure, not bogus
    "dnssec-expired": ({audit.DNSSEC_SERVER_RRSIG_EXPIRED.code}, 2),
    "dnssec-missing-rrsig": ({audit.DNSSEC_SERVER_RRSIG_MISSING.code}, 2),
    "dnssec-ds-mismatch": ({audit.DNSSEC_SERVER_DNSKEY_BOGUS.code}, 2),
    "dnssec-dnskey-unsigned": ({audit.DNSSEC_SERVER_DNSKEY_BOGUS.code}, 2),
    "dnssec-aaaa-nodata-bogus": ({audit.DNSSEC_SERVER_DENIAL_BOGUS.code}, 2),
    "dnssec-nxdomain-bogus": ({audit.DNSSEC_SERVER_DENIAL_BOGUS.code}, 2),
    "dnssec-dnskey-tcp-refused": ({audit.DNSSEC_SERVER_DNSKEY_BOGUS.code, nameserver.TCP_FAILS.code}, 2),
    # the resolvers' validation is invisible to an audit; the expired signature is not
    "dnssec-internal-nonvalidating": ({audit.DNSSEC_SERVER_RRSIG_EXPIRED.code}, 2),
    # DANE is matched against SMTP, which audit does not speak; the TLSA record itself is not audited
    "dnssec-dane-insecure": (set(), 0),
    "dnssec-dane-ok": (set(), 0),
    "dnssec-dane-stale": (set(), 0),
    "dnssec-dane-tlsa-servfail": (set(), 0),
}
# the server the audit-* scenarios break (the other one is healthy): findings must name it alone
BROKEN_ONE = "127.0.0.12"
CONSISTENCY = {audit.SOA_SERIAL_MISMATCH.code, audit.NS_SET_MISMATCH.code, nameserver.NS_DISAGREE.code}


def audit_card(card: lab.Card, **kwargs: object) -> evidence.Evidence:
    options = run.AuditOptions(root_hints=card.root_hints, dns_port=card.dns_port, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]
    return run.collect(card.domains[0], options)


def test_every_builtin_scenario_is_in_the_table() -> None:
    assert sorted(TABLE) == sorted(scenario_mod.builtin_names())
    known = {s.code for s in registry.catalogue()}
    assert set().union(*(codes for codes, _ in TABLE.values())) <= known


DATA = Path(__file__).parent / "data"
RECORDED = ("aaaa-servfail", "lame-delegation", "audit-edns-version", "audit-qname-case", "audit-no-truncation",
            "dnssec-expired", "dnssec-aaaa-nodata-bogus", "dnssec-healthy")


@pytest.mark.parametrize("name", sorted(TABLE))
def test_audit_builtin_scenario(name: str) -> None:
    want, status = TABLE[name]
    with lab.running(name) as card:
        ev = audit_card(card)
    if os.environ.get("MXDOCTOR_RECORD") and name in RECORDED:
        DATA.mkdir(exist_ok=True)
        (DATA / f"{name}.json").write_text(evidence.dumps(ev) + "\n", encoding="utf-8")
    d = analysis.analyse(ev)
    assert_audit(name, d)
    # the evidence survives a JSON round trip and re-analyses to the same findings
    again = evidence.loads(evidence.dumps(ev))
    assert again == ev
    assert [f.code for f in analysis.analyse(again).findings] == [f.code for f in d.findings]


@pytest.mark.parametrize("path", sorted(DATA.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_audit_evidence_replays_offline(path: Path) -> None:
    """Pure analysis, no network: recorded audit evidence gives the table's findings and exit status."""
    d = analysis.analyse(evidence.loads(path.read_text(encoding="utf-8"), source=str(path)))
    assert_audit(path.stem, d)
    if path.stem.startswith("dnssec-"):  # the verdicts as validating resolvers give them, offline too
        # audit neither asks TLSA nor connects, so an MTA with DANE on (Exim by default) is diagnose's to
        # judge where DANE decides (docs/audit.md)
        want = {m: o for m, o in scenario_mod.load(path.stem).expect.verdicts.items() if not MODELS[m].dane}
        assert {v.mta: v.outcome.value for v in d.verdicts if v.mta in want} == want


def assert_audit(name: str, d: diagnosis.Diagnosis) -> None:
    want, status = TABLE[name]
    found = {f.code for f in d.findings if f.severity.rank >= Severity.NOTICE.rank}
    assert found == want, f"{name}: missing {sorted(want - found)}, unexpected {sorted(found - want)}"
    assert d.exit_code == status
    if not want:
        assert audit.AUDIT_OK.code in {f.code for f in d.findings}
    # every finding says how to reproduce it and which RFC it rests on
    for f in d.findings:
        if f.severity.rank >= Severity.WARNING.rank:
            assert f.rfcs, f.code
            if f.code in want and name.startswith("audit-"):
                assert any(r.startswith("dig @") for r in f.reproduce), f.code
                # attribution: the one broken server, not its healthy twin (tcp-unsupported breaks both;
                # a mismatch between servers involves them all)
                if name not in ("audit-tcp-unsupported", "audit-ns-set") and f.code not in CONSISTENCY:
                    servers = {s.server for s in f.seen if s.server}
                    assert servers and all(BROKEN_ONE in s for s in servers), (f.code, servers)


def test_mx_hosts_in_another_zone_with_other_servers_are_audited() -> None:
    """aaaa-servfail: example.com's MX is mail.example.net, served by ns1/ns2.example.net only."""
    with lab.running("aaaa-servfail") as card:
        ev = audit_card(card)
    zones = {zone: {s.address for s in servers} for zone, servers in report.zones(ev)}
    assert zones == {"example.com.": {"127.0.0.11", "127.0.0.12"}, "example.net.": {"127.0.0.13", "127.0.0.14"}}
    probed = {(p.zone, p.qname) for p in ev.audit if p.name == "aaaa"}
    assert probed == {("example.com.", "example.com."), ("example.net.", "mail.example.net.")}
    d = analysis.analyse(ev)
    (servfail,) = [f for f in d.findings if f.code == address.AAAA_SERVFAIL.code]
    assert servfail.subject == "mail.example.net. AAAA"
    assert {s.server for s in servfail.seen} == {
        str(evidence.Server("127.0.0.13", card.dns_port, "ns1.example.net.")),
        str(evidence.Server("127.0.0.14", card.dns_port, "ns2.example.net.")),
    }
    assert all("mail.example.net. AAAA +norecurse" in r for r in servfail.reproduce)
    # example.com's own servers pass everything; the verdicts are diagnose's, from the same logic
    assert [f.subject for f in d.findings if f.code == audit.AUDIT_OK.code] == ["example.com."]
    verdicts = {v.mta: v.outcome.value for v in d.verdicts}
    assert verdicts == dict(scenario_mod.load("aaaa-servfail").expect.verdicts)


def test_probe_set_reaches_every_server_address() -> None:
    with lab.running("healthy") as card:
        ev = audit_card(card)
    by_server: dict[str, set[str]] = {}
    for p in ev.audit:
        by_server.setdefault(p.server.address, set()).add(p.name)
    # every probe of the set, but ``ent`` (healthy's MX host sits right below the apex, no name between)
    # and the DNSSEC ones: the zone is not signed, so no DNSSEC query goes out and nothing is said of it
    dnssec = {p.name for p in probeset.PROBES if p.dnssec}
    expected = {p.name for p in probeset.PROBES} - {"ent"} - dnssec
    assert "ent" in probeset.BY_NAME and len(dnssec) == 7 and len(expected) == len(probeset.PROBES) - 8
    assert by_server == {"127.0.0.11": expected, "127.0.0.12": expected}
    # every exchange of a probe is in the evidence and carries the probe's name
    for p in ev.audit:
        for i in p.exchanges:
            x = ev.exchange(i)
            assert x is not None and x.probe == p.name and x.server == p.server


def test_empty_nonterminal_probe_only_where_one_exists() -> None:
    with lab.running("audit-empty-nonterminal") as card:
        ev = audit_card(card)
    assert {p.qname for p in ev.audit if p.name == "ent"} == {"mail.example.com."}


V6_SERVER = """
description = "example.com with one name server on IPv4 and one on IPv6 (::1, AAAA glue)."
domains = ["example.com"]

[zones."example.com"]
text = '''
@        MX  10 mx1
mx1      A   127.0.0.25
'''

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]

[[servers]]
name = "ns6.example.com"
address = "::1"
zones = ["example.com"]
faults = [{ kind = "rcode", rcode = "SERVFAIL", name = "mx1.example.com.", qtype = "AAAA" }]
"""


def test_ipv6_server_addresses_are_probed() -> None:
    sc = scenario_mod.parse(V6_SERVER, source="v6-server", name="v6-server")
    with lab.running(sc) as card:
        ev = audit_card(card)
    assert {p.server.address for p in ev.audit} == {"127.0.0.11", "::1"}
    d = analysis.analyse(ev)
    (servfail,) = [f for f in d.findings if f.code == address.AAAA_SERVFAIL.code]
    assert [s.server for s in servfail.seen] == [str(evidence.Server("::1", card.dns_port, "ns6.example.com."))]
    assert any(r.startswith("dig @::1 ") for r in servfail.reproduce)


def test_an_mx_alias_is_audited_with_its_canonical_name() -> None:
    with lab.running("mx-cname") as card:
        ev = audit_card(card)
    assert {p.qname for p in ev.audit if p.name == "aaaa"} == {"example.com.", "mail.example.com.", "mx1.example.com."}
