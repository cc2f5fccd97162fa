"""The lean codec equals dnspython: same query bytes, and for every reply it reads, the same ID, RCODE,
flags and classification as ``exchange.classify`` over dnspython's parse; what it does not read,
dnspython does. Property tests on generated and mutated messages, and on replies recorded from the
lab's servers and resolvers and from NSD (tests/scan/data/replies.txt)."""

from __future__ import annotations

import os
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from mxdoctor.dns import exchange, wire
from mxdoctor.scan import codec

DATA = Path(__file__).parent / "data" / "replies.txt"
QTYPES = ("A", "AAAA", "MX")

plain_label = st.text(alphabet="abcxyzABCXYZ019-_", min_size=1, max_size=12)
odd_label = st.binary(min_size=1, max_size=8)
label = st.one_of(plain_label.map(str.encode), plain_label.map(str.encode), odd_label)
# a small pool of names under one suffix, so owners, targets and the question meet and compress
suffixes = st.sampled_from([b"example.com", b"Example.NET", b"a.b.c.d.e.f.g.h"])


@st.composite
def names(draw: st.DrawFn) -> dns.name.Name:
    head = draw(st.lists(label, min_size=0, max_size=3))
    suffix = draw(suffixes).split(b".")
    return dns.name.Name([*head, *suffix, b""])


def rdata_text(draw: st.DrawFn, rdtype: str, pool: list[dns.name.Name]) -> str:
    target = draw(st.sampled_from(pool)).to_text()
    if rdtype == "A":
        return ".".join(str(draw(st.integers(0, 255))) for _ in range(4))
    if rdtype == "AAAA":
        groups = draw(st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x1234, 0xABCD]), min_size=8, max_size=8))
        return ":".join(f"{g:x}" for g in groups)
    if rdtype == "MX":
        pref = draw(st.integers(0, 65535))
        return f"{pref} {target if draw(st.integers(0, 4)) else '.'}"
    if rdtype in ("CNAME", "NS"):
        return target
    if rdtype == "SOA":
        return f"{target} hostmaster.{target} {draw(st.integers(0, 2**32 - 1))} 3600 600 86400 300"
    return '"some text"'  # TXT: a type the lean codec leaves to dnspython


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, list[dns.name.Name]]:
    """A reply built by dnspython (which compresses names) from drawn sections."""
    pool = draw(st.lists(names(), min_size=1, max_size=5))
    qname = pool[0]
    draw(st.just(None))
    with _dnspython_entropy():
        return _message(draw, pool, qname)


class _dnspython_entropy:
    """dnspython's wire writer draws from ``random``; hypothesis wants strategies deterministic."""

    def __enter__(self) -> None:
        import random

        self.state = random.getstate()

    def __exit__(self, *exc: object) -> None:
        import random

        random.setstate(self.state)


def _message(draw: st.DrawFn, pool: list[dns.name.Name], qname: dns.name.Name) -> tuple[bytes, list[dns.name.Name]]:
    msg = dns.message.Message(id=draw(st.integers(0, 65535)))
    msg.flags = dns.flags.Flag(draw(st.integers(0, 0xFFFF)) & ~0x7800 | dns.flags.QR)  # opcode QUERY
    msg.set_rcode(draw(st.sampled_from([0, 0, 0, 3, 3, 2, 5, 1, 4, 9])))
    qtype = draw(st.sampled_from(QTYPES))
    msg.question.append(dns.rrset.RRset(qname, dns.rdataclass.IN, dns.rdatatype.from_text(qtype)))
    types = st.sampled_from(["A", "AAAA", "MX", "CNAME", "NS", "SOA", "A", "MX", "CNAME", "TXT"])
    for section, count in ((msg.answer, 4), (msg.authority, 2), (msg.additional, 2)):
        for _ in range(draw(st.integers(0, count))):
            rdtype = draw(types)
            owner = draw(st.sampled_from(pool))
            n = 1 if rdtype in ("CNAME", "SOA") else draw(st.integers(1, 3))
            texts = [rdata_text(draw, rdtype, pool) for _ in range(n)]
            try:
                rrset = dns.rrset.from_text(owner, draw(st.integers(0, 2**32 - 1)), "IN", rdtype, *texts)
            except (dns.exception.DNSException, ValueError):
                continue
            section.append(rrset)
    edns = draw(st.sampled_from([None, None, 0, 0, 1, "option"]))
    if edns == "option":
        msg.use_edns(0, payload=1232, options=[dns.edns.GenericOption(65001, b"x")])
    elif edns is not None:
        msg.use_edns(edns, payload=draw(st.sampled_from([512, 1232, 4096])))
        if draw(st.integers(0, 5)) == 0:
            msg.set_rcode(16)  # BADVERS, an extended RCODE
    try:
        data = msg.to_wire()
    except (dns.exception.DNSException, ValueError):
        assume(False)
    return data, pool


def assert_quick(data: bytes, pool: list[dns.name.Name]) -> int:
    """``codec.quick`` reads only what ``decode`` reads, the same way, and as dnspython classifies it;
    returns how many of the questions (the pool's names, each type) it read."""
    read = 0
    for name in pool:
        qname = name.to_text().lower()
        wire_name = codec.encode_name(qname)
        if wire_name is None:
            continue
        for qtype in QTYPES:
            question = codec.question_bytes(wire_name, codec.TYPES[qtype])
            hit = codec.quick(data, question, qname, codec.TYPES[qtype])
            if hit is None:
                continue
            read += 1
            lean = codec.decode(data, (question, qname))
            assert lean is not None, "quick read bytes decode leaves to dnspython"
            answer, flags = hit
            assert flags == lean.flags
            assert answer == codec.answer(lean, qname, qtype)
            ref = wire.decode(data)
            assert isinstance(ref, dns.message.Message)
            assert codec.Classified(*answer) == exchange.classify(ref, qname, qtype)
    return read


def assert_same(data: bytes, pool: list[dns.name.Name]) -> bool:
    """The lean reading equals dnspython's wherever the lean codec reads the bytes; True if it did."""
    assert_quick(data, pool)
    lean = codec.decode(data)
    ref = wire.decode(data)
    if lean is None:
        return False
    assert isinstance(ref, dns.message.Message), f"lean read bytes dnspython rejects: {ref}"
    assert (lean.id, lean.flags, lean.rcode) == (ref.id, int(ref.flags), ref.rcode())
    assert lean.rcode_text == wire.rcode_text(ref)
    assert wire.question_of(ref) == (lean.qname, dns.rdatatype.to_text(lean.qtype))
    for name in pool + [dns.name.from_text("nowhere.invalid.")]:
        qname = name.to_text().lower()
        for qtype in QTYPES:
            assert codec.classify(lean, qname, qtype) == exchange.classify(ref, qname, qtype), (qname, qtype)
    return True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_generated_replies(case: tuple[bytes, list[dns.name.Name]]) -> None:
    assert_same(*case)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages(), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 10_000))  # fmt: skip
def test_mutated_replies(case: tuple[bytes, list[dns.name.Name]], flips: list[tuple[int, int]], cut: int) -> None:
    """Flipped bytes and cut messages: whatever the lean codec still reads, dnspython reads the same."""
    data, pool = case
    assert_same(mutated(data, flips, cut if cut % 3 == 0 else None), pool)


def mutated(data: bytes, flips: list[tuple[int, int]], cut: int | None) -> bytes:
    """``data`` with bytes set at (offset, value) (offsets wrap around), cut off at ``cut`` if given."""
    raw = bytearray(data)
    for where, value in flips:
        raw[where % len(raw)] = value
    return bytes(raw if cut is None else raw[: cut % (len(raw) + 1)])


lower_label = st.text(alphabet="abcxyz019-_", min_size=1, max_size=12).map(str.encode)


@st.composite
def scan_replies(draw: st.DrawFn) -> tuple[bytes, list[dns.name.Name]]:
    """Replies shaped as a scan gets them (the lower-case question echoed, records of the type asked
    at its name, an SOA below), with now and then something the quick path must leave alone."""
    suffix = draw(st.sampled_from([b"example.com", b"a.b.c.d.e.f.g.h"])).split(b".")
    pool = [dns.name.Name([*draw(st.lists(lower_label, min_size=0, max_size=3)), *suffix, b""]) for _ in range(3)]
    qname = pool[0]
    qtype = draw(st.sampled_from(QTYPES))
    with _dnspython_entropy():
        msg = dns.message.Message(id=draw(st.integers(0, 65535)))
        msg.flags = dns.flags.Flag(draw(st.sampled_from([0x8180, 0x8580, 0x8380, 0x8100, 0x8980])))
        msg.set_rcode(draw(st.sampled_from([0, 0, 0, 3, 3, 2])))
        msg.question.append(dns.rrset.RRset(qname, dns.rdataclass.IN, dns.rdatatype.from_text(qtype)))
        for _ in range(draw(st.integers(0, 2))):
            rdtype = draw(st.sampled_from([qtype, qtype, qtype, qtype, "CNAME", "TXT"]))
            owner = qname if draw(st.integers(0, 5)) else draw(st.sampled_from(pool))
            n = 1 if rdtype == "CNAME" else draw(st.integers(1, 3))
            texts = [rdata_text(draw, rdtype, pool) for _ in range(n)]
            try:
                msg.answer.append(dns.rrset.from_text(owner, draw(st.integers(0, 2**32 - 1)), "IN", rdtype, *texts))
            except (dns.exception.DNSException, ValueError):
                pass
        for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
            rdtype = draw(st.sampled_from(["SOA", "SOA", "NS"]))
            owner = dns.name.Name([*suffix, b""])
            msg.authority.append(dns.rrset.from_text(owner, 300, "IN", rdtype, rdata_text(draw, rdtype, pool)))
        edns = draw(st.sampled_from([None, 0, 0, 0, "option"]))
        if edns == "option":
            msg.use_edns(0, payload=1232, options=[dns.edns.GenericOption(65001, b"x")])
        elif edns is not None:
            msg.use_edns(edns, payload=1232)
        try:
            data = msg.to_wire()
        except (dns.exception.DNSException, ValueError):
            assume(False)
    return data, pool


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scan_replies(), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=3),
       st.integers(0, 10_000))  # fmt: skip
def test_scan_shaped_replies(case: tuple[bytes, list[dns.name.Name]], flips: list[tuple[int, int]], cut: int) -> None:
    """The quick path on the replies it is for, as built and with bytes flipped or cut off."""
    data, pool = case
    assert_same(mutated(data, flips, cut if cut % 4 == 0 else None), pool)


def test_common_replies_take_the_lean_path() -> None:
    q = dns.message.make_query("mx.Example.com.", "MX", use_edns=0, payload=1232)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text("mx.example.com.", 300, "IN", "MX", "10 a.example.com.", "20 b.example.com."))
    r.additional.append(dns.rrset.from_text("a.example.com.", 300, "IN", "AAAA", "2001:db8::1"))
    nodata = dns.message.make_response(q)
    nodata.authority.append(dns.rrset.from_text("example.com.", 300, "IN", "SOA", "ns. host. 1 2 3 4 5"))
    pool = [dns.name.from_text("mx.example.com."), dns.name.from_text("a.example.com.")]
    for msg in (r, nodata):
        assert assert_same(msg.to_wire(), pool)
    # the replies a scan gets most take the quick path (the question echoed as it was sent)
    lower = dns.message.make_query("mx.example.com.", "MX", use_edns=0, payload=1232)
    for rcode, section, rrset in (
        (0, "answer", dns.rrset.from_text("mx.example.com.", 300, "IN", "MX", "10 a.example.com.", "0 .")),
        (0, "authority", dns.rrset.from_text("example.com.", 300, "IN", "SOA", "ns. host. 1 2 3 4 5")),
        (3, "authority", dns.rrset.from_text("example.com.", 300, "IN", "SOA", "ns. host. 1 2 3 4 5")),
    ):
        reply = dns.message.make_response(lower)
        reply.set_rcode(rcode)
        getattr(reply, section).append(rrset)
        assert assert_quick(reply.to_wire(), pool[:1]) == 1


@settings(max_examples=300, deadline=None)
@given(names(), st.integers(0, 65535), st.sampled_from(QTYPES), st.booleans())
@example(dns.name.from_text("example.com."), 0, "MX", True)
def test_queries_are_the_bytes_dnspython_builds(name: dns.name.Name, ident: int, qtype: str, edns: bool) -> None:
    text = name.to_text()
    lean_name = codec.encode_name(text)
    if lean_name is None:  # escapes and odd bytes: the engine builds those with dnspython
        assert any(label.translate(None, codec._PLAIN) for label in name.labels)
        return
    ours = codec.encode_query(ident, codec.question_bytes(lean_name, codec.TYPES[qtype]), edns=edns)
    assert ours == wire.encode_query(ident, text, qtype, rd=True, edns=0 if edns else None)


@settings(max_examples=500, deadline=None)
@given(st.lists(names(), min_size=1, max_size=6))
def test_name_cache_equals_encode_name(pool: list[dns.name.Name]) -> None:
    cache = codec.NameCache(4)
    for name in pool + pool[::-1]:
        text = name.to_text()
        assert cache.wire(text) == codec.encode_name(text), text


def recorded() -> list[tuple[str, bytes]]:
    out = []
    for line in DATA.read_text().splitlines():
        if line and not line.startswith("#"):
            source, hexdata = line.split()
            out.append((source, bytes.fromhex(hexdata)))
    return out


def test_recorded_replies() -> None:
    """Replies of the lab's authoritative servers and resolvers and of NSD, byte for byte."""
    replies = recorded()
    assert len(replies) >= 50
    lean = 0
    for source, data in replies:
        ref = wire.decode(data)
        if not isinstance(ref, dns.message.Message):  # the lab's broken AAAA: dnspython's to judge
            assert codec.decode(data) is None, source
            continue
        pool = [rr.name for section in (ref.question, ref.answer, ref.authority) for rr in section]
        for section in (ref.answer,):
            for rrset in section:
                pool.extend(rd.target for rd in rrset if hasattr(rd, "target"))
                pool.extend(rd.exchange for rd in rrset if hasattr(rd, "exchange"))
        lean += assert_same(data, pool)
    assert lean >= len(replies) * 0.8  # the common replies go the lean way


def _raw(address: str, port: int, name: str, qtype: str) -> bytes | None:
    import socket

    q = dns.message.make_query(name, qtype, use_edns=0, payload=1232)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1.0)
        sock.sendto(q.to_wire(), (address, port))
        try:
            return sock.recv(65535)
        except OSError:
            return None


def _record_replies() -> None:  # pragma: no cover - run with MXDOCTOR_RECORD=1 to rewrite the data file
    """Ask the lab's servers and resolvers (and the bench's NSD on 127.53.0.1:53, when it runs)."""
    from mxdoctor import lab

    lines = ["# source hex-wire: replies recorded from lab servers and resolvers and NSD (test_codec.py)"]
    hosts = ("mx1.example.com", "mail.example.net", "mail.example.com", "mx.example.com", "nosuch.example.com",
             "mx2.example.com", "www.example.com")  # fmt: skip
    for scenario in ("healthy", "aaaa-servfail", "mx-cname", "null-mx", "no-address", "domain-nxdomain",
                     "aaaa-broken", "multi-mx-partial", "ipv6-only-mx", "edns-intolerant"):  # fmt: skip
        with lab.running(scenario) as card:
            targets = [("internal", card.resolver("internal").address, card.resolver("internal").port)]
            targets += [(s.name, s.address, s.port) for s in card.servers if s.name.startswith("ns")][:2]
            for label, address, port in targets:
                for name in sorted({card.domains[0], *hosts}):
                    for qtype in ("MX", "A", "AAAA"):
                        data = _raw(address, port, name, qtype)
                        if data is not None:
                            lines.append(f"{scenario}/{label} {data.hex()}")
    for i in range(40):
        for name in (f"d{i}.bench.test", f"mx.d{i}.bench.test", f"mx1.d{i}.bench.test", f"gone.d{i}.bench.test"):
            for qtype in ("MX", "A", "AAAA"):
                data = _raw("127.53.0.1", 53, name, qtype)
                if data is not None:
                    lines.append(f"nsd {data.hex()}")
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text("\n".join(lines) + "\n")


if os.environ.get("MXDOCTOR_RECORD"):  # pragma: no cover
    _record_replies()
