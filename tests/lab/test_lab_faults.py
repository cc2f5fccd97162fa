"""Every fault kind, as a client sees it on the wire, from one lab server that carries them all."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import pytest
from _labwire import query, raw_query, raw_udp, rcode, texts

from _helpers import MINIMAL_SCENARIO, ask
from mxdoctor import lab as lab_mod
from mxdoctor.errors import ScenarioError
from mxdoctor.lab import faults, scenario

# One zone, one name per fault, so each test reads one behaviour; ns2 is the healthy control.
SCENARIO = """
description = "every fault kind on one server"
domains = ["example.com"]

[zones."example.com"]
text = '''
@          MX   10 mx1
mx1        A    127.0.0.25
servfail   A    127.0.0.25
nxdomain   A    127.0.0.25
refused    A    127.0.0.25
formerr    A    127.0.0.25
notimp     A    127.0.0.25
drop       A    127.0.0.25
delay      A    127.0.0.25
broken     A    127.0.0.25
wrongtype  A    127.0.0.25
noaa       A    127.0.0.25
trunc      A    127.0.0.25
tcpcut     A    127.0.0.25
edns       A    127.0.0.25
ednsdrop   A    127.0.0.25
lbnx       A    127.0.0.25
garbage    A    127.0.0.25
wrongid    A    127.0.0.25
wrongq     A    127.0.0.25
udponly    A    127.0.0.25
big        TXT  "{big}"
big        TXT  "{big2}"
big        TXT  "{big3}"
'''

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]
faults = [
  {{ kind = "rcode", rcode = "SERVFAIL", name = "servfail.example.com." }},
  {{ kind = "rcode", rcode = "NXDOMAIN", name = "nxdomain.example.com.", qtype = "AAAA" }},
  {{ kind = "rcode", rcode = "REFUSED", name = "refused.example.com." }},
  {{ kind = "rcode", rcode = "FORMERR", name = "formerr.example.com." }},
  {{ kind = "rcode", rcode = "NOTIMP", name = "notimp.example.com." }},
  {{ kind = "drop", name = "drop.example.com.", qtype = "AAAA" }},
  {{ kind = "delay", seconds = 0.4, name = "delay.example.com." }},
  {{ kind = "broken-aaaa", name = "broken.example.com." }},
  {{ kind = "wrong-type", name = "wrongtype.example.com.", qtype = "AAAA", rtype = "A" }},
  {{ kind = "no-aa", name = "noaa.example.com." }},
  {{ kind = "truncate", name = "trunc.example.com." }},
  {{ kind = "tcp-refuse", name = "tcpcut.example.com." }},
  {{ kind = "edns-formerr", name = "edns.example.com." }},
  {{ kind = "edns-drop", name = "ednsdrop.example.com." }},
  {{ kind = "lb-nxdomain", name = "lbnx.example.com.", qtype = "AAAA" }},
  {{ kind = "garbage", name = "garbage.example.com.", size = 40 }},
  {{ kind = "wrong-id", name = "wrongid.example.com." }},
  {{ kind = "wrong-question", name = "wrongq.example.com.", qname = "other.example.org." }},
  {{ kind = "rcode", rcode = "SERVFAIL", name = "udponly.example.com.", transport = "udp" }},
]

[[servers]]
name = "ns2.example.com"
address = "127.0.0.12"
zones = ["example.com"]
""".format(big="a" * 200, big2="b" * 200, big3="c" * 200)


@pytest.fixture(scope="module")
def card() -> Iterator[lab_mod.Card]:
    with lab_mod.running(scenario.parse(SCENARIO, source="faults.toml", name="faults")) as running:
        yield running


def ns1(card: lab_mod.Card) -> tuple[str, int]:
    endpoint = card.server("ns1.example.com")
    return endpoint.address, endpoint.port


@pytest.mark.parametrize("code", ["SERVFAIL", "REFUSED", "FORMERR", "NOTIMP"])
def test_rcode_fault_answers_that_rcode_with_no_records(card: lab_mod.Card, code: str) -> None:
    reply = query(*ns1(card), f"{code.lower()}.example.com", "A")
    assert rcode(reply) == code
    assert reply.answer == []
    assert not reply.flags & dns.flags.AA
    control = query(card.server("ns2.example.com").address, card.dns_port, f"{code.lower()}.example.com", "A")
    assert texts(control, "A") == ["127.0.0.25"]


def test_nxdomain_fault_is_authoritative_with_soa_and_only_for_its_type(card: lab_mod.Card) -> None:
    reply = query(*ns1(card), "nxdomain.example.com", "AAAA")
    assert rcode(reply) == "NXDOMAIN"
    assert reply.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in reply.authority] == [dns.rdatatype.SOA]
    assert texts(query(*ns1(card), "nxdomain.example.com", "A"), "A") == ["127.0.0.25"]


def test_lb_nxdomain_has_neither_aa_nor_soa(card: lab_mod.Card) -> None:
    reply = query(*ns1(card), "lbnx.example.com", "AAAA")
    assert rcode(reply) == "NXDOMAIN"
    assert not reply.flags & dns.flags.AA
    assert reply.authority == [] and reply.answer == []
    assert texts(query(*ns1(card), "lbnx.example.com", "A"), "A") == ["127.0.0.25"]


def test_drop_sends_nothing_for_its_type_only(card: lab_mod.Card) -> None:
    with pytest.raises(dns.exception.Timeout):
        query(*ns1(card), "drop.example.com", "AAAA", timeout=0.4)
    with pytest.raises(dns.exception.Timeout):
        query(*ns1(card), "drop.example.com", "AAAA", tcp=True, timeout=0.4)
    assert texts(query(*ns1(card), "drop.example.com", "A"), "A") == ["127.0.0.25"]


def test_delay_holds_the_answer(card: lab_mod.Card) -> None:
    started = time.monotonic()
    reply = query(*ns1(card), "delay.example.com", "A")
    assert time.monotonic() - started >= 0.38
    assert texts(reply, "A") == ["127.0.0.25"]
    started = time.monotonic()
    query(*ns1(card), "mx1.example.com", "A")
    assert time.monotonic() - started < 0.3


def test_broken_aaaa_sends_four_bytes_of_rdata(card: lab_mod.Card) -> None:
    with pytest.raises(dns.exception.FormError):
        query(*ns1(card), "broken.example.com", "AAAA")
    _, wire = raw_query(*ns1(card), "broken.example.com", "AAAA")
    assert wire is not None
    # type AAAA, class IN, any TTL, RDLENGTH 4, then the A address 127.0.0.25 (RFC 4074 §4.4).
    at = wire.find(b"\x00\x1c\x00\x01", 12 + len("broken.example.com") + 6)
    assert at > 0
    assert wire[at + 8 : at + 14] == b"\x00\x04\x7f\x00\x00\x19"
    assert texts(query(*ns1(card), "broken.example.com", "A"), "A") == ["127.0.0.25"]


def test_wrong_type_answers_aaaa_with_an_a_record(card: lab_mod.Card) -> None:
    reply = query(*ns1(card), "wrongtype.example.com", "AAAA")
    assert rcode(reply) == "NOERROR"
    assert texts(reply, "AAAA") == []
    assert texts(reply, "A") == ["127.0.0.25"]


def test_no_aa_clears_the_aa_bit(card: lab_mod.Card) -> None:
    reply = query(*ns1(card), "noaa.example.com", "A")
    assert texts(reply, "A") == ["127.0.0.25"]
    assert not reply.flags & dns.flags.AA
    assert query(*ns1(card), "mx1.example.com", "A").flags & dns.flags.AA


def test_truncate_sets_tc_over_udp_and_tcp_still_answers(card: lab_mod.Card) -> None:
    reply = query(*ns1(card), "trunc.example.com", "A")
    assert reply.flags & dns.flags.TC
    assert reply.answer == []
    over_tcp = query(*ns1(card), "trunc.example.com", "A", tcp=True)
    assert texts(over_tcp, "A") == ["127.0.0.25"]
    assert not over_tcp.flags & dns.flags.TC


def test_tcp_refuse_cuts_tcp_but_udp_answers(card: lab_mod.Card) -> None:
    with pytest.raises((ConnectionError, EOFError)):
        query(*ns1(card), "tcpcut.example.com", "A", tcp=True)
    assert texts(query(*ns1(card), "tcpcut.example.com", "A"), "A") == ["127.0.0.25"]


def test_edns_formerr_and_edns_drop_spare_plain_queries(card: lab_mod.Card) -> None:
    reply = query(*ns1(card), "edns.example.com", "A")
    assert rcode(reply) == "FORMERR"
    assert reply.edns == -1  # no OPT in the reply, as from a server that never heard of EDNS
    assert texts(query(*ns1(card), "edns.example.com", "A", edns=False), "A") == ["127.0.0.25"]
    with pytest.raises(dns.exception.Timeout):
        query(*ns1(card), "ednsdrop.example.com", "A", timeout=0.4)
    assert texts(query(*ns1(card), "ednsdrop.example.com", "A", edns=False), "A") == ["127.0.0.25"]


def test_garbage_does_not_parse(card: lab_mod.Card) -> None:
    _, wire = raw_query(*ns1(card), "garbage.example.com", "A")
    assert wire is not None and len(wire) == 40
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(wire)


def test_wrong_id_and_wrong_question(card: lab_mod.Card) -> None:
    sent_id, wire = raw_query(*ns1(card), "wrongid.example.com", "A")
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.id != sent_id
    assert texts(reply, "A") == ["127.0.0.25"]
    sent_id, wire = raw_query(*ns1(card), "wrongq.example.com", "A")
    assert wire is not None
    reply = dns.message.from_wire(wire)
    assert reply.id == sent_id
    assert reply.question[0].name.to_text() == "other.example.org."


def test_fault_limited_to_udp(card: lab_mod.Card) -> None:
    assert rcode(query(*ns1(card), "udponly.example.com", "A")) == "SERVFAIL"
    assert texts(query(*ns1(card), "udponly.example.com", "A", tcp=True), "A") == ["127.0.0.25"]


def test_udp_size_limits_truncate_and_tcp_carries_everything(card: lab_mod.Card) -> None:
    small = query(*ns1(card), "big.example.com", "TXT", edns=False)
    assert small.flags & dns.flags.TC and small.answer == []
    big = query(*ns1(card), "big.example.com", "TXT", payload=4096)
    assert not big.flags & dns.flags.TC and len(texts(big, "TXT")) == 3
    midsize = query(*ns1(card), "big.example.com", "TXT", payload=512)
    assert midsize.flags & dns.flags.TC
    assert len(texts(query(*ns1(card), "big.example.com", "TXT", tcp=True, edns=False), "TXT")) == 3


def test_unparseable_requests_get_formerr_or_silence(card: lab_mod.Card) -> None:
    address, port = ns1(card)
    header = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    reply = raw_udp(address, port, header + b"\x07example")  # question cut short
    assert reply is not None
    assert struct.unpack("!HH", reply[:4]) == (0x1234, 0x8000 | int(dns.rcode.FORMERR))
    assert raw_udp(address, port, b"\x01\x02\x03", timeout=0.3) is None
    # The server still answers properly afterwards, over a TCP stream sent in pieces.
    request = dns.message.make_query("mx1.example.com", "A").to_wire()
    with socket.create_connection((address, port), timeout=2) as sock:
        framed = struct.pack("!H", len(request)) + request
        sock.sendall(framed[:5])
        time.sleep(0.05)
        sock.sendall(framed[5:])
        length = struct.unpack("!H", sock.recv(2))[0]
        data = b""
        while len(data) < length:
            data += sock.recv(length - len(data))
    assert texts(dns.message.from_wire(data), "A") == ["127.0.0.25"]


def test_fault_matching_is_case_insensitive_and_typed() -> None:
    fault = faults.Fault.from_toml({"kind": "drop", "name": "MX1.Example.COM", "qtype": "aaaa"}, "f", "k")
    assert fault.name == "mx1.example.com." and fault.qtype == "AAAA"
    assert fault.matches("mx1.example.com.", "AAAA", "udp")
    assert not fault.matches("mx1.example.com.", "A", "udp")
    wildcard = faults.Fault("rcode", name="*.example.com.", transport="tcp")
    assert wildcard.matches("a.b.example.com.", "MX", "tcp")
    assert not wildcard.matches("a.b.example.com.", "MX", "udp")
    assert not wildcard.matches("example.com.", "MX", "tcp")
    assert faults.Fault("truncate").matches("x.", "A", "udp")
    assert not faults.Fault("truncate").matches("x.", "A", "tcp")
    assert set(faults.KINDS) >= {
        "rcode", "drop", "delay", "broken-aaaa", "wrong-type", "no-aa", "truncate", "tcp-refuse",
        "edns-formerr", "edns-drop", "lb-nxdomain", "garbage", "wrong-id", "wrong-question",
    }  # fmt: skip


@pytest.fixture
def extra_kind() -> Iterator[type[faults.Fault]]:
    """A kind defined here, as a developer would add one to faults.py: registered, then removed."""
    from dataclasses import dataclass

    @dataclass(frozen=True, kw_only=True)
    class AnswerTtl(faults.Fault, kind="test-answer-ttl"):
        """every answer record with the given TTL"""

        ttl: int = 7

        async def on_response(self, query: faults.Query, reply: dns.message.Message) -> dns.message.Message:
            for rrset in reply.answer:
                rrset.ttl = self.ttl
            return reply

    try:
        yield AnswerTtl
    finally:
        del faults.KINDS["test-answer-ttl"]


def test_a_new_kind_is_one_class_that_the_server_applies(extra_kind: type[faults.Fault]) -> None:
    text = MINIMAL_SCENARIO + 'faults = [{ kind = "test-answer-ttl", ttl = 42, name = "mx1.example.com." }]\n'
    loaded = scenario.parse(text, source="k.toml")
    (fault,) = loaded.server("ns1.example.com").faults
    assert isinstance(fault, extra_kind) and fault.to_toml() == {"kind": "test-answer-ttl", "name": "mx1.example.com.",
                                                                   "ttl": 42}
    with lab_mod.running(loaded) as card:
        ns1 = card.server("ns1.example.com")
        assert [r.ttl for r in ask(ns1, "mx1.example.com", "A").answer] == [42]
        assert [r.ttl for r in ask(ns1, "example.com", "MX").answer] == [3600]
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.ttl: expected `int`, got `str`"):
        scenario.parse(text.replace("ttl = 42", 'ttl = "x"'), source="k.toml")




def test_the_server_knows_no_kind_by_name() -> None:
    # The server modules apply faults through their hooks only: no kind name appears in them.
    from pathlib import Path

    lab_dir = Path(faults.__file__).parent
    for module in ("dnsserver.py", "authoritative.py", "resolver.py"):
        source = (lab_dir / module).read_text(encoding="utf-8")
        assert [k for k in faults.KINDS if f'"{k}"' in source] == [], module


def test_every_kind_round_trips_through_its_table() -> None:
    for kind, cls in faults.KINDS.items():
        fault = cls()
        assert faults.parse(fault.to_toml() | {"kind": kind}, "f", "k") == fault
        assert faults.Fault(kind) == fault
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.Fault("explode")
