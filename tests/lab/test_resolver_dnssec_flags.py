"""The lab resolver toward its clients, as a validating resolver behaves (RFC 4035 §3.2, RFC 6840 §5.8):
CD returns bogus data unvalidated instead of SERVFAIL, DO clients get the RRSIGs and the denial proofs
and others do not, AD only on validated data and only to clients that set DO or AD, EDE on validation
SERVFAILs to EDNS clients."""

from __future__ import annotations

from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

import mxdoctor.lab
from mxdoctor.lab.runner import Card


def _ask(card: Card, qname: str, qtype: str, *, do: bool = False, cd: bool = False, ad: bool = False,
         edns: bool = True, resolver: str = "internal") -> dns.message.Message:
    endpoint = card.resolver(resolver)
    query = dns.message.make_query(qname, qtype, use_edns=0 if edns else False, want_dnssec=do)
    if cd:
        query.flags |= dns.flags.CD
    if ad:
        query.flags |= dns.flags.AD
    return dns.query.udp(query, endpoint.address, port=endpoint.port, timeout=8)


def _types(section: list[dns.rrset.RRset]) -> list[str]:
    return sorted(f"{r.name} {dns.rdatatype.to_text(r.rdtype)}"
                  + (f"({dns.rdatatype.to_text(r.covers)})" if r.rdtype == dns.rdatatype.RRSIG else "")
                  for r in section)


def _ede(reply: dns.message.Message) -> list[int]:
    return [int(o.code) for o in reply.options if isinstance(o, dns.edns.EDEOption)]


@pytest.fixture(scope="module")
def expired() -> Iterator[Card]:
    with mxdoctor.lab.running("dnssec-expired") as card:
        yield card


def test_cd_returns_bogus_data_unvalidated(expired: Card) -> None:
    bogus = _ask(expired, "mail.example.net.", "A", do=True)
    assert bogus.rcode() == dns.rcode.SERVFAIL and _ede(bogus) == [7]
    for do in (False, True):
        reply = _ask(expired, "mail.example.net.", "A", cd=True, do=do)
        assert reply.rcode() == dns.rcode.NOERROR, reply
        assert reply.flags & dns.flags.CD and not reply.flags & dns.flags.AD
        assert [rd.to_text() for r in reply.answer if r.rdtype == dns.rdatatype.A for rd in r] == ["127.0.0.25"]
        assert not _ede(reply)
        # With DO the expired RRSIG comes too: the client validates (and judges) it itself.
        assert ("mail.example.net. RRSIG(A)" in _types(reply.answer)) is do
    # Without CD it is still bogus: the CD answer did not get into the cache as data.
    again = _ask(expired, "mail.example.net.", "A", ad=True)
    assert again.rcode() == dns.rcode.SERVFAIL and _ede(again)


def test_cd_on_secure_data_keeps_ad_for_do_clients(expired: Card) -> None:
    reply = _ask(expired, "example.com.", "MX", cd=True, do=True)
    assert reply.flags & dns.flags.AD and reply.flags & dns.flags.CD
    assert not _ask(expired, "example.com.", "MX", cd=True).flags & dns.flags.AD


def test_do_clients_get_rrsigs_and_proofs_others_do_not(expired: Card) -> None:
    for _ in range(2):  # the second time from the cache
        secure = _ask(expired, "example.com.", "MX", do=True)
        assert _types(secure.answer) == ["example.com. MX", "example.com. RRSIG(MX)"]
        assert secure.ednsflags & dns.flags.DO and secure.flags & dns.flags.AD
        sig = next(r for r in secure.answer if r.rdtype == dns.rdatatype.RRSIG)
        assert sig.ttl == next(r for r in secure.answer if r.rdtype == dns.rdatatype.MX).ttl
        nodata = _ask(expired, "mail.example.net.", "AAAA", do=True)
        assert _types(nodata.authority) == ["example.net. RRSIG(SOA)", "example.net. SOA", "mail.example.net. NSEC",
                                            "mail.example.net. RRSIG(NSEC)"]
        nx = _ask(expired, "gone.example.com.", "MX", do=True)
        assert nx.rcode() == dns.rcode.NXDOMAIN and "example.com. RRSIG(SOA)" in _types(nx.authority)
        assert any(r.rdtype == dns.rdatatype.NSEC for r in nx.authority)
        # The NXDOMAIN's proof holds for every type of the name.
        assert any(r.rdtype == dns.rdatatype.NSEC for r in _ask(expired, "gone.example.com.", "A", do=True).authority)
    for flags in ({}, {"ad": True}, {"edns": False}):
        plain = _ask(expired, "example.com.", "MX", **flags)
        assert _types(plain.answer) == ["example.com. MX"]
        assert _types(_ask(expired, "mail.example.net.", "AAAA", **flags).authority) == ["example.net. SOA"]


def test_ad_only_on_validated_data_and_only_when_asked(expired: Card) -> None:
    assert not _ask(expired, "example.com.", "MX").flags & dns.flags.AD  # EDNS, but neither DO nor AD
    assert not _ask(expired, "example.com.", "MX", edns=False).flags & dns.flags.AD
    assert _ask(expired, "example.com.", "MX", ad=True).flags & dns.flags.AD
    assert _ask(expired, "example.com.", "MX", do=True).flags & dns.flags.AD


def test_ede_on_validation_servfail_only_to_edns_clients(expired: Card) -> None:
    assert _ede(_ask(expired, "mail.example.net.", "A"))
    plain = _ask(expired, "mail.example.net.", "A", edns=False)
    assert plain.rcode() == dns.rcode.SERVFAIL and plain.edns < 0


def test_insecure_data_never_gets_ad() -> None:
    with mxdoctor.lab.running("dnssec-unsupported-algorithm") as card:
        reply = _ask(card, "mail.example.net.", "A", do=True, ad=True)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.flags & dns.flags.AD
        assert _ask(card, "example.com.", "MX", do=True).flags & dns.flags.AD


def test_non_validating_resolver_passes_rrsigs_to_do_clients_without_ad() -> None:
    with mxdoctor.lab.running("dnssec-internal-nonvalidating") as card:
        reply = _ask(card, "mail.example.net.", "A", do=True, ad=True)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.flags & dns.flags.AD
        assert _types(reply.answer) == ["mail.example.net. A", "mail.example.net. RRSIG(A)"]
        assert _ask(card, "mail.example.net.", "A", do=True, resolver="external").rcode() == dns.rcode.SERVFAIL
