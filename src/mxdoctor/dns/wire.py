"""The DNS message codec of the exchange path: build a query, decode a reply, describe bad bytes.

Every message crosses these few functions, so a leaner codec can later take the common path while
dnspython keeps parsing anything unusual.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.wire

from mxdoctor.evidence import Transport

EDNS_PAYLOAD = 1232  # the DNS flag day 2020 size: fits any path MTU without fragments

# rdata sizes fixed by their RFC, the ones RFC 4074 §4.4 saw broken in the wild
_FIXED_RDATA = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 16}


@dataclass(frozen=True)
class Undecodable:
    """Bytes that did not parse as a whole; ``id`` and the question when at least those did."""

    detail: str
    id: int | None = None
    qname: str | None = None
    qtype: str | None = None
    truncated: bool = False  # TC was set: a stub goes to TCP whatever the rest says


def encode_query(
    ident: int, qname: str, qtype: str, *, rd: bool, edns: int | None, do: bool = False, ad: bool = False
) -> bytes:
    msg = dns.message.make_query(
        qname,
        qtype,
        use_edns=edns if edns is not None else False,
        payload=EDNS_PAYLOAD,
        want_dnssec=do,
        id=ident,
    )
    if not rd:
        msg.flags &= ~dns.flags.RD
    if ad:
        msg.flags |= dns.flags.AD  # RFC 6840 §5.7: asks a resolver to say whether it validated
    wire: bytes = msg.to_wire()
    return wire


def peek_id(wire: bytes) -> int | None:
    return int.from_bytes(wire[:2], "big") if len(wire) >= 2 else None


def first_records(wire: bytes, keep: int) -> bytes | None:
    """The message cut after its first ``keep`` records, header counts fixed, or None when it holds
    no more than that (or its record headers do not parse: the full parse then says why).

    Compression pointers only point backwards, so the cut message stays valid; parsing a 64 KB reply
    of 4,000 records whole costs over 0.1 s and megabytes, which a hostile server must not get."""
    if len(wire) < 12:
        return None
    qdcount, ancount, nscount, arcount = struct.unpack("!HHHH", wire[4:12])
    if ancount + nscount + arcount <= keep:
        return None
    counts = [0, 0, 0]
    try:
        parser = dns.wire.Parser(wire)
        parser.seek(12)
        for _ in range(qdcount):
            _name(parser)
            parser.get_struct("!HH")
        for i in range(keep):
            _name(parser)
            _, _, _, rdlen = parser.get_struct("!HHIH")
            parser.get_bytes(rdlen)
            counts[0 if i < ancount else 1 if i < ancount + nscount else 2] += 1
        end = parser.current
    except (dns.exception.DNSException, ValueError, IndexError):
        return None
    return wire[:4] + struct.pack("!HHHH", qdcount, *counts) + wire[12:end]


def decode(wire: bytes, max_records: int | None = None) -> dns.message.Message | Undecodable:
    """Parse a reply; never raises: bytes that fail come back as ``Undecodable`` with the reason.

    With ``max_records``, only the first records are parsed (``first_records``)."""
    if max_records is not None:
        wire = first_records(wire, max_records) or wire
    try:
        return dns.message.from_wire(wire, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError) as exc:
        full_error = str(exc) or type(exc).__name__
    try:
        head = dns.message.from_wire(wire, question_only=True, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
        return Undecodable(f"{len(wire)} bytes that do not parse as DNS ({full_error})", peek_id(wire))
    qname = qtype = None
    if head.question:
        qname = head.question[0].name.to_text().lower()
        qtype = dns.rdatatype.to_text(head.question[0].rdtype)
    truncated = bool(head.flags & dns.flags.TC)
    return Undecodable(_bad_rdata(wire) or full_error, head.id, qname, qtype, truncated)


def _name(parser: dns.wire.Parser) -> dns.name.Name:
    try:
        return parser.get_name(decompress=True)
    except TypeError:  # dnspython before 2.8 always decompressed and took no such argument
        return parser.get_name()


def _bad_rdata(wire: bytes) -> str | None:
    """Name the first record whose rdata has the wrong size for its type, walking only RR headers."""
    try:
        parser = dns.wire.Parser(wire)
        _, _, qdcount, ancount, nscount, arcount = parser.get_struct("!HHHHHH")
        for _ in range(qdcount):
            _name(parser)
            parser.get_struct("!HH")
        for _ in range(ancount + nscount + arcount):
            owner = _name(parser)
            rdtype, rdclass, _, rdlen = parser.get_struct("!HHIH")
            parser.get_bytes(rdlen)
            size = _FIXED_RDATA.get(dns.rdatatype.RdataType.make(rdtype))
            if rdclass == dns.rdataclass.IN and size is not None and rdlen != size:
                name = dns.rdatatype.to_text(rdtype)
                return f"{name} rdata of {rdlen} bytes at {owner.to_text().lower()} (must be {size})"
    except (dns.exception.DNSException, ValueError, IndexError):
        return None
    return None


def question_of(msg: dns.message.Message) -> tuple[str, str] | None:
    if not msg.question:
        return None
    q = msg.question[0]
    return q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)


# error replies may drop the question section (RFC 1035 leaves it open; old servers do): dnspython's
# is_response accepts them by ID alone, and so do we
_BARE_ERRORS = {dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NOTIMP, dns.rcode.REFUSED}


def matches(msg: dns.message.Message, qname: str, qtype: str) -> bool:
    """Whether a reply (whose ID matched) is for this question."""
    question = question_of(msg)
    if question is None:
        return msg.rcode() in _BARE_ERRORS
    return question == (qname, qtype)


def rcode_text(msg: dns.message.Message) -> str:
    return dns.rcode.to_text(msg.rcode())


def flags_text(msg: dns.message.Message) -> tuple[str, ...]:
    return tuple(dns.flags.to_text(msg.flags).split())


def ede_of(msg: dns.message.Message) -> tuple[tuple[int, str], ...]:
    """The Extended DNS Errors (RFC 8914) of a reply: (INFO-CODE, EXTRA-TEXT)."""
    import dns.edns

    return tuple((int(o.code), o.text or "") for o in msg.options if isinstance(o, dns.edns.EDEOption))


def section_text(section: list[dns.rrset.RRset], limit: int | None = None) -> tuple[str, ...]:
    """The section in master-file text, one RR a line, at most ``limit`` lines (the first ones)."""
    lines: list[str] = []
    for rrset in section:
        if limit is not None:
            if len(lines) >= limit:
                break
            rrset = cut(rrset, limit - len(lines))
        lines.extend(rrset.to_text().splitlines())
    return tuple(lines)


def cut(rrset: dns.rrset.RRset, keep: int) -> dns.rrset.RRset:
    """The rrset itself when it holds at most ``keep`` records, else a copy of its first ``keep``."""
    if len(rrset) <= keep:
        return rrset
    out = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
    for i, rd in enumerate(rrset):
        if i >= keep:
            break
        out.add(rd, rrset.ttl)
    return out


Z_FLAG = 0x0040  # the header's Z bit (RFC 1035 §4.1.1: must be zero); dnspython has no name for it


@dataclass(frozen=True)
class QueryShape:
    """One query as a probe wants it on the wire, sent as given: no EDNS fallback and no TCP on
    truncation, only one resend of the same query on UDP silence (a lost datagram is no fault)."""

    transport: Transport = Transport.UDP
    rd: bool = False
    edns: int | None = 0  # EDNS version, None for no OPT record
    payload: int = EDNS_PAYLOAD
    do: bool = False
    ednsflags: int = 0  # EDNS flag bits besides DO
    options: tuple[tuple[int, bytes], ...] = ()  # EDNS options as (code, data)
    opcode: int = 0
    z: bool = False  # the header's reserved Z bit
    udp_attempts: int = 2

    def encode(self, ident: int, qname: str, qtype: str) -> bytes:
        """The query's bytes; ``qname`` keeps its letter case."""
        msg = dns.message.make_query(
            dns.name.from_text(qname),
            dns.rdatatype.RdataType.make(qtype),
            use_edns=self.edns if self.edns is not None else False,
            payload=self.payload,
            want_dnssec=self.do,
            ednsflags=self.ednsflags,
            options=[dns.edns.GenericOption(dns.edns.OptionType.make(c), d) for c, d in self.options] or None,
            id=ident,
        )
        if not self.rd:
            msg.flags &= ~dns.flags.RD
        if self.z:
            msg.flags |= Z_FLAG
        if self.opcode:
            msg.set_opcode(dns.opcode.Opcode.make(self.opcode))
        data: bytes = msg.to_wire()
        return data
