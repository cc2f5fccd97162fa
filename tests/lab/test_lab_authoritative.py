"""The authoritative answers of lab servers: AA, referrals with glue, RFC 2308 negatives, CNAME, RFC 8020, EDNS."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from _labwire import rcode, texts

import _helpers as helpers
from mxdoctor import lab as lab_mod
from mxdoctor.lab import scenario

SCENARIO = """
description = "a zone with a child zone, aliases, an empty non-terminal and a wildcard"
domains = ["example.com"]

[zones."example.com"]
text = '''
@               MX     10 mx1
mx1             A      127.0.0.25
mx1             AAAA   ::1
alias           CNAME  alias2
alias2          CNAME  mx1
outside         CNAME  www.example.net.
a.b.deep        A      127.0.0.26
*.wild          A      127.0.0.27
'''

[zones."sub.example.com"]
text = '''
@               A      127.0.0.28
'''

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]

[[servers]]
name = "ns.sub.example.com"
address = "127.0.0.15"
zones = ["sub.example.com"]
"""


@pytest.fixture(scope="module")
def card() -> Iterator[lab_mod.Card]:
    with lab_mod.running(scenario.parse(SCENARIO, source="auth.toml", name="auth")) as running:
        yield running


def ask(card: lab_mod.Card, qname: str, qtype: str, server: str = "ns1.example.com") -> dns.message.Message:
    return helpers.ask(card.server(server), qname, qtype)


def soa_only(reply: dns.message.Message) -> bool:
    return [r.rdtype for r in reply.authority] == [dns.rdatatype.SOA]


def test_positive_answer_is_authoritative_with_opt(card: lab_mod.Card) -> None:
    reply = ask(card, "mx1.example.com", "AAAA")
    assert rcode(reply) == "NOERROR" and texts(reply, "AAAA") == ["::1"]
    assert reply.flags & dns.flags.AA and not reply.flags & dns.flags.RA
    assert reply.edns == 0 and reply.payload >= 512


def test_nodata_and_nxdomain_carry_the_soa_with_the_negative_ttl(card: lab_mod.Card) -> None:
    nodata = ask(card, "mx1.example.com", "TXT")
    assert rcode(nodata) == "NOERROR" and nodata.answer == [] and soa_only(nodata)
    assert nodata.flags & dns.flags.AA
    assert nodata.authority[0].ttl == scenario.NEGATIVE_TTL
    nx = ask(card, "nosuch.example.com", "A")
    assert rcode(nx) == "NXDOMAIN" and soa_only(nx) and nx.flags & dns.flags.AA


def test_unknown_type_is_nodata(card: lab_mod.Card) -> None:
    reply = ask(card, "mx1.example.com", "TYPE65400")
    assert rcode(reply) == "NOERROR" and reply.answer == [] and soa_only(reply)


def test_empty_non_terminal_is_nodata_not_nxdomain(card: lab_mod.Card) -> None:
    for name in ("b.deep.example.com", "deep.example.com"):
        reply = ask(card, name, "A")
        assert rcode(reply) == "NOERROR", name
        assert reply.answer == [] and soa_only(reply)
    assert texts(ask(card, "a.b.deep.example.com", "A"), "A") == ["127.0.0.26"]


def test_cname_chain_inside_the_zone_and_out_of_it(card: lab_mod.Card) -> None:
    reply = ask(card, "alias.example.com", "A")
    assert texts(reply, "CNAME") == ["alias2.example.com.", "mx1.example.com."]
    assert texts(reply, "A") == ["127.0.0.25"]
    outside = ask(card, "outside.example.com", "A")
    assert rcode(outside) == "NOERROR" and texts(outside) == ["www.example.net."]
    assert texts(ask(card, "alias.example.com", "CNAME")) == ["alias2.example.com."]


def test_wildcard_synthesis(card: lab_mod.Card) -> None:
    reply = ask(card, "anything.wild.example.com", "A")
    assert [r.name.to_text() for r in reply.answer] == ["anything.wild.example.com."]
    assert texts(reply, "A") == ["127.0.0.27"]


def test_referral_to_the_child_zone_with_glue(card: lab_mod.Card) -> None:
    reply = ask(card, "www.sub.example.com", "A")
    assert rcode(reply) == "NOERROR" and reply.answer == []
    assert not reply.flags & dns.flags.AA
    assert [(r.name.to_text(), r.rdtype) for r in reply.authority] == [("sub.example.com.", dns.rdatatype.NS)]
    assert [(r.name.to_text(), texts_of(r)) for r in reply.additional if r.rdtype == dns.rdatatype.A] == [
        ("ns.sub.example.com.", ["127.0.0.15"])
    ]
    child = ask(card, "sub.example.com", "A", server="ns.sub.example.com")
    assert texts(child, "A") == ["127.0.0.28"] and child.flags & dns.flags.AA


def texts_of(rrset: dns.rrset.RRset) -> list[str]:
    return sorted(rd.to_text() for rd in rrset)


def test_root_and_tld_delegate_down_to_the_zone(card: lab_mod.Card) -> None:
    root = ask(card, "mx1.example.com", "A", server="a.root-servers.net")
    assert [r.name.to_text() for r in root.authority] == ["com."]
    tld = ask(card, "mx1.example.com", "A", server="a.gtld-servers.net")
    assert [r.name.to_text() for r in tld.authority] == ["example.com."]
    assert texts_of(tld.additional[0]) == ["127.0.0.11"]


def test_refused_outside_its_zones(card: lab_mod.Card) -> None:
    reply = ask(card, "www.example.org", "A")
    assert rcode(reply) == "REFUSED" and reply.answer == []


def test_badvers_for_edns_version_above_zero(card: lab_mod.Card) -> None:
    endpoint = card.server("ns1.example.com")
    request = dns.message.make_query("mx1.example.com", "A", use_edns=1)
    reply = dns.query.udp(request, endpoint.address, port=endpoint.port, timeout=2)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0 and reply.answer == []


def test_other_opcodes_are_not_implemented(card: lab_mod.Card) -> None:
    endpoint = card.server("ns1.example.com")
    request = dns.message.make_query("mx1.example.com", "A")
    request.set_opcode(dns.opcode.STATUS)
    reply = dns.query.udp(request, endpoint.address, port=endpoint.port, timeout=2)
    assert reply.rcode() == dns.rcode.NOTIMP


def test_zone_transfer_is_refused_at_once_over_tcp(card: lab_mod.Card) -> None:
    # as NSD, Knot, BIND and PowerDNS answer without an allow list; Zonemaster's AXFR test then ends at once
    endpoint = card.server("ns1.example.com")
    for qtype in ("AXFR", "IXFR"):
        request = dns.message.make_query("example.com", qtype)
        started = time.monotonic()
        reply = dns.query.tcp(request, endpoint.address, port=endpoint.port, timeout=2)
        assert reply.rcode() == dns.rcode.REFUSED and reply.answer == []
        assert time.monotonic() - started < 0.5
