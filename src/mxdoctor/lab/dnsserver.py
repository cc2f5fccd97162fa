"""One lab DNS server on one address: UDP and TCP sockets, message parsing, size limits, faults.

What it answers is up to its handler (authoritative zones or a recursive resolver); how it
misbehaves is up to its faults (see ``faults``), applied here so every handler gets them alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from mxdoctor.lab import faults as faults_mod

Handler = Callable[[dns.message.Message, str], Awaitable[dns.message.Message | None]]

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0  # seconds a TCP client may stay silent before the server closes it
_CLOSE = object()  # marker: close the TCP connection without an answer


class DnsServer:
    """A DNS server on ``(address, port)`` over UDP and TCP, answering through ``handler``.

    ``queries`` keeps the last queries seen as ``(qname, qtype, transport)`` for tests.
    """

    def __init__(
        self,
        name: str,
        address: str,
        port: int,
        handler: Handler,
        faults: Sequence[faults_mod.Fault] = (),
    ) -> None:
        self.name = name
        self.address = address
        self.port = port
        self.handler = handler
        self.faults = tuple(faults)
        self.queries: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=2000)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[asyncio.StreamWriter] = set()
        self._refuse_all_tcp = any(
            f.kind == "tcp-refuse" and f.name == "*" and f.qtype == "*" and f.transport in ("*", "tcp")
            for f in self.faults
        )

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    async def start(self) -> None:
        """Bind UDP and TCP on (address, port); raise OSError if either cannot be bound."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.address, self.port), family=self.family
        )
        self._udp = transport
        if self.port == 0:
            self.port = transport.get_extra_info("sockname")[1]
        try:
            self._tcp = await asyncio.start_server(
                self._serve_tcp, host=self.address, port=self.port, family=self.family, reuse_address=True
            )
        except OSError:
            transport.close()
            self._udp = None
            raise

    async def stop(self) -> None:
        """Close every socket and connection and cancel the answers in flight; frees the port."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._conns):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
            self._tcp = None

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_udp(self, wire: bytes, peer: tuple[str, int]) -> None:
        out = await self.answer(wire, "udp")
        if isinstance(out, bytes) and self._udp is not None and not self._udp.is_closing():
            self._udp.sendto(out, peer)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refuse_all_tcp:
            writer.transport.abort()
            return
        self._conns.add(writer)
        try:
            while True:
                try:
                    header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                    (length,) = struct.unpack("!H", header)
                    wire = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                out = await self.answer(wire, "tcp")
                if out is _CLOSE:
                    writer.transport.abort()
                    return
                if isinstance(out, bytes):
                    writer.write(struct.pack("!H", len(out)) + out)
                    await writer.drain()
        except ConnectionError:
            return
        finally:
            self._conns.discard(writer)
            writer.close()

    async def answer(self, wire: bytes, transport: str) -> bytes | object | None:
        """The reply bytes for one request, None for silence, or the close marker (TCP)."""
        try:
            request = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except Exception:
            return _formerr_for(wire)
        if request.flags & dns.flags.QR:
            return None
        if not request.question:
            reply = dns.message.make_response(request)
            reply.set_rcode(dns.rcode.FORMERR)
            return reply.to_wire()
        question = request.question[0]
        qname = question.name.to_text().lower()
        qtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((qname, qtype, transport))
        active = faults_mod.matching(self.faults, qname, qtype, transport)
        for fault in active:
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "edns-version-ignore" and request.edns > 0:
                request.use_edns(0, request.ednsflags, request.payload, options=list(request.options))
        early = _before(active, request, transport)
        synthesised = any(f.kind == "lb-nxdomain" for f in active)  # a load balancer knows no SOA
        if isinstance(early, dns.message.Message) and early.rcode() == dns.rcode.NXDOMAIN and not synthesised:
            # A name error carries the zone's SOA, as the real broken servers of RFC 4074 §4.2 send
            # it; without one, resolvers would not cache the denial and the fault would lose its bite.
            early.authority = await self._sub_records(request, dns.rdatatype.SOA, transport, authority=True)
        if early is not None:
            reply_or_marker = early
        else:
            try:
                handled = await self.handler(request, transport)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lab server %s: handler failed on %s %s", self.name, qname, qtype)
                handled = dns.message.make_response(request)
                handled.set_rcode(dns.rcode.SERVFAIL)
            if handled is None:
                return None
            reply_or_marker = handled
        if reply_or_marker is _SILENCE:
            return None
        if reply_or_marker is _CLOSE:
            return _CLOSE
        assert isinstance(reply_or_marker, dns.message.Message)
        reply = reply_or_marker
        for fault in active:
            if fault.before_handler:
                continue
            if fault.kind == "garbage":
                return _garbage(fault.size)
            reply = await self._after(fault, request, reply, transport)
        ignore_payload = any(f.kind == "ignore-payload" for f in active)
        return _render(reply, request, transport, ignore_payload=ignore_payload)

    async def _after(
        self,
        fault: faults_mod.Fault,
        request: dns.message.Message,
        reply: dns.message.Message,
        transport: str,
    ) -> dns.message.Message:
        question = request.question[0]
        if fault.kind == "no-aa":
            reply.flags &= ~dns.flags.AA
        elif fault.kind == "truncate":
            reply.answer, reply.authority, reply.additional = [], [], []
            reply.flags |= dns.flags.TC
        elif fault.kind == "wrong-id":
            reply.id = (request.id + 0x5A5A) & 0xFFFF
        elif fault.kind == "wrong-question":
            wrong = dns.rrset.RRset(dns.name.from_text(fault.qname), question.rdclass, question.rdtype)
            reply.question = [wrong]
        elif fault.kind == "broken-aaaa" and question.rdtype == dns.rdatatype.AAAA:
            reply = await self._broken_aaaa(request, reply, transport)
        elif fault.kind == "wrong-type":
            reply = await self._wrong_type(fault, request, reply, transport)
        elif fault.kind == "qname-lowercase":
            lower = dns.name.from_text(question.name.to_text().lower())
            reply.question = [dns.rrset.RRset(lower, question.rdclass, question.rdtype)]
        elif fault.kind == "no-soa" and (reply.rcode() == dns.rcode.NXDOMAIN or not reply.answer):
            reply.authority = [rrset for rrset in reply.authority if rrset.rdtype != dns.rdatatype.SOA]
        elif fault.kind == "stale-serial":
            reply.answer = [_older_serial(rrset) for rrset in reply.answer]
            reply.authority = [_older_serial(rrset) for rrset in reply.authority]
        return reply

    async def _sub_records(
        self,
        request: dns.message.Message,
        rdtype: dns.rdatatype.RdataType,
        transport: str,
        *,
        authority: bool = False,
    ) -> list[dns.rrset.RRset]:
        """Records of ``rdtype`` for the same name from this server's own handler (answer, or authority too)."""
        question = request.question[0]
        sub = dns.message.make_query(question.name, rdtype, question.rdclass, use_edns=request.edns >= 0)
        sub.flags = request.flags
        try:
            answered = await self.handler(sub, transport)
        except Exception:
            return []
        if answered is None:
            return []
        sections = answered.answer + answered.authority if authority else answered.answer
        return [rrset for rrset in sections if rrset.rdtype == rdtype]

    async def _broken_aaaa(
        self, request: dns.message.Message, reply: dns.message.Message, transport: str
    ) -> dns.message.Message:
        # RFC 4074 §4.4: the server returns the 4-byte A data as if it were AAAA data.
        question = request.question[0]
        four: list[bytes] = []
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.AAAA:
                four.extend(rd.to_digestable()[:4] for rd in rrset)
        ttl = 300
        if not four:
            for rrset in await self._sub_records(request, dns.rdatatype.A, transport):
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

    async def _wrong_type(
        self,
        fault: faults_mod.Fault,
        request: dns.message.Message,
        reply: dns.message.Message,
        transport: str,
    ) -> dns.message.Message:
        rdtype = dns.rdatatype.from_text(fault.rtype)
        if rdtype == request.question[0].rdtype:
            return reply
        others = await self._sub_records(request, rdtype, transport)
        if others:
            reply.answer = others
            reply.authority = []
            reply.set_rcode(dns.rcode.NOERROR)
        return reply


_SILENCE = object()


def _before(
    active: Sequence[faults_mod.Fault], request: dns.message.Message, transport: str
) -> dns.message.Message | object | None:
    """The outcome of the faults that act before the handler: a reply, a marker, or None to go on."""
    has_edns = request.edns >= 0
    for fault in active:
        if fault.kind == "drop":
            return _SILENCE
        if fault.kind == "tcp-refuse" and transport == "tcp":
            return _CLOSE
        if fault.kind == "edns-drop" and has_edns:
            return _SILENCE
        if fault.kind == "edns-formerr" and has_edns:
            # A server that does not know EDNS answers FORMERR without an OPT record (RFC 6891 §7).
            reply = dns.message.make_response(request)
            reply.use_edns(False)
            reply.set_rcode(dns.rcode.FORMERR)
            reply.question = []
            return reply
        if fault.kind == "edns-option-formerr" and has_edns and request.options:
            return _formerr(request)
        if fault.kind == "edns-flags-formerr" and has_edns and request.ednsflags & ~dns.flags.DO & 0xFFFF:
            return _formerr(request)
        if fault.kind == "zflag-formerr" and request.flags & 0x0040:
            return _formerr(request)
        if fault.kind == "opcode-drop" and request.opcode() != dns.opcode.QUERY:
            return _SILENCE
        if fault.kind == "lb-nxdomain":
            reply = dns.message.make_response(request)
            reply.set_rcode(dns.rcode.NXDOMAIN)
            return reply
        if fault.kind == "rcode":
            reply = dns.message.make_response(request)
            reply.set_rcode(fault.rcode_value)
            if fault.sets_aa:
                reply.flags |= dns.flags.AA
            return reply
    return None


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


def _render(
    reply: dns.message.Message, request: dns.message.Message, transport: str, *, ignore_payload: bool = False
) -> bytes:
    if transport == "tcp" or ignore_payload:
        limit = 65535
    elif request.edns >= 0:
        limit = max(512, request.payload)
    else:
        limit = 512
    try:
        return reply.to_wire(max_size=limit)
    except dns.exception.TooBig:
        reply.answer, reply.authority, reply.additional = [], [], []
        reply.flags |= dns.flags.TC
        return reply.to_wire(max_size=limit)


def _formerr_for(wire: bytes) -> bytes | None:
    """A bare FORMERR header for a request that does not parse, when its header is readable."""
    if len(wire) < 12:
        return None
    (msg_id, flags) = struct.unpack("!HH", wire[:4])
    if flags & dns.flags.QR:
        return None
    opcode_bits = flags & 0x7800
    return struct.pack("!HHHHHH", msg_id, 0x8000 | opcode_bits | int(dns.rcode.FORMERR), 0, 0, 0, 0)


def _garbage(size: int) -> bytes:
    data = bytearray(os.urandom(size))
    # Claim far more records than the bytes hold, so no parser can take it for a message.
    if size >= 12:
        data[4:12] = b"\xff\xff\xff\xff\xff\xff\xff\xff"
    return bytes(data)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        peer = (str(addr[0]), int(str(addr[1])))
        self.server._spawn(self.server._serve_udp(data, peer))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier replies (the client went away): nothing to do.
        with contextlib.suppress(Exception):
            log.debug("lab server %s: %s", self.server.name, exc)
