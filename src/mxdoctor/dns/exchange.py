"""One question to one server on the wire: its attempts (UDP, TCP on truncation, EDNS fallbacks), the
classification of what came back, per-server concurrency and the per-run cache. Every attempt becomes
one ``evidence.Exchange``; nothing here raises for a network fault. A ``QueryShape`` sends one query
exactly as given (EDNS version, options, flags, opcode, Z bit, transport): the audit's probes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from mxdoctor import evidence
from mxdoctor.dns import wire
from mxdoctor.dns.wire import Z_FLAG, QueryShape  # noqa: F401 - the engine's callers name them here
from mxdoctor.evidence import Outcome, Transport

MAX_ATTEMPTS = 4
DIAGNOSTIC_WITHOUT_EDNS = "DiagnosticWithoutEdns"  # the workaround name of the plain-DNS diagnostic query
MAX_CNAME_CHAIN = evidence.CNAME_CHAIN_LIMIT
MAX_RETIRED = 1024  # a quarter of the ID space at most stays unusable
MAX_STRAYS = 8  # stray datagrams remembered per query: enough to explain, bounded against floods


@dataclass(frozen=True)
class Limits:
    """Per-run bounds on what a probe sends and keeps, so that a hostile or huge zone costs bounded
    time and memory. Each bound that refuses something is recorded (``Recorder.reach``) and becomes
    a finding: the diagnosis says it is partial rather than running on."""

    exchanges: int = 2000  # attempts recorded per run; questions past it are not sent
    parsed: int = 512  # records parsed per reply (the rest of a 64 KB one is not decoded: past it, which
    # records are kept depends on the order the server sent them in, so it sits well above real answers)
    records: int = 32  # records kept per answer (an MX set of 250 names is not chased whole)
    section_lines: int = 32  # RRs kept as text per section of a recorded exchange
    ns_names: int = 64  # NS names without glue resolved per run (``iterate.NsBudget``)
    ns_depth: int = 3  # levels of glueless NS names chased (the zone of an NS name may be glueless too)

_RCODE_OUTCOMES = {
    dns.rcode.NOERROR: Outcome.NOERROR,
    dns.rcode.NXDOMAIN: Outcome.NXDOMAIN,
    dns.rcode.SERVFAIL: Outcome.SERVFAIL,
    dns.rcode.REFUSED: Outcome.REFUSED,
    dns.rcode.FORMERR: Outcome.FORMERR,
    dns.rcode.NOTIMP: Outcome.NOTIMP,
}
# types that may sit beside the asked one at a name without making the answer wrong
_COMPANION_TYPES = {dns.rdatatype.CNAME, dns.rdatatype.DNAME, dns.rdatatype.RRSIG, dns.rdatatype.NSEC}


class Recorder:
    """The shared log of a run: every Exchange and Lookup, with times relative to the run's start."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.exchanges: list[evidence.Exchange] = []
        self.lookups: list[evidence.Lookup] = []
        self.limits: dict[str, evidence.LimitReached] = {}
        self._next_id = 1

    def now(self) -> float:
        return time.monotonic() - self.t0

    def next_id(self) -> int:
        ident = self._next_id
        self._next_id += 1
        return ident

    def add_exchange(self, exchange: evidence.Exchange) -> None:
        self.exchanges.append(exchange)

    def add_lookup(self, lookup: evidence.Lookup) -> None:
        self.lookups.append(lookup)

    def reach(self, limit: str, detail: str, count: int = 1) -> None:
        """Note that a per-run bound refused something; the first detail is kept, the count grows."""
        seen = self.limits.get(limit)
        if seen is None:
            self.limits[limit] = evidence.LimitReached(limit, detail, count)
        else:
            self.limits[limit] = dataclasses.replace(seen, count=seen.count + count)


# ---------------------------------------------------------------------------------------------------
# Pure parts: the attempt plan and the classification of a reply


@dataclass(frozen=True)
class Attempt:
    number: int
    transport: Transport
    edns: int | None
    workaround: str | None = None


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    rcode: str | None = None
    truncated: bool = False


class AttemptPlan:
    """Which attempt comes next, given what the last one got: the ordered workarounds of a stub.

    TcpOnTruncation; RetryWithoutEdnsOn{Formerr,Notimp,Badvers}; RetryOnTimeout, with the same EDNS as
    the first query: since DNS Flag Day 2019 no resolver drops EDNS after a time-out (the engine's
    DiagnosticWithoutEdns query tells an EDNS-dropping server apart). At most MAX_ATTEMPTS attempts.
    """

    def __init__(self, *, edns: bool = True) -> None:
        self._next: Attempt | None = Attempt(1, Transport.UDP, 0 if edns else None)
        self.history: list[tuple[Attempt, AttemptResult]] = []

    def next(self) -> Attempt | None:
        return self._next

    def give(self, result: AttemptResult) -> None:
        current = self._next
        if current is None:
            raise RuntimeError("no attempt is pending")
        self.history.append((current, result))
        following = self._after(current, result)
        self._next = following if following is not None and following.number <= MAX_ATTEMPTS else None

    def _after(self, a: Attempt, r: AttemptResult) -> Attempt | None:
        n = a.number + 1
        if r.truncated and a.transport is Transport.UDP:
            return Attempt(n, Transport.TCP, a.edns, "TcpOnTruncation")
        if a.edns is not None:
            if r.outcome in (Outcome.FORMERR, Outcome.NOTIMP):
                return Attempt(n, a.transport, None, f"RetryWithoutEdnsOn{r.outcome.value.title()}")
            if r.rcode == "BADVERS":
                return Attempt(n, a.transport, None, "RetryWithoutEdnsOnBadvers")
        if r.outcome is Outcome.TIMEOUT and a.transport is Transport.UDP and a.number == 1:
            return Attempt(n, Transport.UDP, a.edns, "RetryOnTimeout")
        return None


class ShapedPlan(AttemptPlan):
    """The attempts of a ``QueryShape``: the query as given, resent once over UDP on silence."""

    def __init__(self, shape: QueryShape) -> None:
        super().__init__()
        self.shape = shape
        self._next = Attempt(1, shape.transport, shape.edns)

    def _after(self, a: Attempt, r: AttemptResult) -> Attempt | None:
        n = a.number + 1
        if r.outcome is Outcome.TIMEOUT and a.transport is Transport.UDP and n <= self.shape.udp_attempts:
            return Attempt(n, a.transport, a.edns, "RetryOnTimeout")
        return None


def reply_flags(msg: dns.message.Message) -> tuple[str, ...]:
    """Header flags, plus the Z bit, EDNS flags and EDNS option codes the reply carries."""
    out = [f for f in wire.flags_text(msg) if not f.startswith("FLAG")]
    if msg.flags & Z_FLAG:
        out.append("Z")
    if msg.edns >= 0:
        if msg.ednsflags & dns.flags.DO:
            out.append("DO")
        other = msg.ednsflags & ~dns.flags.DO & 0xFFFF
        if other:
            out.append(f"EDNSFLAGS=0x{other:04x}")
        out.extend(f"OPTION={int(o.otype)}" for o in msg.options)
    return tuple(out)


@dataclass(frozen=True)
class Classified:
    outcome: Outcome
    records: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()
    ttl: int | None = None
    detail: str | None = None
    dropped: int = 0  # records past the per-answer limit, not kept


def _record_order(qtype: str) -> Callable[[str], tuple[int, str]]:
    """The order records are kept in when an answer holds more than the limit: the lowest MX
    preferences (the ones an MTA tries first), otherwise text order, so that the same set is kept
    whatever order a server rotates its records in."""

    def key(text: str) -> tuple[int, str]:
        if qtype == "MX":
            pref, _, host = text.partition(" ")
            return (int(pref) if pref.isdigit() else 65536, host)
        return (0, text)

    return key


def _rrset_at(msg: dns.message.Message, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    # a scan, not msg.get_rrset: the message index exists only for rrsets added through it
    for rrset in msg.answer:
        if rrset.name == name and rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN:
            return rrset
    return None


def classify(msg: dns.message.Message, qname: str, qtype: str, *, max_records: int = 1 << 16) -> Classified:
    """What a parsed reply says about (qname, qtype): data, no data (RFC 2308), no name, or a failure.

    At most ``max_records`` records are kept (see ``_record_order``); ``dropped`` counts the rest.
    """
    rcode = msg.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return Classified(_RCODE_OUTCOMES.get(rcode, Outcome.OTHER_RCODE))
    name = dns.name.from_text(qname)
    rdtype = dns.rdatatype.RdataType.make(qtype)
    cnames: list[str] = []
    for _ in range(MAX_CNAME_CHAIN):
        rrset = _rrset_at(msg, name, rdtype)
        if rrset is not None and rcode == dns.rcode.NOERROR:
            texts = [rd.to_text() for rd in rrset]
            dropped = max(0, len(texts) - max_records)
            if dropped:
                texts = sorted(texts, key=_record_order(qtype))[:max_records]
            return Classified(Outcome.NOERROR, tuple(texts), tuple(cnames), rrset.ttl, dropped=dropped)
        cname = _rrset_at(msg, name, dns.rdatatype.CNAME)
        if cname is None or rdtype == dns.rdatatype.CNAME or len(cname) == 0:
            break
        name = cname[0].target
        cnames.append(name.to_text().lower())
    if rcode == dns.rcode.NXDOMAIN:
        return Classified(Outcome.NXDOMAIN, cnames=tuple(cnames))
    others = sorted(
        {dns.rdatatype.to_text(rr.rdtype) for rr in msg.answer if rr.name == name and rr.rdtype not in _COMPANION_TYPES}
    )
    if others:
        detail = f"answer holds {', '.join(others)} at {name.to_text().lower()} where {qtype} was asked"
        return Classified(Outcome.BROKEN, cnames=tuple(cnames), detail=detail)
    return Classified(Outcome.NODATA, cnames=tuple(cnames))


def slim(msg: dns.message.Message, keep: int) -> dns.message.Message:
    """The parts of a reply the iteration reads (header, a sign of an answer, NS sets and their
    address glue), each section cut to ``keep`` records, so a 64 KB reply is not held whole."""
    sections = (msg.answer, msg.authority, msg.additional)
    if sum(len(rrset) for section in sections for rrset in section) <= keep:
        return msg
    out = dns.message.Message(id=msg.id)
    out.flags = msg.flags
    out.set_rcode(msg.rcode())
    out.question = msg.question
    out.answer = [wire.cut(rrset, 1) for rrset in msg.answer[:1]]  # read only as "is there an answer"
    out.authority = [wire.cut(r, keep) for r in msg.authority if r.rdtype == dns.rdatatype.NS][:keep]
    addresses = (dns.rdatatype.A, dns.rdatatype.AAAA)
    out.additional = [wire.cut(r, keep) for r in msg.additional if r.rdtype in addresses][:keep]
    return out


# ---------------------------------------------------------------------------------------------------
# Transports


class _Waiter:
    __slots__ = ("qname", "qtype", "future", "strays", "size")

    def __init__(self, qname: str, qtype: str, future: asyncio.Future[_Reply]) -> None:
        self.qname = qname
        self.qtype = qtype
        self.future = future
        self.strays: list[str] = []
        self.size: int | None = None  # bytes of the reply as received

    def stray(self, detail: str) -> None:
        if len(self.strays) < MAX_STRAYS:
            self.strays.append(detail)


_Reply = dns.message.Message | wire.Undecodable | OSError


class UdpChannel(asyncio.DatagramProtocol):
    """One UDP socket per (server, port); replies are matched to waiting queries by ID and question.

    A reply with an unknown ID, another question or bytes that do not parse is kept as a stray on
    the waiters it could belong to, and they go on waiting, as stub resolvers do.
    """

    def __init__(self, address: str, port: int, max_records: int | None = None) -> None:
        self.address = address
        self.port = port
        self.max_records = max_records
        self.transport: asyncio.DatagramTransport | None = None
        self.waiters: dict[int, _Waiter] = {}
        # IDs of queries given up on: their late replies are explained, not strays for others
        self.retired: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._opening: asyncio.Lock = asyncio.Lock()

    async def _ensure_open(self) -> asyncio.DatagramTransport:
        async with self._opening:
            if self.transport is None:
                loop = asyncio.get_running_loop()
                transport, _ = await loop.create_datagram_endpoint(lambda: self, remote_addr=(self.address, self.port))
                self.transport = transport
            return self.transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for w in self.waiters.values():
            if not w.future.done():
                w.future.set_result(OSError("socket closed"))

    def error_received(self, exc: Exception) -> None:
        # an ICMP error on a connected socket cannot be tied to one query: every waiter sees it
        for w in self.waiters.values():
            if not w.future.done():
                w.future.set_result(exc if isinstance(exc, OSError) else OSError(str(exc)))

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        decoded = wire.decode(data, self.max_records)
        if isinstance(decoded, wire.Undecodable):
            ident, question = (
                decoded.id,
                ((decoded.qname, decoded.qtype) if decoded.qname and decoded.qtype else None),
            )
        else:
            ident, question = decoded.id, wire.question_of(decoded)
        waiter = self.waiters.get(ident) if ident is not None else None
        if waiter is None and ident in self.retired:
            return
        if waiter is not None and (
            question == (waiter.qname, waiter.qtype)
            or (isinstance(decoded, dns.message.Message) and wire.matches(decoded, waiter.qname, waiter.qtype))
        ):
            if not waiter.future.done():
                waiter.size = len(data)
                waiter.future.set_result(decoded)
            return
        if isinstance(decoded, wire.Undecodable) and decoded.qname is None:
            detail = decoded.detail
        elif waiter is not None:
            shown = f"{question[0]}/{question[1]}" if question else "no question"
            detail = f"reply with ID {ident} for another question ({shown})"
        else:
            detail = f"reply with unexpected ID {ident}"
        for w in [waiter] if waiter is not None else list(self.waiters.values()):
            w.stray(detail)

    async def send(
        self, qname: str, qtype: str, *, rd: bool, edns: int | None, shape: QueryShape | None = None,
        do: bool = False, ad: bool = False,
    ) -> tuple[int, _Waiter]:
        """Send one query (``shape`` builds it when given); its waiter's future gets the reply (or the
        socket's error). Replies match the question whatever its letter case."""
        transport = await self._ensure_open()
        ident = secrets.randbits(16)
        while ident in self.waiters or ident in self.retired:
            ident = secrets.randbits(16)
        future: asyncio.Future[_Reply] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(qname.lower(), qtype, future)
        self.waiters[ident] = waiter
        if shape is not None:
            transport.sendto(shape.encode(ident, qname, qtype))
        else:
            transport.sendto(wire.encode_query(ident, qname, qtype, rd=rd, edns=edns, do=do, ad=ad))
        return ident, waiter

    def forget(self, ident: int) -> None:
        self.waiters.pop(ident, None)
        self.retired[ident] = None
        if len(self.retired) > MAX_RETIRED:
            self.retired.popitem(last=False)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def tcp_exchange(address: str, port: int, data: bytes, timeout: float) -> bytes | OSError | None:
    """Send one framed DNS message over a fresh TCP connection and read one framed reply (RFC 7766 §8).

    Returns the reply bytes, the OSError that ended the connection, or None on timeout.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port)
            writer.write(len(data).to_bytes(2, "big") + data)
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            return await reader.readexactly(size)
    except TimeoutError:
        return None
    except asyncio.IncompleteReadError:
        return ConnectionResetError("connection closed without a complete reply")
    except OSError as exc:
        return exc
    finally:
        if writer is not None:
            writer.close()


async def tcp_query(
    address: str, port: int, qname: str, qtype: str, *, rd: bool, edns: int | None, timeout: float,
    max_records: int | None = None, do: bool = False, ad: bool = False,
) -> _Reply | None:
    """One query over a fresh TCP connection; None on timeout. ``max_records``: see ``wire.decode``."""
    ident = secrets.randbits(16)
    query = wire.encode_query(ident, qname, qtype, rd=rd, edns=edns, do=do, ad=ad)
    data = await tcp_exchange(address, port, query, timeout)
    return _tcp_reply(data, ident, qname, qtype, max_records)


def _tcp_reply(
    data: bytes | OSError | None, ident: int, qname: str, qtype: str, max_records: int | None = None
) -> _Reply | None:
    """What a TCP exchange got, checked against the query's ID and question (``qname`` lower case)."""
    if data is None or isinstance(data, OSError):
        return data
    decoded = wire.decode(data, max_records)
    if isinstance(decoded, dns.message.Message) and (decoded.id != ident or not wire.matches(decoded, qname, qtype)):
        got = wire.question_of(decoded)
        return wire.Undecodable(f"reply with ID {decoded.id} for {got} over TCP", decoded.id)
    if isinstance(decoded, wire.Undecodable) and (decoded.id != ident or decoded.qname is None):
        return wire.Undecodable(decoded.detail, decoded.id)
    return decoded


# ---------------------------------------------------------------------------------------------------
# The engine


@dataclass(frozen=True)
class ServerAnswer:
    """Everything one server said to one question after all attempts (the last attempt decides)."""

    server: evidence.Server
    qname: str
    qtype: str
    rd: bool
    outcome: Outcome
    rcode: str | None = None
    records: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()
    ttl: int | None = None
    aa: bool = False
    detail: str | None = None
    exchanges: tuple[int, ...] = ()
    message: dns.message.Message | None = field(default=None, compare=False, repr=False)

    def to_lookup(self, view: str) -> evidence.Lookup:
        return evidence.Lookup(
            view=view,
            server=self.server,
            qname=self.qname,
            qtype=self.qtype,
            outcome=self.outcome,
            rcode=self.rcode,
            records=self.records,
            cnames=self.cnames,
            ttl=self.ttl,
            authoritative=self.aa,
            exchanges=self.exchanges,
            detail=self.detail,
        )

    @property
    def replied(self) -> bool:
        """Some bytes came back from the server (even an error or garbage)."""
        return self.outcome not in (Outcome.TIMEOUT, Outcome.NETWORK_ERROR)


@dataclass(frozen=True)
class _AttemptOutcome:
    result: AttemptResult
    classified: Classified
    aa: bool
    message: dns.message.Message | None


@dataclass
class _Sent:
    """A UDP attempt on the wire; it keeps listening past its timeout while later attempts run."""

    attempt: Attempt
    ident: int
    waiter: _Waiter
    started: float
    timeout: float


class Engine:
    """Sends questions for every view of a run: per-server limits, per-run cache, full recording."""

    def __init__(
        self, recorder: Recorder, *, timeout: float = 2.0, per_server_concurrency: int = 8, limits: Limits = Limits()
    ) -> None:
        self.recorder = recorder
        self.timeout = timeout
        self.limits = limits
        self.per_server_concurrency = per_server_concurrency
        # DNSSEC: DO on queries to authoritative servers (RRSIGs, proofs), AD on those to resolvers
        # (RFC 6840 §5.7: the reply's AD then says whether the resolver validated)
        self.dnssec = False
        self._channels: dict[tuple[str, int], UdpChannel] = {}
        self._limits: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._cache: dict[tuple[str, int, str, str, bool], asyncio.Task[ServerAnswer]] = {}

    @property
    def questions_sent(self) -> int:
        return len(self._cache)

    async def ask(
        self, view: str, server: evidence.Server, qname: str, qtype: str, *, rd: bool, timeout: float | None = None
    ) -> ServerAnswer:
        """The answer of ``server`` to (qname, qtype); asked once per run whoever asks (with the first
        asker's ``timeout`` for the first try, the engine's by default)."""
        key = (server.address, server.port, qname, qtype, rd)
        task = self._cache.get(key)
        if task is None and len(self.recorder.exchanges) >= self.limits.exchanges:
            detail = f"not sent: the run's limit of {self.limits.exchanges} exchanges was reached"
            self.recorder.reach("exchanges", f"questions past {self.limits.exchanges} exchanges were not sent")
            return ServerAnswer(server, qname, qtype, rd, Outcome.TIMEOUT, detail=detail)
        if task is None:
            task = asyncio.ensure_future(self._ask(view, server, qname, qtype, rd, timeout=timeout))
            self._cache[key] = task
        return await asyncio.shield(task)

    async def exchange(
        self, view: str, server: evidence.Server, qname: str, qtype: str, shape: QueryShape, *, probe: str | None = None
    ) -> ServerAnswer:
        """Send (qname, qtype) to ``server`` exactly as ``shape`` says (letter case kept), never from
        the cache; every attempt is recorded with ``probe`` as its probe name."""
        return await self._ask(view, server, qname, qtype, shape.rd, shape=shape, probe=probe)

    async def _ask(
        self,
        view: str,
        server: evidence.Server,
        qname: str,
        qtype: str,
        rd: bool,
        *,
        shape: QueryShape | None = None,
        probe: str | None = None,
        timeout: float | None = None,
    ) -> ServerAnswer:
        base = self.timeout if timeout is None else timeout
        plan = AttemptPlan() if shape is None else ShapedPlan(shape)
        recorded: list[tuple[int, int]] = []  # (attempt number, exchange id)
        # UDP attempts past their timeout: a late reply to one still counts, as it does for a stub
        # that retries with the same ID (glibc), so a slow server is not mistaken for a dead one
        lingering: list[_Sent] = []
        last: _AttemptOutcome | None = None
        diagnostic: asyncio.Task[_AttemptOutcome] | None = None
        try:
            while (attempt := plan.next()) is not None:
                if attempt.workaround == "RetryOnTimeout" and attempt.edns is not None and not rd and shape is None:
                    # beside the retry, one query without EDNS: only a diagnostic (resolvers do not
                    # send it), telling a server that drops EDNS queries from one that is silent
                    bare = Attempt(attempt.number, Transport.UDP, None, DIAGNOSTIC_WITHOUT_EDNS)
                    diagnostic = asyncio.ensure_future(
                        self._udp_attempt(view, server, qname, qtype, rd, bare, lingering, recorded, alone=True)
                    )
                async with self._limit(server):
                    if attempt.transport is Transport.UDP:
                        last = await self._udp_attempt(
                            view, server, qname, qtype, rd, attempt, lingering, recorded, shape, probe, base=base
                        )
                    else:
                        started = self.recorder.now()
                        size: int | None = None
                        if shape is None:
                            reply = await tcp_query(
                                server.address, server.port, qname, qtype, rd=rd, edns=attempt.edns,
                                timeout=base, max_records=self.limits.parsed,
                                do=self._do(rd, attempt), ad=self.dnssec and rd,
                            )  # fmt: skip
                        else:
                            query_id = secrets.randbits(16)
                            data = await tcp_exchange(
                                server.address, server.port, shape.encode(query_id, qname, qtype), base
                            )
                            reply = _tcp_reply(data, query_id, qname.lower(), qtype, self.limits.parsed)
                            size = len(data) if isinstance(data, bytes) else None
                        ident, last = self._record(
                            view, server, qname, qtype, rd, attempt, started, reply, [], base,
                            shape=shape, probe=probe, size=size,
                        )  # fmt: skip
                        recorded.append((attempt.number, ident))
                plan.give(last.result)
            if diagnostic is not None and last is not None and last.result.outcome is Outcome.TIMEOUT:
                plain = (await diagnostic).result.outcome
                if plain.is_answer:
                    detail = f"no reply to queries with EDNS; answers {plain.value} without EDNS"
                    last = _AttemptOutcome(last.result, Classified(Outcome.TIMEOUT, detail=detail), False, None)
        finally:
            if diagnostic is not None and not diagnostic.done():
                diagnostic.cancel()  # the server answered with EDNS after all: nothing to tell apart
            channel = self._channels.get((server.address, server.port))
            for sent in lingering:
                if channel is not None:
                    channel.forget(sent.ident)
                future = sent.waiter.future
                reply = future.result() if future.done() else None  # one that came with the winner
                ident, _ = self._record(
                    view, server, qname, qtype, rd, sent.attempt, sent.started, reply, sent.waiter.strays,
                    sent.timeout, shape=shape, probe=probe, size=sent.waiter.size,
                )  # fmt: skip
                recorded.append((sent.attempt.number, ident))
        assert last is not None
        c = last.classified
        ids = tuple(ident for _, ident in sorted(recorded))
        return ServerAnswer(
            server, qname, qtype, rd, c.outcome, last.result.rcode, c.records, c.cnames, c.ttl,
            last.aa, c.detail, ids, last.message,
        )  # fmt: skip

    async def _udp_attempt(
        self,
        view: str,
        server: evidence.Server,
        qname: str,
        qtype: str,
        rd: bool,
        attempt: Attempt,
        lingering: list[_Sent],
        recorded: list[tuple[int, int]],
        shape: QueryShape | None = None,
        probe: str | None = None,
        *,
        alone: bool = False,
        base: float | None = None,
    ) -> _AttemptOutcome:
        """Send one UDP attempt and wait for it or any lingering earlier one; record what is settled.

        A shaped query, or one sent ``alone`` (the diagnostic without EDNS), waits only for itself and
        does not linger: each attempt is judged on its own, as the probe that sent it asks."""
        started = self.recorder.now()
        channel = self._channel(server)
        # the wait doubles on each retry, as glibc's and Windows' stubs back off
        timeout = (self.timeout if base is None else base) * (2 if attempt.number > 1 and shape is None else 1)
        try:
            ident, waiter = await channel.send(
                qname, qtype, rd=rd, edns=attempt.edns, shape=shape, do=self._do(rd, attempt), ad=self.dnssec and rd
            )
        except OSError as exc:  # the socket could not even be opened (no route, bad family)
            ident, out = self._record(
                view, server, qname, qtype, rd, attempt, started, exc, [], timeout, shape=shape, probe=probe
            )
            recorded.append((attempt.number, ident))
            return out
        sent = _Sent(attempt, ident, waiter, started, timeout)
        solo = alone or shape is not None
        listening = {s.waiter.future: s for s in (sent, *(() if solo else lingering))}
        try:
            done, _ = await asyncio.wait(listening, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            channel.forget(ident)
            raise
        if not done and solo:
            channel.forget(ident)
            ident, out = self._record(
                view, server, qname, qtype, rd, attempt, started, None, waiter.strays, timeout, shape=shape, probe=probe
            )
            recorded.append((attempt.number, ident))
            return out
        if not done:
            lingering.append(sent)
            if waiter.strays:
                malformed = Classified(Outcome.MALFORMED, detail="; ".join(waiter.strays))
                return _AttemptOutcome(AttemptResult(Outcome.MALFORMED), malformed, False, None)
            return _AttemptOutcome(AttemptResult(Outcome.TIMEOUT), Classified(Outcome.TIMEOUT), False, None)
        winner = listening[next(iter(done))]
        if winner is not sent:
            lingering.remove(winner)
            lingering.append(sent)
        channel.forget(winner.ident)
        ident, out = self._record(
            view, server, qname, qtype, rd, winner.attempt, winner.started, winner.waiter.future.result(),
            winner.waiter.strays, winner.timeout, shape=shape, probe=probe, size=winner.waiter.size,
        )  # fmt: skip
        recorded.append((winner.attempt.number, ident))
        return out

    def _do(self, rd: bool, attempt: Attempt) -> bool:
        return self.dnssec and not rd and attempt.edns is not None

    def _limit(self, server: evidence.Server) -> asyncio.Semaphore:
        key = (server.address, server.port)
        sem = self._limits.get(key)
        if sem is None:
            sem = self._limits[key] = asyncio.Semaphore(self.per_server_concurrency)
        return sem

    def _channel(self, server: evidence.Server) -> UdpChannel:
        key = (server.address, server.port)
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = UdpChannel(server.address, server.port, self.limits.parsed)
        return channel

    def _record(
        self,
        view: str,
        server: evidence.Server,
        qname: str,
        qtype: str,
        rd: bool,
        attempt: Attempt,
        started: float,
        reply: _Reply | None,
        strays: list[str],
        timeout: float,
        *,
        shape: QueryShape | None = None,
        probe: str | None = None,
        size: int | None = None,
    ) -> tuple[int, _AttemptOutcome]:
        """Classify what one attempt got and record it as an Exchange (a shaped one with the reply's
        size, question case and every flag and option it carries)."""
        duration = self.recorder.now() - started
        ident = self.recorder.next_id()
        msg: dns.message.Message | None = None
        rcode: str | None = None
        error: str | None = None
        if reply is None:
            if strays:
                classified = Classified(Outcome.MALFORMED, detail="; ".join(strays))
                error = f"no matching reply within {timeout:g} s; received: " + "; ".join(strays)
            else:
                classified = Classified(Outcome.TIMEOUT)
                error = f"no reply within {timeout:g} s"
            if duration > timeout + 0.05:
                error += f" (listened {duration:.1f} s in all, while later attempts ran)"
        elif isinstance(reply, OSError):
            classified = Classified(Outcome.NETWORK_ERROR)
            error = reply.strerror or str(reply) or type(reply).__name__
        elif isinstance(reply, wire.Undecodable):
            # the reply to our question that dnspython cannot read (RFC 4074 §4.4) is BROKEN;
            # bytes we cannot even tie to our question are MALFORMED
            kind = Outcome.BROKEN if reply.qname is not None else Outcome.MALFORMED
            classified = Classified(kind, detail=reply.detail)
            error = reply.detail
        else:
            msg = reply
            rcode = wire.rcode_text(msg)
            classified = classify(msg, qname, qtype, max_records=self.limits.records)
            if classified.dropped:
                n = self.limits.records
                self.recorder.reach("records", f"answers of more than {n} records were cut to {n}")
            error = classified.detail
            if strays:
                error = (error + "; " if error else "") + "also received: " + "; ".join(strays)
            if duration > timeout:
                error = (error + "; " if error else "") + f"reply came after the {timeout:g} s timeout"
        truncated = (
            bool(msg.flags & dns.flags.TC)
            if msg is not None
            else (isinstance(reply, wire.Undecodable) and reply.truncated)
        )
        lines = self.limits.section_lines
        x = evidence.Exchange(
            id=ident,
            view=view,
            server=server,
            transport=attempt.transport,
            qname=qname,
            qtype=qtype,
            rd=rd,
            edns=attempt.edns,
            do=self._do(rd, attempt) if shape is None else False,
            started=round(started, 6),
            duration=round(duration, 6),
            outcome=classified.outcome,
            rcode=rcode,
            flags=wire.flags_text(msg) if msg is not None else (),
            answer=wire.section_text(msg.answer, lines) if msg is not None else (),
            authority=wire.section_text(msg.authority, lines) if msg is not None else (),
            additional=wire.section_text(msg.additional, lines) if msg is not None else (),
            reply_edns=msg.edns if msg is not None and msg.edns >= 0 else None,
            ede=tuple(evidence.Ede(code, text) for code, text in wire.ede_of(msg)) if msg is not None else (),
            error=error,
            workaround=attempt.workaround,
            attempt=attempt.number,
        )
        if shape is not None:
            x = dataclasses.replace(
                x,
                do=shape.do,
                flags=reply_flags(msg) if msg is not None else (),
                probe=probe,
                size=size if reply is not None and not isinstance(reply, OSError) else None,
                reply_qname=msg.question[0].name.to_text() if msg is not None and msg.question else None,
            )
        self.recorder.add_exchange(x)
        aa = msg is not None and bool(msg.flags & dns.flags.AA)
        kept = slim(msg, self.limits.records) if msg is not None else None
        return ident, _AttemptOutcome(AttemptResult(classified.outcome, rcode, truncated), classified, aa, kept)

    async def close(self) -> None:
        """Cancel what is still in flight and close every socket."""
        pending = [t for t in self._cache.values() if not t.done()]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
