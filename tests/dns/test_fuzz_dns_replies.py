"""Fuzzing the DNS reply handling: replies rebuilt from the recorded lab evidence, then mutated (bit
flips, cuts, compression-pointer loops, huge counts, wrong IDs and questions, random bytes, replies
of thousands of records), fed to the codec (``wire``) and the engine's classification and recording
(``exchange``), and sent over real UDP and TCP sockets on loopback to the engine itself.

The property everywhere: no exception escapes, and every reply ends as an Exchange with an Outcome
that the evidence JSON carries unchanged. Budgets: ``_fuzz.fuzz`` (``make fuzz`` for a long run).
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.wire
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _fuzz import byte_mutated, fuzz
from mxdoctor import evidence
from mxdoctor.dns import exchange, wire
from mxdoctor.evidence import Outcome, Server, Transport

EVIDENCE = Path(__file__).resolve().parents[1] / "data" / "evidence"
MAX_SEEDS = 400


@functools.cache
def seeds() -> tuple[tuple[bytes, str, str], ...]:
    """(reply bytes, qname, qtype) of every distinct parsed reply in the recorded lab evidence,
    rebuilt with dnspython from the exchange's header, sections and EDNS."""
    out: dict[bytes, tuple[bytes, str, str]] = {}
    for path in sorted(EVIDENCE.glob("*.json")):
        for x in json.loads(path.read_text())["exchanges"]:
            data = _rebuilt(x)
            if data is not None and data not in out:
                out[data] = (data, x["qname"].lower(), x["qtype"])
    assert len(out) >= 50, "the recorded evidence should give many distinct replies"
    return tuple(out.values())[:MAX_SEEDS]


def _rebuilt(x: dict[str, object]) -> bytes | None:
    if x.get("rcode") is None:
        return None  # no parsed reply was recorded (timeout, garbage)
    flags = " ".join(f for f in x["flags"] if f in dns.flags.Flag.__members__)  # type: ignore[attr-defined]
    lines = [f"id {int(x['id']) & 0xFFFF}", "opcode QUERY", f"rcode {x['rcode']}", f"flags {flags}"]  # type: ignore[call-overload]
    if x.get("reply_edns") is not None:
        lines += [f"edns {x['reply_edns']}", "payload 1232"]
    lines += [";QUESTION", f"{x['qname']} IN {x['qtype']}"]
    for section in ("answer", "authority", "additional"):
        lines.append(f";{section.upper()}")
        lines.extend(x[section])  # type: ignore[arg-type]
    try:
        data: bytes = dns.message.from_text("\n".join(lines)).to_wire()
    except Exception:  # a record text dnspython will not write back (e.g. a cut section): no seed
        return None
    return data


def _names_at(data: bytes) -> list[int]:
    """Offsets where a name starts: the question's, and each record's owner, walking the headers."""
    offsets = []
    try:
        parser = dns.wire.Parser(data)
        _, _, qd, an, ns, ar = parser.get_struct("!HHHHHH")
        for _ in range(qd):
            offsets.append(parser.current)
            parser.get_name()
            parser.get_struct("!HH")
        for _ in range(an + ns + ar):
            offsets.append(parser.current)
            parser.get_name()
            *_, rdlen = parser.get_struct("!HHIH")
            parser.get_bytes(rdlen)
    except Exception:
        pass
    return offsets


def _pointer(target: int) -> bytes:
    return struct.pack("!H", 0xC000 | (target & 0x3FFF))


SEEDS = seeds()  # built here, not inside a strategy: dnspython draws message IDs from ``random``


@st.composite
def mutated_reply(draw: st.DrawFn) -> tuple[bytes, str, str]:
    """A recorded reply, changed in one to three of the ways hostile or broken servers do it."""
    data, qname, qtype = draw(st.sampled_from(SEEDS))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(
            ["bytes", "flip", "cut", "counts", "loop", "id", "header", "random", "splice", "many", "same"]
        ))
        if kind == "bytes":
            buf = bytearray(draw(byte_mutated(bytes(buf))))
        elif kind == "flip" and buf:
            for _ in range(draw(st.integers(1, 8))):
                pos = draw(st.integers(0, len(buf) - 1))
                buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            buf = buf[: draw(st.integers(0, len(buf)))]
        elif kind == "counts" and len(buf) >= 12:
            field = draw(st.integers(0, 3))
            count = draw(st.one_of(st.sampled_from([0, 1, 2, 0x7FFF, 0xFFFF]), st.integers(0, 0xFFFF)))
            buf[4 + 2 * field : 6 + 2 * field] = struct.pack("!H", count)
        elif kind == "loop":
            names = _names_at(bytes(buf)) or [12]
            at = draw(st.sampled_from(names))
            how = draw(st.sampled_from(["self", "forward", "pair", "label-then-self"]))
            if how == "self":  # a pointer to itself
                buf[at : at + 2] = _pointer(at)
            elif how == "forward":  # a pointer past itself, maybe past the end
                buf[at : at + 2] = _pointer(at + draw(st.integers(2, 4096)))
            elif how == "pair":  # two pointers that point to each other
                buf[at : at + 4] = _pointer(at + 2) + _pointer(at)
            else:  # a label, then a pointer back to that label: an endless name
                buf[at : at + 4] = b"\x01a" + _pointer(at)
        elif kind == "id" and len(buf) >= 2:
            buf[0:2] = struct.pack("!H", draw(st.integers(0, 0xFFFF)))
        elif kind == "header" and len(buf) >= 4:
            buf[2:4] = struct.pack("!H", draw(st.integers(0, 0xFFFF)))
        elif kind == "random":
            buf = bytearray(draw(st.binary(max_size=draw(st.sampled_from([12, 64, 600])))))
        elif kind == "splice":
            other, _, _ = draw(st.sampled_from(SEEDS))
            cut_at = draw(st.integers(0, len(buf)))
            buf = buf[:cut_at] + other[draw(st.integers(0, len(other))) :]
        elif kind == "many":
            buf = bytearray(_many_records(bytes(buf), draw(st.integers(33, 4000))))
        # "same": the reply as recorded (with the other changes drawn, if any)
    return bytes(buf), qname, qtype


def _many_records(data: bytes, n: int) -> bytes:
    """The reply with ``n`` A records of its question's name appended: to the answer section when
    nothing follows it, else to the additional one (built by hand: dnspython's renderer draws from
    ``random``, which a strategy must not)."""
    if len(data) < 12:
        return data
    qd, an, ns, ar = struct.unpack("!HHHH", data[4:12])
    record = _pointer(12) + struct.pack("!HHIH", 1, 1, 300, 4)
    records = b"".join(record + struct.pack("!I", 0x7F000000 + i) for i in range(n))
    if ns == 0 and ar == 0:
        an = min(0xFFFF, an + n)
    else:
        ar = min(0xFFFF, ar + n)
    return data[:4] + struct.pack("!HHHH", qd, an, ns, ar) + data[12:] + records


# -- the codec and the engine's reply handling, without sockets ---------------------------------------

SERVER = Server("127.0.0.1", 53, "fuzz.test.")


def _recorded(engine: exchange.Engine, reply: exchange._Reply | None, strays: list[str], qname: str, qtype: str,
              *, transport: Transport, shaped: bool) -> evidence.Exchange:
    shape = wire.QueryShape(transport=transport) if shaped else None
    size = reply_size = None
    if isinstance(reply, dns.message.Message):
        reply_size = len(reply.to_wire(max_size=65535)) if shaped else None
        size = reply_size
    attempt = exchange.Attempt(1, transport, 0)
    _, outcome = engine._record("fuzz", SERVER, qname, qtype, False, attempt, engine.recorder.now(), reply, strays,
                                0.5, shape=shape, probe="fuzz" if shaped else None, size=size)
    assert isinstance(outcome.classified.outcome, Outcome)
    return engine.recorder.exchanges[-1]


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """Futures for the UDP waiters; the loop is never run."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@fuzz(400)
@given(mutated_reply(), st.sampled_from([None, 1, 32, 512]), st.integers(0, 0xFFFF), st.booleans())
def test_fuzz_every_reply_is_classified_and_recorded(
    loop: asyncio.AbstractEventLoop, case: tuple[bytes, str, str], max_records: int | None, ident: int, shaped: bool
) -> None:
    data, qname, qtype = case
    decoded = wire.decode(data, max_records)
    assert isinstance(decoded, dns.message.Message | wire.Undecodable)
    if isinstance(decoded, dns.message.Message):
        assert isinstance(wire.matches(decoded, qname, qtype), bool)
        wire.question_of(decoded)
        assert all(isinstance(f, str) for f in wire.flags_text(decoded) + exchange.reply_flags(decoded))
        wire.rcode_text(decoded)
        for section in (decoded.answer, decoded.authority, decoded.additional):
            assert len(wire.section_text(section, 32)) <= 32
            wire.section_text(section)
        slim = exchange.slim(decoded, 4)
        assert sum(len(r) for r in slim.answer + slim.authority + slim.additional) <= max(
            9, sum(len(r) for r in decoded.answer + decoded.authority + decoded.additional)
        )
        assert exchange.classify(decoded, qname, qtype, max_records=4).outcome in Outcome
    else:
        assert decoded.detail

    engine = exchange.Engine(exchange.Recorder(), timeout=0.5)
    # over TCP: the reply checked against the query's ID and question
    tcp = exchange._tcp_reply(data, ident, qname, qtype, max_records)
    recorded = [_recorded(engine, tcp, [], qname, qtype, transport=Transport.TCP, shaped=shaped)]
    # over UDP: matched to the waiting query, or kept as a stray that explains the silence
    channel = exchange.UdpChannel(SERVER.address, SERVER.port, max_records)
    waiter = exchange._Waiter(qname, qtype, loop.create_future())
    channel.waiters[ident] = waiter
    channel.datagram_received(data, (SERVER.address, SERVER.port))
    udp = waiter.future.result() if waiter.future.done() else None
    assert udp is not None or waiter.strays  # taken, or said why not
    recorded.append(_recorded(engine, udp, waiter.strays, qname, qtype, transport=Transport.UDP, shaped=shaped))
    ev = evidence.Evidence("fuzz.test", "fuzz.test", exchanges=tuple(recorded))
    assert evidence.loads(evidence.dumps(ev)) == ev  # the evidence carries every reply as recorded


# -- the engine over real sockets on loopback -----------------------------------------------------


class FuzzServer:
    """A UDP and TCP DNS server on loopback that answers any query with ``reply``, its ID set to the
    query's unless ``keep_id`` (a wrong ID, most likely)."""

    def __init__(self) -> None:
        self.reply = b""
        self.keep_id = False
        for _ in range(20):  # a UDP port whose TCP twin is free too (another run may hold that one)
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.tcp.close()
                self.udp.close()
        self.tcp.listen(16)
        self.stopping = False
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self._serve_udp, self._serve_tcp)]
        for t in self.threads:
            t.start()

    def _answer(self, query: bytes) -> bytes:
        reply = self.reply
        if not self.keep_id and len(reply) >= 2 and len(query) >= 2:
            reply = query[:2] + reply[2:]
        return reply

    def _serve_udp(self) -> None:
        while not self.stopping:
            try:
                query, peer = self.udp.recvfrom(65535)
                self.udp.sendto(self._answer(query)[:65507], peer)
            except OSError:
                return

    def _serve_tcp(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(1.0)
                try:
                    size = struct.unpack("!H", conn.recv(2))[0]
                    query = conn.recv(size)
                    reply = self._answer(query)[:65535]
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except (OSError, struct.error):
                    continue

    def close(self) -> None:
        self.stopping = True
        self.udp.close()
        self.tcp.close()


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[FuzzServer]:
    server = FuzzServer()
    yield server
    server.close()


@fuzz(12)
@given(mutated_reply(), st.booleans(), st.sampled_from([Transport.UDP, Transport.TCP]))
def test_fuzz_the_engine_over_loopback_records_every_reply(
    fuzz_server: FuzzServer, case: tuple[bytes, str, str], keep_id: bool, transport: Transport
) -> None:
    data, qname, qtype = case
    fuzz_server.reply, fuzz_server.keep_id = data, keep_id
    recorder = exchange.Recorder()
    server = Server("127.0.0.1", fuzz_server.port)

    async def ask() -> exchange.ServerAnswer:
        engine = exchange.Engine(recorder, timeout=0.1)
        try:
            if transport is Transport.TCP:
                shape = wire.QueryShape(transport=Transport.TCP)
                return await engine.exchange("fuzz", server, qname, qtype, shape, probe="tcp")
            return await engine.ask("fuzz", server, qname, qtype, rd=False)
        finally:
            await engine.close()

    answer = asyncio.run(ask())
    assert answer.outcome in Outcome
    assert recorder.exchanges and all(x.outcome in Outcome for x in recorder.exchanges)
    assert answer.outcome is recorder.exchanges[-1].outcome or answer.outcome is Outcome.LAME
    ev = evidence.Evidence("fuzz.test", "fuzz.test", exchanges=tuple(recorder.exchanges),
                           lookups=(answer.to_lookup("fuzz"),))
    assert evidence.loads(evidence.dumps(ev)) == ev
