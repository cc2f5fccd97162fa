"""The audit's own query sender: hand-built messages (unknown versions, options, flags, opcodes, case)
sent once over UDP or TCP, each attempt recorded as an ``evidence.Exchange`` with its probe name.

The engine's exchange layer applies workarounds (EDNS fallbacks, TCP on truncation); an audit wants
the raw behaviour of one query, so it sends here, one attempt at a time, under the same Recorder.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, replace

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdatatype

from mxdoctor import evidence
from mxdoctor.audit import probes
from mxdoctor.dns import exchange, wire
from mxdoctor.evidence import Outcome, Transport

UDP_ATTEMPTS = 2  # one retry on silence over UDP: a lost datagram is not a fault of the server


@dataclass(frozen=True)
class Query:
    spec: probes.ProbeSpec
    qname: str  # as sent (case kept), absolute
    qtype: str


def build(query: Query, ident: int) -> bytes:
    spec = query.spec
    options: list[dns.edns.Option] | None = None
    if spec.option:
        options = [dns.edns.GenericOption(dns.edns.OptionType.make(probes.UNKNOWN_OPTION), b"mxdoctor")]
    ednsflags = probes.UNKNOWN_EDNS_FLAG if spec.edns_flag else 0
    msg = dns.message.make_query(
        dns.name.from_text(query.qname),
        dns.rdatatype.RdataType.make(query.qtype),
        use_edns=spec.edns if spec.edns is not None else False,
        payload=spec.payload,
        want_dnssec=spec.do,
        ednsflags=ednsflags,
        options=options,
        id=ident,
    )
    msg.flags &= ~dns.flags.RD
    if spec.zflag:
        msg.flags |= probes.Z_FLAG
    if spec.opcode:
        msg.set_opcode(dns.opcode.Opcode.make(spec.opcode))
    data: bytes = msg.to_wire()
    return data


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.future: asyncio.Future[bytes | OSError] = asyncio.get_running_loop().create_future()
        self.strays: list[str] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if wire.peek_id(data) == self.ident and len(data) >= 3 and data[2] & 0x80:
            if not self.future.done():
                self.future.set_result(data)
        elif len(self.strays) < exchange.MAX_STRAYS:
            self.strays.append(f"reply with unexpected ID {wire.peek_id(data)}")

    def error_received(self, exc: Exception) -> None:
        if not self.future.done():
            self.future.set_result(exc if isinstance(exc, OSError) else OSError(str(exc)))


async def _udp(address: str, port: int, data: bytes, ident: int, timeout: float) -> bytes | OSError | None:
    loop = asyncio.get_running_loop()
    transport: asyncio.DatagramTransport | None = None
    try:
        async with asyncio.timeout(timeout):
            transport, proto = await loop.create_datagram_endpoint(
                lambda: _Datagram(ident), remote_addr=(address, port)
            )
            transport.sendto(data)
            return await proto.future
    except TimeoutError:
        return None
    except OSError as exc:
        return exc
    finally:
        if transport is not None:
            transport.close()


def _reply_flags(msg: dns.message.Message) -> tuple[str, ...]:
    """Header flags, plus the Z bit, EDNS flags and EDNS option codes the reply carries."""
    out = [f for f in wire.flags_text(msg) if not f.startswith("FLAG")]
    if msg.flags & probes.Z_FLAG:
        out.append("Z")
    if msg.edns >= 0:
        if msg.ednsflags & dns.flags.DO:
            out.append("DO")
        other = msg.ednsflags & ~dns.flags.DO & 0xFFFF
        if other:
            out.append(f"EDNSFLAGS=0x{other:04x}")
        out.extend(f"OPTION={int(o.otype)}" for o in msg.options)
    return tuple(out)


async def send(
    recorder: exchange.Recorder,
    server: evidence.Server,
    query: Query,
    *,
    timeout: float,
    limit: asyncio.Semaphore,
) -> tuple[int, ...]:
    """Send one probe query (retried once on UDP silence); return the ids of its recorded exchanges."""
    spec = query.spec
    ids: list[int] = []
    attempts = UDP_ATTEMPTS if spec.transport is Transport.UDP else 1
    for attempt in range(1, attempts + 1):
        ident = secrets.randbits(16)
        data = build(query, ident)
        async with limit:
            started = recorder.now()
            if spec.transport is Transport.UDP:
                reply = await _udp(server.address, server.port, data, ident, timeout)
            else:
                reply = await exchange.tcp_exchange(server.address, server.port, data, timeout)
            duration = recorder.now() - started
        x = _record(recorder, server, query, attempt, started, duration, reply, timeout)
        ids.append(x.id)
        recorder.add_exchange(x)
        if x.outcome is not Outcome.TIMEOUT:
            break
    return tuple(ids)


def _record(
    recorder: exchange.Recorder,
    server: evidence.Server,
    query: Query,
    attempt: int,
    started: float,
    duration: float,
    reply: bytes | OSError | None,
    timeout: float,
) -> evidence.Exchange:
    spec = query.spec
    base = evidence.Exchange(
        id=recorder.next_id(),
        view="audit",
        server=server,
        transport=spec.transport,
        qname=query.qname,
        qtype=query.qtype,
        rd=False,
        edns=spec.edns,
        do=spec.do,
        started=round(started, 6),
        duration=round(duration, 6),
        outcome=Outcome.TIMEOUT,
        error=f"no reply within {timeout:g} s",
        attempt=attempt,
        probe=spec.name,
        workaround="RetryOnTimeout" if attempt > 1 else None,
    )
    if reply is None:
        return base
    if isinstance(reply, OSError):
        error = reply.strerror or str(reply) or type(reply).__name__
        return replace(base, outcome=Outcome.NETWORK_ERROR, error=error)
    decoded = wire.decode(reply)
    if isinstance(decoded, wire.Undecodable):
        kind = Outcome.BROKEN if decoded.qname is not None else Outcome.MALFORMED
        return replace(base, outcome=kind, error=decoded.detail, size=len(reply))
    msg = decoded
    classified = exchange.classify(msg, query.qname.lower(), query.qtype)
    return replace(
        base,
        outcome=classified.outcome,
        rcode=wire.rcode_text(msg),
        flags=_reply_flags(msg),
        answer=wire.section_text(msg.answer),
        authority=wire.section_text(msg.authority),
        additional=wire.section_text(msg.additional),
        reply_edns=msg.edns if msg.edns >= 0 else None,
        error=classified.detail,
        size=len(reply),
        reply_qname=msg.question[0].name.to_text() if msg.question else None,
    )
