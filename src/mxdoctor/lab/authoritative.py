"""The lab's authoritative answer logic: zones in, RFC-conformant answers out.

AA on authoritative data, referrals with glue at zone cuts, NXDOMAIN and NODATA with the SOA
(RFC 2308), CNAME chains inside the zone, empty non-terminals (RFC 8020), REFUSED elsewhere; with DO
from signed zones the RRSIGs, NSEC/NSEC3 denial and DS (or its denial) in referrals (RFC 4035 §3.1).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import dns.dnssec
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
        if request.ednsflags & dns.flags.DO:
            reply.use_edns(0, dns.flags.DO, EDNS_PAYLOAD)
            if _signed(zone):
                _add_dnssec(zone, question.name, question.rdtype, reply)
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


# ---------------------------------------------------------------------------------------------
# DNSSEC records for DO queries (RFC 4035 §3.1): added after the answer is built, from what the
# signed zone holds, so a zone whose signer left something out serves exactly that gap.


def _signed(zone: dns.zone.Zone) -> bool:
    assert zone.origin is not None
    return zone.get_rdataset(zone.origin, dns.rdatatype.DNSKEY) is not None


def _sigs(zone: dns.zone.Zone, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.rrset.RRset | None:
    node = zone.get_node(name)
    if node is None:
        return None
    rds = node.get_rdataset(zone.rdclass, dns.rdatatype.RRSIG, rdtype)
    return _rrset(name, rds) if rds is not None else None


def _with_sigs(
    zone: dns.zone.Zone, section: list[dns.rrset.RRset], name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> None:
    node = zone.get_node(name)
    rds = node.get_rdataset(zone.rdclass, rdtype) if node is not None else None
    if rds is None:
        return
    if not any(r.name == name and r.rdtype == rdtype for r in section):
        section.append(_rrset(name, rds))
    sigs = _sigs(zone, name, rdtype)
    if sigs is not None and not any(r.name == name and r.rdtype == dns.rdatatype.RRSIG and r.covers == rdtype
                                    for r in section):
        section.append(sigs)


def _add_dnssec(
    zone: dns.zone.Zone, qname: dns.name.Name, qtype: dns.rdatatype.RdataType, reply: dns.message.Message
) -> None:
    assert zone.origin is not None
    for rrset in list(reply.answer):
        if rrset.rdtype != dns.rdatatype.RRSIG:
            sigs = _sigs(zone, rrset.name, rrset.rdtype)
            if sigs is not None:
                reply.answer.append(sigs)
    referral = not reply.flags & dns.flags.AA
    if referral:
        for rrset in list(reply.authority):
            if rrset.rdtype == dns.rdatatype.NS:
                if zone.get_rdataset(rrset.name, dns.rdatatype.DS) is not None:
                    _with_sigs(zone, reply.authority, rrset.name, dns.rdatatype.DS)
                else:
                    _denial_of(zone, rrset.name, reply.authority)  # no DS: the child is insecure
        return
    if reply.answer and reply.answer[-1].rdtype != dns.rdatatype.CNAME:
        return
    # A negative answer (possibly at the end of a CNAME chain): the SOA's RRSIG and the proof.
    last = qname
    for rrset in reply.answer:
        if rrset.rdtype == dns.rdatatype.CNAME:
            last = rrset[0].target
    if not last.is_subdomain(zone.origin):
        return
    _with_sigs(zone, reply.authority, zone.origin, dns.rdatatype.SOA)
    # RFC 4035 §2.2: an RRSIG's TTL is the TTL of the RRset it covers, so the SOA's RRSIG takes the
    # negative TTL the SOA carries here (RFC 2308 §3), as BIND and NSD serve it.
    soa = next((r for r in reply.authority if r.rdtype == dns.rdatatype.SOA), None)
    for rrset in reply.authority:
        if soa is not None and rrset.rdtype == dns.rdatatype.RRSIG and rrset.covers == dns.rdatatype.SOA:
            rrset.ttl = soa.ttl
    if reply.rcode() == dns.rcode.NXDOMAIN:
        _nxdomain_proof(zone, last, reply.authority)
    else:
        _denial_of(zone, last, reply.authority)


def _nsec3_param(zone: dns.zone.Zone) -> Any:
    assert zone.origin is not None
    rds = zone.get_rdataset(zone.origin, dns.rdatatype.NSEC3PARAM)
    return rds[0] if rds else None


def _nsec3_owner(zone: dns.zone.Zone, name: dns.name.Name, param: Any) -> dns.name.Name:
    assert zone.origin is not None
    digest = dns.dnssec.nsec3_hash(name, param.salt or None, param.iterations, param.algorithm)
    return dns.name.from_text(digest.lower(), zone.origin)


def _denial_of(zone: dns.zone.Zone, name: dns.name.Name, section: list[dns.rrset.RRset]) -> None:
    """The NSEC at ``name`` (or the NSEC3 at its hash) proving which types it has; for a name with no
    record of its own (an empty non-terminal) the NSEC that covers it."""
    param = _nsec3_param(zone)
    if param is not None:
        _with_sigs(zone, section, _nsec3_owner(zone, name, param), dns.rdatatype.NSEC3)
        return
    if zone.get_rdataset(name, dns.rdatatype.NSEC) is not None:
        _with_sigs(zone, section, name, dns.rdatatype.NSEC)
        return
    owner = _covering_nsec(zone, name)
    if owner is not None:
        _with_sigs(zone, section, owner, dns.rdatatype.NSEC)


def _covering_nsec(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name | None:
    owners = sorted(n for n, node in zone.nodes.items() if node.get_rdataset(zone.rdclass, dns.rdatatype.NSEC))
    if not owners:
        return None
    i = bisect.bisect_right(owners, name) - 1
    return owners[i]  # i == -1: the last NSEC, which wraps around to the apex


def _covering_nsec3(zone: dns.zone.Zone, name: dns.name.Name, param: Any) -> dns.name.Name | None:
    owners = sorted((n.labels[0].lower(), n) for n, node in zone.nodes.items()
                    if node.get_rdataset(zone.rdclass, dns.rdatatype.NSEC3))
    if not owners:
        return None
    digest = _nsec3_owner(zone, name, param).labels[0]
    i = bisect.bisect_left([h for h, _ in owners], digest) - 1
    return owners[i][1]


def _closest_encloser(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name:
    assert zone.origin is not None
    parent = name
    while parent != zone.origin:
        parent = parent.parent()
        if zone.get_node(parent) is not None or _has_descendants(zone, parent):
            return parent
    return zone.origin


def _nxdomain_proof(zone: dns.zone.Zone, name: dns.name.Name, section: list[dns.rrset.RRset]) -> None:
    """RFC 4035 §3.1.3.2 / RFC 5155 §7.2.2: the name does not exist, and no wildcard could have made it."""
    encloser = _closest_encloser(zone, name)
    wildcard = dns.name.Name((b"*",) + encloser.labels)
    param = _nsec3_param(zone)
    if param is None:
        for target in (name, wildcard):
            owner = _covering_nsec(zone, target)
            if owner is not None:
                _with_sigs(zone, section, owner, dns.rdatatype.NSEC)
        return
    next_closer = name.split(len(encloser) + 1)[1]
    _with_sigs(zone, section, _nsec3_owner(zone, encloser, param), dns.rdatatype.NSEC3)
    for target in (next_closer, wildcard):
        owner = _covering_nsec3(zone, target, param)
        if owner is not None:
            _with_sigs(zone, section, owner, dns.rdatatype.NSEC3)
