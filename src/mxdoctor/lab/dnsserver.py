"""One lab DNS server on one address: UDP and TCP sockets, message parsing, size limits, faults.

What it answers is up to its handler (authoritative zones or a recursive resolver); how it
misbehaves is up to its faults (see ``faults``), applied here so every handler gets them alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.rcode
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
        self._refuse_all_tcp = any(f.on_tcp_connect() for f in self.faults)

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
        query = faults_mod.Query(
            request, transport, lambda rdtype, authority: self._sub_records(request, rdtype, transport, authority)
        )
        # Every matching fault sees the query, in order (a delay waits, whatever comes after it);
        # the first that answers instead of the handler wins.
        early: faults_mod.Outcome | None = None
        for fault in active:
            outcome = await fault.on_query(query)
            if early is None:
                early = outcome
        if early is faults_mod.Action.SILENCE:
            return None
        if early is faults_mod.Action.CLOSE:
            return _CLOSE if transport == "tcp" else None
        if isinstance(early, dns.message.Message):
            handled: dns.message.Message | None = early
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
        final = handled
        for fault in active:
            changed = await fault.on_response(query, final)
            if isinstance(changed, bytes):
                return changed  # raw bytes (garbage): sent as they are
            final = changed
        return _render(final, request, transport, ignore_payload=_ignores_payload(active))

    async def _sub_records(
        self,
        request: dns.message.Message,
        rdtype: dns.rdatatype.RdataType,
        transport: str,
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


def _ignores_payload(active: Sequence[faults_mod.Fault]) -> bool:
    return any(f.ignores_payload for f in active)


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
