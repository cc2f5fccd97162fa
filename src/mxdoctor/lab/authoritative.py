"""The lab's authoritative answer logic: zones in, RFC-conformant answers out.

AA on authoritative data, referrals with glue at zone cuts, NXDOMAIN and NODATA with the SOA
(RFC 2308), CNAME chains inside the zone, empty non-terminals (RFC 8020), REFUSED elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import dns.zone

EDNS_PAYLOAD = 1232
MAX_CNAME_CHAIN = 8


class Authoritative:
    """A ``Handler`` for ``DnsServer`` serving a set of zones (names absolute, ``relativize=False``)."""

    def __init__(self, zones: Sequence[dns.zone.Zone]) -> None:
        # Deepest origin first, so the most specific zone wins.
        self.zones = sorted(zones, key=lambda z: len(z.origin or dns.name.root), reverse=True)

    def zone_for(self, name: dns.name.Name) -> dns.zone.Zone | None:
        for zone in self.zones:
            assert zone.origin is not None
            if name.is_subdomain(zone.origin):
                return zone
        return None

    async def handle(self, request: dns.message.Message, transport: str) -> dns.message.Message:
        return self.respond(request)

    def respond(self, request: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(request, our_payload=EDNS_PAYLOAD)
        reply.flags &= ~dns.flags.RA
        if request.edns > 0:
            # RFC 6891 §6.1.3: unknown version -> BADVERS, with our version (0) in the OPT record.
            reply.use_edns(0, 0, EDNS_PAYLOAD)
            reply.set_rcode(dns.rcode.BADVERS)
            return reply
        if request.opcode() != dns.opcode.QUERY:
            reply.set_rcode(dns.rcode.NOTIMP)
            return reply
        if len(request.question) != 1:
            reply.set_rcode(dns.rcode.FORMERR)
            return reply
        question = request.question[0]
        zone = self.zone_for(question.name)
        # zone transfers are refused at once, as NSD, Knot, BIND and PowerDNS do without an allow list:
        # an empty NOERROR would leave a client waiting for the rest of the transfer
        if zone is None or question.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            reply.set_rcode(dns.rcode.REFUSED)
            return reply
        self._answer(zone, question.name, question.rdtype, reply)
        return reply

    def _answer(
        self,
        zone: dns.zone.Zone,
        qname: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        reply: dns.message.Message,
    ) -> None:
        name = qname
        for _ in range(MAX_CNAME_CHAIN + 1):
            cut = _zone_cut(zone, name)
            if cut is not None and not (rdtype == dns.rdatatype.DS and cut == name):
                if name == qname:
                    _referral(zone, cut, reply)
                # Beyond the first name, a chain that leaves our authority ends with what we have.
                return
            reply.flags |= dns.flags.AA
            node = zone.get_node(name)
            if node is None and _has_descendants(zone, name):
                _negative(zone, reply, nxdomain=False)  # an empty non-terminal exists (RFC 8020 §2)
                return
            if node is None:
                node = _wildcard(zone, name)
            if node is None:
                _negative(zone, reply, nxdomain=True)
                return
            if rdtype == dns.rdatatype.ANY:
                for rdataset in node.rdatasets:
                    reply.answer.append(_rrset(name, rdataset))
                return
            found = node.get_rdataset(zone.rdclass, rdtype)
            if found is not None:
                reply.answer.append(_rrset(name, found))
                return
            cname = node.get_rdataset(zone.rdclass, dns.rdatatype.CNAME)
            if cname is None:
                _negative(zone, reply, nxdomain=False)
                return
            reply.answer.append(_rrset(name, cname))
            target: dns.name.Name = cname[0].target
            assert zone.origin is not None
            if not target.is_subdomain(zone.origin):
                return
            name = target


def _rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    rrset = dns.rrset.RRset(name, rdataset.rdclass, rdataset.rdtype, rdataset.covers)
    for rdata in rdataset:
        rrset.add(rdata, rdataset.ttl)
    return rrset


def _zone_cut(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name | None:
    """The highest delegation point strictly below the origin at or above ``name``."""
    assert zone.origin is not None
    labels = len(name) - len(zone.origin)
    for depth in range(1, labels + 1):
        candidate = name.split(len(zone.origin) + depth)[1]
        node = zone.get_node(candidate)
        if node is not None and node.get_rdataset(zone.rdclass, dns.rdatatype.NS) is not None:
            return candidate
    return None


def _referral(zone: dns.zone.Zone, cut: dns.name.Name, reply: dns.message.Message) -> None:
    node = zone.get_node(cut)
    assert node is not None
    ns = node.get_rdataset(zone.rdclass, dns.rdatatype.NS)
    assert ns is not None
    reply.authority.append(_rrset(cut, ns))
    ds = node.get_rdataset(zone.rdclass, dns.rdatatype.DS)
    if ds is not None:
        reply.authority.append(_rrset(cut, ds))
    for rdata in ns:
        target: dns.name.Name = rdata.target
        glue = zone.get_node(target)
        if glue is None:
            continue
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rdataset = glue.get_rdataset(zone.rdclass, rdtype)
            if rdataset is not None:
                reply.additional.append(_rrset(target, rdataset))


def _negative(zone: dns.zone.Zone, reply: dns.message.Message, *, nxdomain: bool) -> None:
    assert zone.origin is not None
    soa = zone.get_rdataset(zone.origin, dns.rdatatype.SOA)
    if soa is not None:
        rrset = _rrset(zone.origin, soa)
        first = soa[0]
        assert isinstance(first, dns.rdtypes.ANY.SOA.SOA)
        rrset.ttl = min(soa.ttl, first.minimum)  # RFC 2308 §3: the negative TTL
        reply.authority.append(rrset)
    if nxdomain:
        reply.set_rcode(dns.rcode.NXDOMAIN)


def _has_descendants(zone: dns.zone.Zone, name: dns.name.Name) -> bool:
    return any(other != name and other.is_subdomain(name) for other in zone.nodes)


def _wildcard(zone: dns.zone.Zone, name: dns.name.Name) -> dns.node.Node | None:
    """The wildcard node that synthesises ``name`` (RFC 4592), if any."""
    assert zone.origin is not None
    parent = name
    while parent != zone.origin and len(parent) > 1:
        parent = parent.parent()
        if zone.get_node(parent) is not None or _has_descendants(zone, parent):
            # The closest encloser: only its own wildcard may answer.
            return zone.get_node(dns.name.Name((b"*",) + parent.labels))
    return None
