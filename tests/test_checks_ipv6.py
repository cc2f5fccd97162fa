"""A host without IPv6 does not blame name servers for its own missing route. Pure, no network."""

from __future__ import annotations

from mxdoctor import analysis, evidence
from mxdoctor.evidence import Lookup, Outcome, Server, View, ViewKind


def test_unreachable_ipv6_servers_are_left_out_with_a_notice() -> None:
    ns4, ns6 = Server("192.0.2.53", 53, "ns1.example.com."), Server("2001:db8::53", 53, "ns1.example.com.")
    lookups = []
    for qname, qtype, outcome, records in [
        ("example.com.", "MX", Outcome.NOERROR, ("10 mx.example.com.",)),
        ("mx.example.com.", "A", Outcome.NOERROR, ("192.0.2.25",)),
        ("mx.example.com.", "AAAA", Outcome.NODATA, ()),
    ]:
        lookups.append(Lookup("authoritative", None, qname, qtype, outcome, records=records))
        lookups.append(Lookup("authoritative", ns4, qname, qtype, outcome, records=records))
        lookups.append(Lookup("authoritative", ns6, qname, qtype, Outcome.NETWORK_ERROR))
    ev = evidence.Evidence(
        target="example.com", domain="example.com",
        views=(View("authoritative", ViewKind.AUTHORITATIVE),), lookups=tuple(lookups),
    )
    codes = {f.code for f in analysis.analyse(ev).findings}
    assert "IPV6_TRANSPORT_UNAVAILABLE" in codes
    assert not codes & {"AAAA_TIMEOUT", "NS_DISAGREE", "A_LOOKUP_FAILED", "MX_LOOKUP_FAILED"}, codes
