"""Lab faults: the ways a lab DNS server misbehaves, one registered class per kind, its parameters as
typed fields and its hooks called by ``DnsServer`` for every matching fault alike. A new kind is one
class here (plus its test); the table of kinds in docs/lab.md is generated from the classes."""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import enum
import fnmatch
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset

from mxdoctor import _loader
from mxdoctor.errors import ScenarioError

RCODES = ("SERVFAIL", "NXDOMAIN", "REFUSED", "FORMERR", "NOTIMP", "NOERROR", "YXDOMAIN", "NOTAUTH")
TRANSPORTS = ("*", "udp", "tcp")
SELECTORS = ("kind", "name", "qtype", "transport")


class Action(enum.Enum):
    """What a server does instead of sending a reply."""

    SILENCE = "silence"  # send nothing
    CLOSE = "close"  # close the TCP connection without an answer (UDP: silence)


Outcome = dns.message.Message | Action


@dataclass
class Query:
    """One query as a fault sees it, with a way to ask the server's own handler about the same name."""

    request: dns.message.Message
    transport: str
    records: Callable[[dns.rdatatype.RdataType, bool], Awaitable[list[dns.rrset.RRset]]]

    @property
    def question(self) -> dns.rrset.RRset:
        return self.request.question[0]

    @property
    def has_edns(self) -> bool:
        return self.request.edns >= 0


class _Registered(type):
    """``Fault("drop", qtype="AAAA")`` builds the class of that kind, as scenario files name them."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Fault and args:
            (kind,) = args
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
            return KINDS[kind](**kwargs)
        return super().__call__(*args, **kwargs)


KINDS: dict[str, type[Fault]] = {}


@dataclass(frozen=True, kw_only=True)
class Fault(metaclass=_Registered):
    """One misbehaviour of one lab DNS server; subclasses are the kinds.

    ``name`` is an fnmatch pattern over the lower-case query name with its trailing dot; ``qtype``
    a type mnemonic or ``*``; ``transport`` ``udp``, ``tcp`` or ``*``. A subclass's own fields are
    its parameters; a field whose metadata says ``required`` must be given in a scenario file.
    """

    kind: ClassVar[str] = ""
    reproduces: ClassVar[str] = ""
    ignores_payload: ClassVar[bool] = False  # UDP answers whatever the requester's buffer size

    name: str = field(default="*", metadata={"doc": "fnmatch pattern over the query name"})
    qtype: str = "*"
    transport: Literal["*", "udp", "tcp"] = "*"

    def __init_subclass__(cls, kind: str = "", reproduces: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind:
            if kind in KINDS:
                raise TypeError(f"fault kind {kind!r} registered twice")
            cls.kind, cls.reproduces = kind, reproduces
            KINDS[kind] = cls

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _name_pattern(self.name))
        object.__setattr__(self, "qtype", _rdtype("qtype", self.qtype, star=True))

    # -- hooks ----------------------------------------------------------------------------------

    def on_tcp_connect(self) -> bool:
        """True to close every TCP connection on accept, before any query is read."""
        return False

    async def on_query(self, query: Query) -> Outcome | None:
        """Before the handler: a reply or an Action to use instead of the handler's, or None."""
        return None

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        """After the handler: the reply to send (changed or not), or raw bytes to send as they are."""
        return reply

    # -- selection and round trip -----------------------------------------------------------------

    def matches(self, qname: str, qtype: str, transport: str) -> bool:
        """Whether this fault applies to a query; ``qname`` is lower case with its trailing dot."""
        if self.transport != "*" and self.transport != transport:
            return False
        if self.qtype != "*" and self.qtype != qtype.upper():
            return False
        return fnmatch.fnmatchcase(qname, self.name)

    def to_toml(self) -> dict[str, Any]:
        """The table that declares this fault (required keys and those that differ from the defaults)."""
        out: dict[str, Any] = {"kind": self.kind}
        default = type(self)()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name) or f.metadata.get("required"):
                out[f.name] = value
        return out

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], source: str, key: str) -> Fault:
        """Build a fault from one TOML table; raise ScenarioError naming ``source`` and ``key``."""
        return parse(table, source, key)

    @classmethod
    def parameters(cls) -> tuple[dataclasses.Field[Any], ...]:
        """The fields of this kind beyond the selectors."""
        return tuple(f for f in dataclasses.fields(cls) if f.name not in SELECTORS)


def parse(table: Any, source: str, key: str) -> Fault:
    """One fault from its TOML table, typed by the class of its ``kind``."""
    if not isinstance(table, Mapping):
        raise ScenarioError(source, key, "a fault must be a table with at least `kind`")
    kind = table.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        # the first few kinds and the count: the whole list no longer fits one line of an error
        known = ", ".join(list(KINDS)[:6]) + f", ... ({len(KINDS)} kinds, the table in docs/lab.md)"
        near = difflib.get_close_matches(kind, list(KINDS), n=1) if isinstance(kind, str) else []
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise ScenarioError(source, f"{key}.kind", f"expected one of {known}; got {_loader.shown(kind)}{hint}")
    cls = KINDS[kind]
    allowed = {f.name for f in dataclasses.fields(cls)} | {"kind"}
    for name in table:
        if name not in allowed:
            problem = f"unknown fault key for kind {kind} (allowed: {', '.join(sorted(allowed))})"
            raise ScenarioError(source, f"{key}.{_loader.shown_key(name)}", problem)
    for f in cls.parameters():
        if f.metadata.get("required") and f.name not in table:
            raise ScenarioError(source, f"{key}.{f.name}", f"missing: a fault of kind {kind} needs `{f.name}`")
    args = {k: v for k, v in table.items() if k != "kind"}
    return _loader.convert(args, cls, source=source, error=ScenarioError, path=key)


def parse_list(value: Any, source: str, key: str) -> tuple[Fault, ...]:
    """Parse the ``faults`` array of a server."""
    if not isinstance(value, list):
        raise ScenarioError(source, key, "must be an array of tables ([[...faults]])")
    return tuple(parse(item, source, f"{key}[{i}]") for i, item in enumerate(value))


def matching(faults: Iterable[Fault], qname: str, qtype: str, transport: str) -> list[Fault]:
    return [f for f in faults if f.matches(qname, qtype, transport)]


# ---------------------------------------------------------------------------------------------
# The kinds. The docstring's first paragraph is what the client sees (the docs table says so).


@dataclass(frozen=True, kw_only=True)
class Rcode(
    Fault, kind="rcode", reproduces="RFC 4074 §4.2 (NXDOMAIN for AAAA), §4.3 (SERVFAIL, REFUSED, NOTIMP, FORMERR)"
):
    """that RCODE and no records; an NXDOMAIN carries the zone's SOA, so resolvers cache it for the
    whole name"""

    rcode: str = field(default="SERVFAIL", metadata={"required": True, "doc": ", ".join(RCODES)})
    aa: bool | None = field(default=None, metadata={"doc": "default: true for NXDOMAIN only"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.rcode, str) or self.rcode.upper() not in RCODES:
            raise _loader.field_error("rcode", f"expected one of {', '.join(RCODES)}; got {_loader.shown(self.rcode)}")
        object.__setattr__(self, "rcode", self.rcode.upper())

    @property
    def rcode_value(self) -> dns.rcode.Rcode:
        return dns.rcode.from_text(self.rcode)

    @property
    def sets_aa(self) -> bool:
        return self.aa if self.aa is not None else self.rcode == "NXDOMAIN"

    async def on_query(self, query: Query) -> Outcome | None:
        reply = dns.message.make_response(query.request)
        reply.set_rcode(self.rcode_value)
        if self.sets_aa:
            reply.flags |= dns.flags.AA
        if self.rcode == "NXDOMAIN":
            # A name error carries the zone's SOA, as the real broken servers of RFC 4074 §4.2 send
            # it; without one, resolvers would not cache the denial and the fault would lose its bite.
            reply.authority = await query.records(dns.rdatatype.SOA, True)
        return reply


@dataclass(frozen=True, kw_only=True)
class Drop(Fault, kind="drop", reproduces="RFC 4074 §4.1 (ignore AAAA queries)"):
    """no answer at all: the client times out"""

    async def on_query(self, query: Query) -> Outcome | None:
        return Action.SILENCE


@dataclass(frozen=True, kw_only=True)
class Delay(Fault, kind="delay", reproduces="slow servers, resolver time-outs"):
    """the answer (with any other fault) after that many seconds"""

    seconds: float = field(default=0.0, metadata={"required": True, "doc": "0–60"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not math.isfinite(self.seconds) or not 0 <= self.seconds <= 60:
            raise _loader.field_error("seconds", f"must be a number from 0 to 60; got {_loader.shown(self.seconds)}")

    async def on_query(self, query: Query) -> Outcome | None:
        await asyncio.sleep(self.seconds)
        return None


@dataclass(frozen=True, kw_only=True)
class BrokenAaaa(Fault, kind="broken-aaaa", reproduces="RFC 4074 §4.4 (broken response)"):
    """AAAA answered with 4-byte rdata (the name's A address, or the first 4 bytes of its AAAA): the
    reply does not parse"""

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        # RFC 4074 §4.4: the server returns the 4-byte A data as if it were AAAA data.
        question = query.question
        if question.rdtype != dns.rdatatype.AAAA:
            return reply
        four: list[bytes] = []
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.AAAA:
                four.extend(rd.to_digestable()[:4] for rd in rrset)
        ttl = 300
        if not four:
            for rrset in await query.records(dns.rdatatype.A, False):
                four.extend(rd.to_digestable() for rd in rrset)
                ttl = rrset.ttl
        if not four:
            return reply
        broken = dns.rrset.RRset(question.name, question.rdclass, dns.rdatatype.AAAA)
        for data in four:
            broken.add(dns.rdata.GenericRdata(question.rdclass, dns.rdatatype.AAAA, data), ttl)
        reply.answer = [broken]
        reply.authority = []
        reply.set_rcode(dns.rcode.NOERROR)
        return reply


@dataclass(frozen=True, kw_only=True)
class WrongType(Fault, kind="wrong-type", reproduces="RFC 4074 §4.4"):
    """the answer section holds records of `rtype` for the asked name (e.g. an A record for an AAAA
    question)"""

    rtype: str = field(default="A", metadata={"doc": "a record type"})

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "rtype", _rdtype("rtype", self.rtype, star=False))

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        rdtype = dns.rdatatype.from_text(self.rtype)
        if rdtype == query.question.rdtype:
            return reply
        others = await query.records(rdtype, False)
        if others:
            reply.answer = others
            reply.authority = []
            reply.set_rcode(dns.rcode.NOERROR)
        return reply


@dataclass(frozen=True, kw_only=True)
class NoAa(Fault, kind="no-aa", reproduces="RFC 4074 §4.5 (lame delegation)"):
    """the answer without the AA bit: a lame answer"""

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        reply.flags &= ~dns.flags.AA
        return reply


@dataclass(frozen=True, kw_only=True)
class Truncate(Fault, kind="truncate", reproduces="oversized answers"):
    """over UDP: TC set and no records, so the client must retry over TCP (TCP is spared unless
    `transport = "tcp"`)"""

    def matches(self, qname: str, qtype: str, transport: str) -> bool:
        if self.transport == "*" and transport != "udp":
            return False
        return super().matches(qname, qtype, transport)

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        reply.answer, reply.authority, reply.additional = [], [], []
        reply.flags |= dns.flags.TC
        return reply


@dataclass(frozen=True, kw_only=True)
class TcpRefuse(Fault, kind="tcp-refuse", reproduces="firewalls that pass only UDP 53"):
    """TCP connections closed at once without an answer (with `name = "*"` and `qtype = "*"`: reset
    on accept; otherwise after the query is read)"""

    def on_tcp_connect(self) -> bool:
        return self.name == "*" and self.qtype == "*" and self.transport in ("*", "tcp")

    async def on_query(self, query: Query) -> Outcome | None:
        return Action.CLOSE if query.transport == "tcp" else None


@dataclass(frozen=True, kw_only=True)
class EdnsFormerr(Fault, kind="edns-formerr", reproduces="pre-EDNS servers (RFC 6891 §7)"):
    """FORMERR without an OPT record to any query that carries EDNS; plain queries are answered"""

    async def on_query(self, query: Query) -> Outcome | None:
        if not query.has_edns:
            return None
        # A server that does not know EDNS answers FORMERR without an OPT record (RFC 6891 §7).
        reply = dns.message.make_response(query.request)
        reply.use_edns(False)
        reply.set_rcode(dns.rcode.FORMERR)
        reply.question = []
        return reply


@dataclass(frozen=True, kw_only=True)
class EdnsDrop(Fault, kind="edns-drop", reproduces="middleboxes that drop EDNS"):
    """silence for queries that carry EDNS; plain queries are answered"""

    async def on_query(self, query: Query) -> Outcome | None:
        return Action.SILENCE if query.has_edns else None


@dataclass(frozen=True, kw_only=True)
class Garbage(Fault, kind="garbage", reproduces="broken middleboxes"):
    """that many random bytes that do not parse as DNS"""

    size: int = field(default=48, metadata={"doc": "1–4096"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.size <= 4096:
            raise _loader.field_error("size", f"must be an integer from 1 to 4096; got {_loader.shown(self.size)}")

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        data = bytearray(os.urandom(self.size))
        # Claim far more records than the bytes hold, so no parser can take it for a message.
        if self.size >= 12:
            data[4:12] = b"\xff\xff\xff\xff\xff\xff\xff\xff"
        return bytes(data)


@dataclass(frozen=True, kw_only=True)
class WrongId(Fault, kind="wrong-id", reproduces="spoofing-like replies"):
    """the right answer under another message ID"""

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        reply.id = (query.request.id + 0x5A5A) & 0xFFFF
        return reply


@dataclass(frozen=True, kw_only=True)
class WrongQuestion(Fault, kind="wrong-question", reproduces="broken forwarders"):
    """the answer with another name in the question section"""

    qname: str = field(default="wrong-question.invalid.", metadata={"doc": "a domain name"})

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            object.__setattr__(self, "qname", dns.name.from_text(self.qname).to_text().lower())
        except Exception as exc:
            raise _loader.field_error("qname", f"not a domain name: {exc.__class__.__name__}") from None

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        question = query.question
        reply.question = [dns.rrset.RRset(dns.name.from_text(self.qname), question.rdclass, question.rdtype)]
        return reply


# Misbehaviours the audit probes look for (docs/audit.md).


@dataclass(frozen=True, kw_only=True)
class EdnsVersionIgnore(Fault, kind="edns-version-ignore", reproduces="RFC 6891 §6.1.3 (audit probe `edns1`)"):
    """queries of any EDNS version answered as version 0 (no BADVERS)"""

    async def on_query(self, query: Query) -> Outcome | None:
        request = query.request
        if request.edns > 0:
            request.use_edns(0, request.ednsflags, request.payload, options=list(request.options))
        return None


@dataclass(frozen=True, kw_only=True)
class EdnsOptionFormerr(Fault, kind="edns-option-formerr", reproduces="RFC 6891 §6.1.2 (audit probe `ednsopt`)"):
    """FORMERR to any query that carries an EDNS option"""

    async def on_query(self, query: Query) -> Outcome | None:
        return _formerr(query.request) if query.has_edns and query.request.options else None


@dataclass(frozen=True, kw_only=True)
class EdnsFlagsFormerr(Fault, kind="edns-flags-formerr", reproduces="RFC 6891 §6.1.4 (audit probe `ednsflags`)"):
    """FORMERR to queries with an undefined EDNS flag set"""

    async def on_query(self, query: Query) -> Outcome | None:
        undefined = query.request.ednsflags & ~dns.flags.DO & 0xFFFF
        return _formerr(query.request) if query.has_edns and undefined else None


@dataclass(frozen=True, kw_only=True)
class OpcodeDrop(Fault, kind="opcode-drop", reproduces="RFC 1035 §4.1.1 (audit probe `opcode`)"):
    """no answer to queries whose opcode is not QUERY"""

    async def on_query(self, query: Query) -> Outcome | None:
        return Action.SILENCE if query.request.opcode() != dns.opcode.QUERY else None


@dataclass(frozen=True, kw_only=True)
class ZflagFormerr(Fault, kind="zflag-formerr", reproduces="RFC 1035 §4.1.1 (audit probe `zflag`)"):
    """FORMERR to queries with the header's Z bit set"""

    async def on_query(self, query: Query) -> Outcome | None:
        return _formerr(query.request) if query.request.flags & 0x0040 else None


@dataclass(frozen=True, kw_only=True)
class IgnorePayload(Fault, kind="ignore-payload", reproduces="RFC 6891 §7 (audit probe `do512`)"):
    """over UDP the whole answer whatever the EDNS buffer size: never TC"""

    ignores_payload: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class QnameLowercase(Fault, kind="qname-lowercase", reproduces="RFC 4343 §3, DNS 0x20 (audit probe `case`)"):
    """the question section of the reply in lower case"""

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        question = query.question
        lower = dns.name.from_text(question.name.to_text().lower())
        reply.question = [dns.rrset.RRset(lower, question.rdclass, question.rdtype)]
        return reply


@dataclass(frozen=True, kw_only=True)
class NoSoa(Fault, kind="no-soa", reproduces="RFC 2308 §2.1 (audit probe `nxdomain`)"):
    """negative answers (NXDOMAIN, no data) without the SOA"""

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        if reply.rcode() == dns.rcode.NXDOMAIN or not reply.answer:
            reply.authority = [rrset for rrset in reply.authority if rrset.rdtype != dns.rdatatype.SOA]
        return reply


@dataclass(frozen=True, kw_only=True)
class StaleSerial(Fault, kind="stale-serial", reproduces="a secondary that missed an update (audit `soa`)"):
    """SOA records served with the serial one lower"""

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        reply.answer = [_older_serial(rrset) for rrset in reply.answer]
        reply.authority = [_older_serial(rrset) for rrset in reply.authority]
        return reply



@dataclass(frozen=True, kw_only=True)
class LbNxdomain(Fault, kind="lb-nxdomain", reproduces="RFC 4074 §4.2, as load balancers and dnsdist send it"):
    """NXDOMAIN without AA and without SOA: the synthesised answer of a load balancer in front of the
    zone's servers (dnsdist's RCodeAction), which Knot Resolver turns into SERVFAIL"""

    async def on_query(self, query: Query) -> Outcome | None:
        reply = dns.message.make_response(query.request)
        reply.set_rcode(dns.rcode.NXDOMAIN)
        return reply


# DNSSEC misbehaviours of one server of a signed zone (audit's DNSSEC probes, docs/audit.md).


@dataclass(frozen=True, kw_only=True)
class StaleRrsig(Fault, kind="stale-rrsig", reproduces="a stale secondary (RFC 4035 §5.3.1)"):
    """every RRSIG in the reply with a validity period that ended 3 days ago, as a secondary that
    stopped receiving the zone serves it weeks later (rewritten, so the signature no longer verifies
    either; validators judge the time first: EDE 7)"""

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        now = int(time.time())
        inception, expiration = now - 40 * 86400, now - 3 * 86400
        for section in (reply.answer, reply.authority):
            for i, rrset in enumerate(section):
                if rrset.rdtype == dns.rdatatype.RRSIG:
                    stale = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype, rrset.covers)
                    for sig in rrset:
                        stale.add(sig.replace(inception=inception, expiration=expiration), rrset.ttl)
                    section[i] = stale
        return reply


@dataclass(frozen=True, kw_only=True)
class RrsigStrip(Fault, kind="rrsig-strip", reproduces="boxes that drop DNSSEC records (RFC 4035 §3.1)"):
    """every RRSIG removed from the reply, whatever the DO bit asked"""

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        reply.answer = [r for r in reply.answer if r.rdtype != dns.rdatatype.RRSIG]
        reply.authority = [r for r in reply.authority if r.rdtype != dns.rdatatype.RRSIG]
        return reply


@dataclass(frozen=True, kw_only=True)
class RrsigGarbage(Fault, kind="rrsig-garbage", reproduces="broken signers and middleboxes (RFC 4034 §3.1)"):
    """every RRSIG in the reply replaced by 3 bytes of rdata, which no RRSIG parser accepts: the
    reply to a DO query does not parse"""

    async def on_response(self, query: Query, reply: dns.message.Message) -> dns.message.Message | bytes:
        for section in (reply.answer, reply.authority):
            for i, rrset in enumerate(section):
                if rrset.rdtype == dns.rdatatype.RRSIG:
                    bad = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)  # unparsed: no type covered
                    bad.add(dns.rdata.GenericRdata(rrset.rdclass, dns.rdatatype.RRSIG, b"\x00\x01\x02"), rrset.ttl)
                    section[i] = bad
        return reply


@dataclass(frozen=True, kw_only=True)
class DoFormerr(Fault, kind="do-formerr", reproduces="middleboxes that reject the DO bit (RFC 3225 §3)"):
    """FORMERR to queries with the DO bit; the same queries without DO are answered"""

    async def on_query(self, query: Query) -> Outcome | None:
        return _formerr(query.request) if query.has_edns and query.request.ednsflags & dns.flags.DO else None


@dataclass(frozen=True, kw_only=True)
class RrsigUnasked(Fault, kind="rrsig-unasked", reproduces="servers that ignore a clear DO bit (RFC 3225 §3)"):
    """RRSIGs (and denial records) in the replies to EDNS queries without the DO bit, as if DO were set"""

    async def on_query(self, query: Query) -> Outcome | None:
        request = query.request
        if query.has_edns:
            request.use_edns(request.edns, request.ednsflags | dns.flags.DO, request.payload,
                             options=list(request.options))
        return None


# ---------------------------------------------------------------------------------------------
# Helpers


def _formerr(request: dns.message.Message) -> dns.message.Message:
    reply = dns.message.make_response(request)
    reply.set_rcode(dns.rcode.FORMERR)
    return reply


def _older_serial(rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    if rrset.rdtype != dns.rdatatype.SOA:
        return rrset
    older = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
    for rdata in rrset:
        older.add(rdata.replace(serial=(rdata.serial - 1) % 2**32), rrset.ttl)
    return older


def _name_pattern(value: str) -> str:
    if not value:
        raise _loader.field_error("name", 'must be a non-empty name pattern, e.g. "mx.example.com." or "*"')
    pattern = value.lower()
    if pattern != "*" and not pattern.endswith("."):
        pattern += "."
    return pattern


def _rdtype(key: str, value: str, *, star: bool) -> str:
    if star and value == "*":
        return value
    try:
        return dns.rdatatype.to_text(dns.rdatatype.from_text(value.upper()))
    except Exception:
        raise _loader.field_error(key, f"unknown record type {_loader.shown(value)}") from None


# ---------------------------------------------------------------------------------------------
# The docs table

DOC_BEGIN = "<!-- fault kinds: generated from mxdoctor/lab/faults.py by `make docs`; do not edit -->"
DOC_END = "<!-- end of fault kinds -->"


def _parameter_doc(f: dataclasses.Field[Any]) -> str:
    doc = f.metadata.get("doc", "")
    if f.metadata.get("required"):
        return f"`{f.name}` (required): {doc}" if doc else f"`{f.name}` (required)"
    default = f.default
    if f.metadata.get("doc", "").startswith("default"):
        return f"`{f.name}` ({doc})"
    shown = f"`{default}`" if isinstance(default, str) else f"{default}"
    return f"`{f.name}` (default {shown}" + (f", {doc})" if doc else ")")


def markdown_table() -> str:
    """The table of fault kinds for docs/lab.md: kind, parameters, what the client sees, what it reproduces."""
    lines = [
        "| kind | parameters | what the client sees | reproduces |",
        "|------|------------|----------------------|------------|",
    ]
    for kind, cls in KINDS.items():
        params = "; ".join(_parameter_doc(f) for f in cls.parameters()) or "—"
        sees = " ".join((cls.__doc__ or "").split("\n\n")[0].split())
        lines.append(f"| `{kind}` | {params} | {sees} | {cls.reproduces} |")
    return "\n".join(lines) + "\n"


def rewrite_doc(text: str) -> str:
    """``text`` with the block between the markers replaced by the current table of kinds."""
    start, end = text.index(DOC_BEGIN), text.index(DOC_END)
    return text[: start + len(DOC_BEGIN)] + "\n" + markdown_table() + text[end:]


if __name__ == "__main__":  # python -m mxdoctor.lab.faults docs/lab.md
    doc = Path(sys.argv[1])
    doc.write_text(rewrite_doc(doc.read_text(encoding="utf-8")), encoding="utf-8")
