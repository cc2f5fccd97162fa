"""Real Unbound as the internal resolver over the lab: it passes the seed case's SERVFAIL on, as ours does."""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from _resolver_lab import rdtexts
from _resolver_unbound import lab_on_port_53, running_unbound, skip_unless_unbound_can_run

pytestmark = [pytest.mark.unbound, pytest.mark.root]


def test_unbound_answers_servfail_to_the_seed_case_aaaa_and_the_address_to_a() -> None:
    skip_unless_unbound_can_run()
    with lab_on_port_53("aaaa-servfail") as card, running_unbound(card) as unbound:
        mx = unbound.ask(card.domains[0], "MX")
        aaaa = unbound.ask("mail.example.net.", "AAAA")
        a = unbound.ask("mail.example.net.", "A")
        asked = {(name, qtype) for name, qtype, _ in card.dns_server("ns1.example.net").queries} | {
            (name, qtype) for name, qtype, _ in card.dns_server("ns2.example.net").queries
        }
        log = unbound.log_text()
    assert rdtexts(mx, "MX") == ["10 mail.example.net."]
    assert mx.flags & dns.flags.RA
    assert dns.rcode.to_text(aaaa.rcode()) == "SERVFAIL", log
    assert not aaaa.answer
    assert a.rcode() == dns.rcode.NOERROR and rdtexts(a, "A") == ["127.0.0.25"]
    # Unbound really iterated to the faulty servers (not some other path) and asked both kinds.
    assert ("mail.example.net.", "AAAA") in asked and ("mail.example.net.", "A") in asked


def test_unbound_and_the_lab_resolver_agree_on_the_seed_case() -> None:
    skip_unless_unbound_can_run()
    questions = [("example.com.", "MX"), ("mail.example.net.", "A"), ("mail.example.net.", "AAAA")]
    with lab_on_port_53("aaaa-servfail") as card, running_unbound(card) as unbound:
        internal = card.resolver("internal")
        ours = [
            dns.query.udp(dns.message.make_query(q, t), internal.address, port=internal.port, timeout=8)
            for q, t in questions
        ]
        theirs = [unbound.ask(q, t) for q, t in questions]
    for (qname, qtype), mine, real in zip(questions, ours, theirs, strict=True):
        assert (qname, qtype, mine.rcode(), rdtexts(mine, qtype)) == (
            qname,
            qtype,
            real.rcode(),
            rdtexts(real, qtype),
        )


def _outcome(address: str, port: int, qname: str, qtype: str) -> tuple[str, list[str]]:
    try:
        reply = dns.query.udp(dns.message.make_query(qname, qtype), address, port=port, timeout=8)
    except dns.exception.FormError as exc:
        return "unparseable", [str(exc)]
    return dns.rcode.to_text(reply.rcode()), rdtexts(reply, qtype)


# Where real Unbound 1.17 and the lab resolver part ways, on purpose: (scenario, qname, qtype) ->
# (lab resolver's rcode, Unbound's rcode).
KNOWN_DIFFERENCES = {
    # The lab resolver caches NXDOMAIN for the whole name (RFC 2308 §5, as BIND does; RFC 4074 §4.2), so
    # the A query after the AAAA NXDOMAIN is denied; Unbound keeps its message cache per type.
    ("aaaa-nxdomain", "mx1.example.com.", "A"): ("NXDOMAIN", "NOERROR"),
    # The lab resolver rejects 4-byte AAAA data and so answers SERVFAIL, as BIND does; Unbound relays
    # the broken record, which the client cannot parse.
    ("aaaa-broken", "mx1.example.com.", "AAAA"): ("SERVFAIL", "unparseable"),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "scenario",
    [
        "healthy",
        "aaaa-broken",
        "aaaa-nxdomain",
        "aaaa-refused",
        "domain-nxdomain",
        "edns-intolerant",
        "lame-delegation",
        "multi-mx-partial",
        "mx-cname",
        "mx-servfail",
        "ns-disagree",
        "null-mx",
        "tcp-refused-truncated",
    ],
)
def test_the_lab_resolver_answers_as_unbound_does(scenario: str) -> None:
    skip_unless_unbound_can_run()
    with lab_on_port_53(scenario) as card, running_unbound(card) as unbound:
        ours = card.resolver("external")  # the lab resolver iterating, without faults of its own
        domain = card.domains[0]
        questions = [(domain, "MX")]
        mx_reply = dns.query.udp(
            dns.message.make_query(domain, "MX"), ours.address, port=ours.port, timeout=8
        )
        for rrset in mx_reply.answer:
            for mx in rrset if rrset.rdtype == dns.rdatatype.MX else ():
                if mx.exchange != dns.name.root:
                    questions += [(mx.exchange.to_text(), "AAAA"), (mx.exchange.to_text(), "A")]
        seen = [
            (
                qname,
                qtype,
                _outcome(ours.address, ours.port, qname, qtype),
                _outcome(unbound.address, unbound.port, qname, qtype),
            )
            for qname, qtype in questions
        ]
    for qname, qtype, mine, real in seen:
        expected = KNOWN_DIFFERENCES.get((scenario, qname, qtype))
        if expected is None:
            assert (qname, qtype, mine) == (qname, qtype, real)
        else:
            assert (mine[0], real[0]) == expected
