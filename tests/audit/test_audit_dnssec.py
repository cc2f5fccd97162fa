"""The audit's DNSSEC probes per server: a signed zone whose two servers differ (one serves stale
signatures, strips RRSIGs, rejects DO or sends RRSIGs unasked) over real lab servers on loopback, and
recorded evidence with garbage in its DNSSEC records, which gives findings, never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mxdoctor import analysis, diagnosis, evidence, lab
from mxdoctor.audit import run
from mxdoctor.checks import audit, dnssec, nameserver
from mxdoctor.diagnosis import Severity
from mxdoctor.dns import probeset
from mxdoctor.lab import scenario

TIMEOUT = 0.3
NS1, NS2 = "127.0.0.13", "127.0.0.14"

# example.com unsigned (its servers must get no DNSSEC query), its MX host in the signed example.net,
# served by two servers: ns2 gets the faults of the test
TWO_SERVERS = """
description = "example.net signed, two servers; ns2 breaks DNSSEC in one way."
domains = ["example.com"]

[zones."example.com"]
text = '''
@        MX  10 mail.example.net.
'''

[zones."example.net"]
dnssec = true
text = '''
mail     A   127.0.0.25
'''

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]

[[servers]]
name = "ns1.example.net"
address = "127.0.0.13"
zones = ["example.net"]
faults = NS1_FAULTS

[[servers]]
name = "ns2.example.net"
address = "127.0.0.14"
zones = ["example.net"]
faults = NS2_FAULTS
"""


def audited(ns2: str, ns1: str = "[]") -> diagnosis.Diagnosis:
    text = TWO_SERVERS.replace("NS2_FAULTS", ns2).replace("NS1_FAULTS", ns1)
    with lab.running(scenario.parse(text, source="two-servers.toml", name="two-servers")) as card:
        ev = run.collect(card.domains[0], run.AuditOptions(root_hints=card.root_hints, dns_port=card.dns_port,
                                                          timeout=TIMEOUT))
    # what the test is about must also survive the evidence file
    again = analysis.analyse(evidence.loads(evidence.dumps(ev)))
    d = analysis.analyse(ev)
    assert [(f.code, f.subject, f.message) for f in again.findings] == [(f.code, f.subject, f.message)
                                                                         for f in d.findings]
    assert [v.outcome for v in again.verdicts] == [v.outcome for v in d.verdicts]
    return d


def notable(d: diagnosis.Diagnosis) -> dict[str, diagnosis.Finding]:
    found = {f.code: f for f in d.findings if f.severity.rank >= Severity.NOTICE.rank}
    assert len(found) == len([f for f in d.findings if f.severity.rank >= Severity.NOTICE.rank]), d.findings
    return found


def servers_of(f: diagnosis.Finding) -> set[str]:
    return {s.server.split()[1].split(":")[0] for s in f.seen if s.server}


def outcomes(d: diagnosis.Diagnosis) -> set[str]:
    return {v.outcome.value for v in d.verdicts}


def test_one_server_with_stale_signatures_is_named_and_mail_still_flows() -> None:
    d = audited('[{ kind = "stale-rrsig" }]')
    assert set(notable(d)) == {audit.DNSSEC_SERVER_RRSIG_EXPIRED.code}
    f = notable(d)[audit.DNSSEC_SERVER_RRSIG_EXPIRED.code]
    assert servers_of(f) == {NS2}
    assert "ns2.example.net. (127.0.0.14)" in f.message and "valid at ns1.example.net. (127.0.0.13)" in f.message
    assert "mail.example.net. A" in f.message and "3 days ago" in f.message and "by key " in f.message
    key = f.args["key_tag"]
    assert key.isdigit() and f"key {key}" in f.remediation.receiver and "example.net." in f.remediation.receiver
    assert "negative trust anchor" in f.remediation.sender
    assert all(r.startswith(f"dig @{NS2} ") and "+dnssec" in r for r in f.reproduce)
    # a validating resolver tries ns1 when ns2's answer is bogus: every MTA still delivers
    assert outcomes(d) == {"deliver"}
    assert d.exit_code == 2
    # the unsigned example.com got no DNSSEC query at all, and nothing is said of its DNSSEC
    ev = d.evidence
    assert ev is not None
    dnssec_probes = {p.zone for p in ev.audit if probeset.BY_NAME[p.name].dnssec}
    assert dnssec_probes == {"example.net."}
    assert audit.AUDIT_OK.code in {f.code for f in d.findings if f.subject == "example.com."}


def test_every_server_stale_blames_the_zone_and_every_mta_defers() -> None:
    d = audited('[{ kind = "stale-rrsig" }]', ns1='[{ kind = "stale-rrsig" }]')
    f = notable(d)[audit.DNSSEC_SERVER_RRSIG_EXPIRED.code]
    assert servers_of(f) == {NS1, NS2}
    assert "at every server of example.net. asked: the zone as signed is at fault" in f.message
    assert outcomes(d) == {"defer"}
    assert all(audit.DNSSEC_SERVER_RRSIG_EXPIRED.code in v.because for v in d.verdicts)


@pytest.mark.parametrize(
    ("kind", "code", "words"),
    [
        ("rrsig-strip", audit.DNSSEC_SERVER_DO_MISHANDLED, "no RRSIG in any answer to a query with DO"),
        ("do-formerr", audit.DNSSEC_SERVER_DO_MISHANDLED, "mail.example.net. A with DO gets FORMERR, without DO "
                                                          "NOERROR"),
        ("rrsig-unasked", audit.DNSSEC_SERVER_RRSIG_UNASKED, "a: mail.example.net. A"),
    ],
)
def test_do_bit_handling_of_one_server(kind: str, code: audit.FindingSpec, words: str) -> None:
    d = audited(f'[{{ kind = "{kind}" }}]')
    found = notable(d)
    # FORMERR to the discovery's DO queries is not EDNS intolerance: the `edns` probe without DO passes
    assert set(found) == {code.code}
    f = found[code.code]
    assert servers_of(f) == {NS2} and words in f.message, f.message
    assert outcomes(d) == {"deliver"}  # ns1 serves the zone right


def test_garbage_rrsigs_on_the_wire_are_a_finding() -> None:
    """ns2 sends RRSIGs of 3 bytes: its replies to DO queries do not parse. A finding, never a traceback;
    the discovery's own DO queries met the same garbage, which the route's checks name too."""
    d = audited('[{ kind = "rrsig-garbage" }]')
    (f,) = [f for f in d.findings if f.code == audit.DNSSEC_SERVER_DO_MISHANDLED.code]
    assert servers_of(f) == {NS2} and "with DO gets a reply that does not parse" in f.message, f.message
    for g in d.findings:  # whoever names a server names ns2 (NS_DISAGREE: ns2 against ns1)
        if g.severity.rank >= Severity.NOTICE.rank and g.code != nameserver.NS_DISAGREE.code:
            assert servers_of(g) <= {NS2}, (g.code, g.seen)
    assert outcomes(d) == {"deliver"}


def test_a_server_that_strips_rrsigs_everywhere_makes_mail_defer() -> None:
    d = audited('[{ kind = "rrsig-strip" }]', ns1='[{ kind = "rrsig-strip" }]')
    f = notable(d)[audit.DNSSEC_SERVER_DO_MISHANDLED.code]
    assert servers_of(f) == {NS1, NS2}
    assert outcomes(d) == {"defer"}


# -- bad input in recorded evidence ------------------------------------------------------------------------

DATA = Path(__file__).parent / "data"


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    return data


def _probe_exchange(data: dict[str, Any], probe: str, zone: str = "example.net.") -> dict[str, Any]:
    ids = [i for p in data["audit"] if p["name"] == probe and p["zone"] == zone for i in p["exchanges"]]
    return next(x for x in data["exchanges"] if x["id"] == ids[-1])


def _analyse(data: dict[str, Any]) -> diagnosis.Diagnosis:
    return analysis.analyse(evidence.loads(json.dumps(data), source="edited.json"))


def test_garbage_in_an_rrsig_is_a_finding() -> None:
    data = _load("dnssec-healthy")
    x = _probe_exchange(data, "rrsig-a")
    x["answer"] = [line if " RRSIG " not in line else
                   "mail.example.net. 300 IN RRSIG A 13 3 300 notatime 20261022163919 99999999 example.net. !!"
                   for line in x["answer"]]
    d = _analyse(data)
    codes = {f.code for f in d.findings if f.severity.rank >= Severity.NOTICE.rank}
    assert codes == {dnssec.DNSSEC_RECORD_UNREADABLE.code}, codes
    (f,) = [f for f in d.findings if f.code == dnssec.DNSSEC_RECORD_UNREADABLE.code]
    assert "notatime" in f.message and f.args["qname"] == "mail.example.net."


def test_a_dnskey_of_an_unknown_algorithm_is_a_finding() -> None:
    data = _load("dnssec-healthy")
    x = _probe_exchange(data, "dnskey")
    # every key rewritten to algorithm 253: none matches the DS any more, and none can verify anything
    x["answer"] = [re.sub(r" DNSKEY (\d+) 3 \d+ ", r" DNSKEY \1 3 253 ", line) for line in x["answer"]]
    assert any(" DNSKEY 257 3 253 " in line for line in x["answer"])
    d = _analyse(data)
    f = next(f for f in d.findings if f.code == audit.DNSSEC_SERVER_DNSKEY_BOGUS.code)
    assert "example.net." in f.message and "names key tag" in f.message
    assert {v.outcome.value for v in d.verdicts} == {"defer"}  # the only server's keys: nothing validates


def test_a_ds_of_an_unknown_algorithm_makes_the_zone_insecure_not_bogus() -> None:
    data = _load("dnssec-expired")
    for lk in data["lookups"]:
        if lk["view"] == evidence.DNSSEC_KEYS_VIEW and lk["qtype"] == "DS" and lk["qname"] == "example.net.":
            lk["records"] = [" ".join(["19509", "253", *r.split()[2:]]) for r in lk["records"]]
    d = _analyse(data)
    assert not [f for f in d.findings if f.code.startswith("DNSSEC_SERVER_")]
    assert {v.outcome.value for v in d.verdicts} == {"deliver"}
    probes = [r for r in audit.Judge(d.evidence).results  # type: ignore[arg-type]
              if r.probe.name == "rrsig-a" and r.probe.zone == "example.net."]
    assert probes and all(r.ok and "insecure" in r.detail for r in probes)


@pytest.mark.parametrize("name", ["dnssec-expired", "dnssec-healthy"])
def test_with_a_trust_anchor_the_chain_is_validated_once(name: str) -> None:
    """With the root's keys, the route's own DNSSEC check runs on the audit's discovery too; the
    audited zones' faults are the per-server findings', not said twice."""
    with lab.running(name) as card:
        ev = run.collect(card.domains[0], run.AuditOptions(root_hints=card.root_hints, dns_port=card.dns_port,
                                                          trust_anchor=card.trust_anchor, timeout=TIMEOUT))
    assert ev.trust_anchor
    d = analysis.analyse(ev)
    codes = {f.code for f in d.findings}
    assert not {c for c in codes if c.startswith("DNSSEC_") and not c.startswith("DNSSEC_SERVER_")} - {
        dnssec.DNSSEC_SECURE.code, dnssec.DNSSEC_INSECURE.code}, codes
    if name == "dnssec-expired":
        assert audit.DNSSEC_SERVER_RRSIG_EXPIRED.code in codes and outcomes(d) == {"defer"}
    else:
        assert dnssec.DNSSEC_SECURE.code in codes and outcomes(d) == {"deliver"}


def test_an_nsec3_of_an_unknown_hash_algorithm_is_ignored_as_validators_do() -> None:
    """RFC 5155 §8.1: an NSEC3 of a hash algorithm the validator does not know proves nothing."""
    data = _load("dnssec-healthy")
    x = _probe_exchange(data, "rrsig-aaaa")
    assert x["outcome"] == "NODATA"
    x["authority"] = [line for line in x["authority"] if " NSEC " not in line] + [
        "vaks2n5ofp7hlu4p9m1e4ph5i8q8ah9e.example.net. 300 IN NSEC3 2 0 0 - 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A RRSIG"]
    d = _analyse(data)
    (f,) = [f for f in d.findings if f.code == audit.DNSSEC_SERVER_DENIAL_BOGUS.code]
    assert f.args["qname"] == "mail.example.net." and "AAAA" in f.args["qtype"]
    assert {v.mta: v.outcome.value for v in d.verdicts}["exchange2010"] == "defer"
