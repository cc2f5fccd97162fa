"""Real validating Unbound over the signed lab, with the lab's trust anchor: it finds the healthy zones
secure and the broken ones bogus, exactly where the lab resolver does, with the same EDE codes, and
answers CD, DO and AD queries as the lab resolver does."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from _resolver_unbound import lab_on_port_53, running_unbound, skip_unless_unbound_can_run

pytestmark = [pytest.mark.unbound, pytest.mark.root]

QUESTIONS = [("example.com.", "MX"), ("mail.example.net.", "A"), ("mail.example.net.", "AAAA")]


def _shape(reply: dns.message.Message) -> tuple[str, bool, tuple[int, ...]]:
    ede = tuple(sorted(int(o.code) for o in reply.options if isinstance(o, dns.edns.EDEOption)))
    return dns.rcode.to_text(reply.rcode()), bool(reply.flags & dns.flags.AD), ede


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("dnssec-healthy", [("NOERROR", True, ()), ("NOERROR", True, ()), ("NOERROR", True, ())]),
        ("dnssec-expired", [("NOERROR", True, ()), ("SERVFAIL", False, (7,)), ("NOERROR", True, ())]),
        ("dnssec-aaaa-nodata-bogus", [("NOERROR", True, ()), ("NOERROR", True, ()), ("SERVFAIL", False, (6,))]),
        ("dnssec-ds-mismatch", [("NOERROR", True, ()), ("SERVFAIL", False, (9,))]),
    ],
)
def test_unbound_and_the_lab_resolver_validate_alike(
    scenario: str, expected: list[tuple[str, bool, tuple[int, ...]]]
) -> None:
    skip_unless_unbound_can_run()
    with lab_on_port_53(scenario) as card, running_unbound(card) as unbound:
        internal = card.resolver("internal")
        ours = [
            dns.query.udp(dns.message.make_query(q, t, want_dnssec=True), internal.address, port=internal.port,
                          timeout=8)
            for q, t in QUESTIONS[: len(expected)]
        ]
        # (After a DS mismatch Unbound marks the keys bad and says only EDE 6 for later questions.)
        theirs = [unbound.ask(q, t, dnssec=True) for q, t in QUESTIONS[: len(expected)]]
        log = unbound.log_text()
    assert [_shape(r) for r in theirs] == expected, log
    assert [_shape(r) for r in ours] == expected


# How a client may ask: EDNS without DNSSEC flags, DO, CD, both, AD, and without EDNS at all.
ASKS = {
    "plain": (True, False, 0),
    "DO": (True, True, 0),
    "CD": (True, False, dns.flags.CD),
    "DO+CD": (True, True, dns.flags.CD),
    "AD": (True, False, dns.flags.AD),
    "no EDNS": (False, False, 0),
}
CD_DO_QUESTIONS = [*QUESTIONS, ("gone.example.com.", "MX"), ("_25._tcp.mail.example.net.", "TLSA")]


def _ask(address: str, port: int, qname: str, qtype: str, how: str) -> dns.message.Message:
    edns, do, flags = ASKS[how]
    query = dns.message.make_query(qname, qtype, use_edns=0 if edns else False, want_dnssec=do)
    query.flags |= flags
    return dns.query.udp(query, address, port=port, timeout=8)


def _full_shape(reply: dns.message.Message) -> tuple[object, ...]:
    """RCODE, the AD/CD/DO bits, whether an EDE came, and each section's RRsets (RRSIGs with what they cover)."""
    def section(rrsets: list[dns.rrset.RRset]) -> tuple[str, ...]:
        return tuple(sorted(f"{r.name} {dns.rdatatype.to_text(r.rdtype)}"
                            + (f"/{dns.rdatatype.to_text(r.covers)}" if r.rdtype == dns.rdatatype.RRSIG else "")
                            for r in rrsets))
    flags = tuple(f for f, bit in (("AD", dns.flags.AD), ("CD", dns.flags.CD)) if reply.flags & bit)
    do = reply.edns >= 0 and bool(reply.ednsflags & dns.flags.DO)
    ede = any(isinstance(o, dns.edns.EDEOption) for o in reply.options)
    return dns.rcode.to_text(reply.rcode()), flags, do, ede, section(reply.answer), section(reply.authority)


@pytest.mark.parametrize("scenario", [
    "dnssec-healthy", "dnssec-nsec3", "dnssec-expired", "dnssec-ds-mismatch", "dnssec-aaaa-nodata-bogus",
    "dnssec-nxdomain-bogus", "dnssec-missing-rrsig", "dnssec-dnskey-unsigned", "dnssec-dnskey-tcp-refused",
    "dnssec-unsupported-algorithm", "dnssec-dane-ok", "dnssec-dane-tlsa-servfail",
])
def test_unbound_and_the_lab_resolver_answer_cd_and_do_alike(scenario: str) -> None:
    """Every way of asking gets the same reply from both: CD returns bogus data unvalidated, DO brings the
    RRSIGs and the NSEC/NSEC3 proofs, AD only for validated data asked with DO or AD. The EDE code is
    compared for the first question only: Unbound 1.17 answers the same question again from its bogus
    cache with EDE 6 and no text, and once a zone's keys are bad, says EDE 6 for its other names too."""
    skip_unless_unbound_can_run()
    with lab_on_port_53(scenario) as card, running_unbound(card) as unbound:
        internal = card.resolver("internal")
        first: list[tuple[list[int], list[int]]] = []
        diffs = []
        for qname, qtype in CD_DO_QUESTIONS:
            for how in ASKS:
                ours = _ask(internal.address, internal.port, qname, qtype, how)
                theirs = _ask(unbound.address, unbound.port, qname, qtype, how)
                if _full_shape(ours) != _full_shape(theirs):
                    diffs.append((qname, qtype, how, _full_shape(theirs), _full_shape(ours)))
                if theirs.rcode() == dns.rcode.SERVFAIL and not first and how == "plain":
                    first.append(([int(o.code) for o in theirs.options if isinstance(o, dns.edns.EDEOption)],
                                  [int(o.code) for o in ours.options if isinstance(o, dns.edns.EDEOption)]))
        log = unbound.log_text()
    assert not diffs, (diffs, log[-3000:])
    for theirs_ede, ours_ede in first:
        assert theirs_ede == ours_ede, log[-3000:]
