"""Every built-in scenario, queried on the wire with dnspython and with dig: each fault as a client sees it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.rdatatype
import pytest
from _labwire import DIG, dig, query, rcode, texts

from mxdoctor import lab as lab_mod
from mxdoctor.lab import scenario as scenario_mod

NO_REPLY = "no-reply"  # the server stays silent
BROKEN = "broken"  # the reply does not parse
TCP_CUT = "tcp-cut"  # the TCP connection is closed without an answer


@dataclass(frozen=True)
class Wire:
    """One query to one lab server and what must come back."""

    server: str
    qname: str
    qtype: str
    outcome: str = "NOERROR"  # an RCODE, or NO_REPLY / BROKEN / TCP_CUT
    answer: tuple[str, ...] | None = None  # rdata of qtype in the answer section (None: not checked)
    aa: bool | None = None
    tc: bool | None = None
    edns: bool = True
    tcp: bool = False
    authority_ns: tuple[str, ...] | None = None  # NS targets of a referral
    timeout: float = 2.0

    def __str__(self) -> str:
        how = ("tcp" if self.tcp else "udp") + ("" if self.edns else " no-edns")
        return f"{self.qtype} {self.qname} @{self.server} ({how}) -> {self.outcome}"


A25 = ("127.0.0.25",)
MX1 = ("10 mx1.example.com.",)
ROOT = "a.root-servers.net"
TLD = "a.gtld-servers.net"

CHECKS: dict[str, list[Wire]] = {
    "healthy": [
        Wire("ns1.example.com", "example.com", "MX", answer=MX1, aa=True),
        Wire("ns2.example.com", "mx1.example.com", "AAAA", answer=(), aa=True),
        Wire("internal", "mx1.example.com", "A", answer=A25, aa=False),
        Wire("external", "example.com", "MX", answer=MX1),
        Wire(ROOT, "example.com", "MX", answer=(), aa=False, authority_ns=("a.gtld-servers.net.",)),
        Wire(TLD, "example.com", "MX", answer=(), aa=False, authority_ns=("ns1.example.com.", "ns2.example.com.")),
    ],
    "aaaa-servfail": [
        Wire("ns1.example.com", "example.com", "MX", answer=("10 mail.example.net.",), aa=True),
        Wire("ns1.example.net", "mail.example.net", "AAAA", "SERVFAIL", answer=()),
        Wire("ns2.example.net", "mail.example.net", "AAAA", "SERVFAIL", answer=()),
        Wire("ns1.example.net", "mail.example.net", "AAAA", "SERVFAIL", tcp=True),
        Wire("ns1.example.net", "mail.example.net", "A", answer=A25, aa=True),
        Wire("ns2.example.net", "mail.example.net", "A", answer=A25, aa=True),
        Wire("internal", "mail.example.net", "AAAA", "SERVFAIL"),
        Wire("internal", "mail.example.net", "A", answer=A25),
        Wire("external", "mail.example.net", "AAAA", "SERVFAIL"),
    ],
    "aaaa-nxdomain": [
        Wire("ns1.example.com", "mx1.example.com", "AAAA", "NXDOMAIN", aa=True),
        Wire("ns2.example.com", "mx1.example.com", "AAAA", "NXDOMAIN", aa=True),
        Wire("ns1.example.com", "mx1.example.com", "A", answer=A25, aa=True),
        Wire("internal", "mx1.example.com", "AAAA", "NXDOMAIN"),
        # RFC 4074 §4.2: the cached name error now denies the A record too.
        Wire("internal", "mx1.example.com", "A", "NXDOMAIN"),
    ],
    "aaaa-dropped": [
        Wire("ns1.example.com", "mx1.example.com", "AAAA", NO_REPLY, timeout=0.5),
        Wire("ns2.example.com", "mx1.example.com", "AAAA", NO_REPLY, timeout=0.5),
        Wire("ns1.example.com", "mx1.example.com", "A", answer=A25, aa=True),
        Wire("internal", "mx1.example.com", "AAAA", "SERVFAIL", timeout=6.0),
    ],
    "aaaa-refused": [
        Wire("ns1.example.com", "mx1.example.com", "AAAA", "REFUSED"),
        Wire("ns2.example.com", "mx1.example.com", "AAAA", "REFUSED"),
        Wire("ns2.example.com", "mx1.example.com", "A", answer=A25, aa=True),
        Wire("internal", "mx1.example.com", "AAAA", "SERVFAIL"),
        Wire("internal", "mx1.example.com", "A", answer=A25),
    ],
    "aaaa-broken": [
        Wire("ns1.example.com", "mx1.example.com", "AAAA", BROKEN),
        Wire("ns2.example.com", "mx1.example.com", "AAAA", BROKEN),
        Wire("ns1.example.com", "mx1.example.com", "A", answer=A25, aa=True),
        Wire("internal", "mx1.example.com", "AAAA", "SERVFAIL"),
        Wire("internal", "mx1.example.com", "A", answer=A25),
    ],
    "mx-servfail": [
        Wire("ns1.example.com", "example.com", "MX", "SERVFAIL"),
        Wire("ns2.example.com", "example.com", "MX", "SERVFAIL"),
        Wire("ns1.example.com", "mx1.example.com", "A", answer=A25, aa=True),
        Wire("internal", "example.com", "MX", "SERVFAIL"),
    ],
    "domain-nxdomain": [
        Wire(TLD, "exmaple.com", "MX", "NXDOMAIN", aa=True),
        Wire("internal", "exmaple.com", "MX", "NXDOMAIN"),
        Wire("external", "exmaple.com", "A", "NXDOMAIN"),
        Wire("internal", "example.com", "MX", answer=MX1),
    ],
    "null-mx": [
        Wire("ns1.example.com", "example.com", "MX", answer=("0 .",), aa=True),
        Wire("internal", "example.com", "MX", answer=("0 .",)),
    ],
    "mx-cname": [
        Wire("ns1.example.com", "example.com", "MX", answer=("10 mail.example.com.",), aa=True),
        Wire("ns1.example.com", "mail.example.com", "CNAME", answer=("mx1.example.com.",), aa=True),
        Wire("ns1.example.com", "mail.example.com", "A", answer=A25, aa=True),
        Wire("internal", "mail.example.com", "A", answer=A25),
    ],
    "no-address": [
        Wire("ns1.example.com", "mx1.example.com", "A", answer=(), aa=True),
        Wire("ns1.example.com", "mx1.example.com", "AAAA", answer=(), aa=True),
        Wire("internal", "mx1.example.com", "A", answer=()),
        Wire("internal", "example.com", "MX", answer=MX1),
    ],
    "lame-delegation": [
        Wire("ns1.example.com", "example.com", "MX", answer=MX1, aa=True),
        Wire("ns2.example.net", "example.com", "MX", answer=MX1, aa=False),
        Wire("ns2.example.net", "mx1.example.com", "A", answer=A25, aa=False),
        Wire(TLD, "example.com", "MX", answer=(), authority_ns=("ns1.example.com.", "ns2.example.net.")),
        Wire("internal", "mx1.example.com", "A", answer=A25),
    ],
    "ns-disagree": [
        Wire("ns1.example.com", "mx1.example.com", "AAAA", answer=(), aa=True),
        Wire("ns2.example.com", "mx1.example.com", "AAAA", "SERVFAIL"),
        Wire("ns2.example.com", "mx1.example.com", "A", answer=A25, aa=True),
        Wire("internal", "mx1.example.com", "AAAA", answer=()),
    ],
    "internal-resolver-stale": [
        Wire("internal", "mx1.example.com", "A", answer=("127.0.0.99",)),
        Wire("external", "mx1.example.com", "A", answer=A25),
        Wire("ns1.example.com", "mx1.example.com", "A", answer=A25, aa=True),
    ],
    "internal-forwarder-broken": [
        Wire("isp-forwarder", "example.com", "MX", NO_REPLY, timeout=0.5),
        Wire("internal", "example.com", "MX", "SERVFAIL", timeout=6.0),
        Wire("external", "example.com", "MX", answer=MX1),
        Wire("ns1.example.com", "example.com", "MX", answer=MX1, aa=True),
    ],
    "edns-intolerant": [
        Wire("ns1.example.com", "example.com", "MX", "FORMERR"),
        Wire("ns2.example.com", "example.com", "MX", "FORMERR"),
        Wire("ns1.example.com", "example.com", "MX", answer=MX1, aa=True, edns=False),
        Wire("internal", "example.com", "MX", answer=MX1),
    ],
    "edns-dropped": [
        Wire("ns1.example.com", "example.com", "MX", NO_REPLY, timeout=0.5),
        Wire("ns2.example.com", "example.com", "MX", NO_REPLY, timeout=0.5),
        Wire("ns1.example.com", "example.com", "MX", answer=MX1, aa=True, edns=False),
        Wire("internal", "example.com", "MX", "SERVFAIL", timeout=6.0),
    ],
    "tcp-refused-truncated": [
        Wire("ns1.example.com", "example.com", "MX", answer=(), tc=True),
        Wire("ns1.example.com", "example.com", "MX", TCP_CUT, tcp=True),
        Wire("ns2.example.com", "example.com", "MX", TCP_CUT, tcp=True),
        Wire("ns1.example.com", "mx01-relay-cluster-frankfurt.example.com", "A", answer=A25, aa=True),
        Wire("internal", "example.com", "MX", "SERVFAIL", timeout=6.0),
    ],
    "smtp-tempfail": [
        Wire("internal", "example.com", "MX", answer=MX1),
        Wire("internal", "mx1.example.com", "A", answer=A25),
    ],
    "ipv6-only-mx": [
        Wire("ns1.example.com", "mx6.example.com", "AAAA", answer=("::1",), aa=True),
        Wire("ns1.example.com", "mx6.example.com", "A", answer=(), aa=True),
        Wire("internal", "mx6.example.com", "AAAA", answer=("::1",)),
    ],
    "cname-loop": [
        Wire("ns1.example.com", "shop.example.com", "MX", aa=True),
        Wire("internal", "shop.example.com", "MX", "SERVFAIL"),
    ],
    "cname-chain": [
        Wire("ns1.example.com", "c50.example.com", "MX", answer=("10 mx1.example.com.",), aa=True),
        Wire("internal", "shop.example.com", "MX", "SERVFAIL"),
    ],
    "mx-literal": [
        Wire("ns1.example.com", "example.com", "MX", answer=("10 127.0.0.25.",), aa=True),
        Wire("internal", "127.0.0.25", "A", "NXDOMAIN"),
    ],
    "multi-mx-partial": [
        Wire("ns1.example.com", "example.com", "MX", answer=("10 mx1.example.com.", "20 mx2.example.com."), aa=True),
        Wire("ns1.example.com", "mx1.example.com", "A", "SERVFAIL"),
        Wire("ns2.example.com", "mx1.example.com", "AAAA", "SERVFAIL"),
        Wire("ns2.example.com", "mx2.example.com", "A", answer=("127.0.0.26",), aa=True),
        Wire("internal", "mx1.example.com", "A", "SERVFAIL"),
        Wire("internal", "mx2.example.com", "A", answer=("127.0.0.26",)),
    ],
    "a-servfail-aaaa-ok": [
        Wire("ns1.example.com", "mx1.example.com", "A", "SERVFAIL"),
        Wire("ns2.example.com", "mx1.example.com", "AAAA", answer=("::1",), aa=True),
        Wire("internal", "mx1.example.com", "AAAA", answer=("::1",)),
        Wire("internal", "mx1.example.com", "A", "SERVFAIL"),
    ],
    "a-servfail-aaaa-refused": [
        Wire("ns2.example.com", "mx1.example.com", "A", "SERVFAIL"),
        Wire("internal", "mx1.example.com", "AAAA", answer=("::1",)),
    ],
    "mx-nxdomain": [
        Wire("ns1.example.com", "example.com", "MX", answer=MX1, aa=True),
        Wire("ns2.example.com", "mx1.example.com", "A", "NXDOMAIN", aa=True),
        Wire("internal", "mx1.example.com", "AAAA", "NXDOMAIN"),
        Wire("internal", "mail.example.com", "A", answer=A25),
    ],
    "no-mx": [
        Wire("ns1.example.com", "example.com", "MX", answer=(), aa=True),
        Wire("ns2.example.com", "example.com", "A", answer=(), aa=True),
        Wire("internal", "example.com", "AAAA", answer=()),
    ],
    "smtp-refused": [
        Wire("internal", "example.com", "MX", answer=MX1),
        Wire("internal", "mx1.example.com", "A", answer=("127.0.0.45",)),
    ],
}


def test_every_builtin_scenario_has_wire_checks() -> None:
    # the audit-* scenarios are checked by tests/audit, the dnssec-* ones by tests/lab/test_lab_dnssec.py
    assert sorted(CHECKS) == [n for n in scenario_mod.builtin_names() if not n.startswith(("audit-", "dnssec-"))]

    assert all(CHECKS.values()), [name for name, wires in CHECKS.items() if not wires]


def _check_dnspython(card: lab_mod.Card, wire: Wire) -> None:
    endpoint = card.server(wire.server)
    try:
        reply = query(
            endpoint.address,
            endpoint.port,
            wire.qname,
            wire.qtype,
            tcp=wire.tcp,
            edns=wire.edns,
            timeout=wire.timeout,
        )
    except dns.exception.Timeout:
        assert wire.outcome == NO_REPLY, f"{wire}: timed out"
        return
    except dns.exception.FormError:
        assert wire.outcome == BROKEN, f"{wire}: reply does not parse"
        return
    except (ConnectionError, EOFError):
        assert wire.outcome == TCP_CUT, f"{wire}: connection closed"
        return
    assert rcode(reply) == wire.outcome, f"{wire}: got {rcode(reply)}"
    if wire.answer is not None:
        assert texts(reply, wire.qtype) == sorted(wire.answer), f"{wire}: answer {reply.answer}"
    if wire.aa is not None:
        assert bool(reply.flags & dns.flags.AA) == wire.aa, f"{wire}: AA"
    if wire.tc is not None:
        assert bool(reply.flags & dns.flags.TC) == wire.tc, f"{wire}: TC"
    if wire.authority_ns is not None:
        ns = sorted(rd.to_text() for rrset in reply.authority if rrset.rdtype == dns.rdatatype.NS for rd in rrset)
        assert ns == sorted(wire.authority_ns), f"{wire}: referral {reply.authority}"
    if wire.edns and endpoint.role == "authoritative" and wire.outcome == "NOERROR":
        assert reply.edns == 0, f"{wire}: EDNS query answered without OPT"


@pytest.mark.parametrize("lab", sorted(CHECKS), indirect=True)
def test_builtin_on_the_wire_with_dnspython(lab: lab_mod.Card) -> None:
    for wire in CHECKS[lab.scenario]:
        _check_dnspython(lab, wire)


@pytest.mark.skipif(DIG is None, reason="dig (Debian dnsutils) is not installed")
@pytest.mark.parametrize("lab", sorted(CHECKS), indirect=True)
def test_builtin_on_the_wire_with_dig(lab: lab_mod.Card) -> None:
    for wire in CHECKS[lab.scenario]:
        endpoint = lab.server(wire.server)
        extra = ["+norecurse"] if endpoint.role == "authoritative" else []
        extra += ["+tcp"] if wire.tcp else ["+ignore", "+notcp"]
        if not wire.edns:
            extra.append("+noedns")
        else:
            extra.append("+nocookie")
        started = time.monotonic()
        result = dig(endpoint.address, endpoint.port, wire.qname, wire.qtype, *extra, timeout=max(1.0, wire.timeout))
        if wire.outcome in (NO_REPLY, TCP_CUT):
            assert result.status == "", f"{wire}: dig got {result.output}"
            continue
        if wire.outcome == BROKEN:
            assert "malformed" in result.output.lower() or result.status == "", f"{wire}: {result.output}"
            continue
        assert result.status == wire.outcome, f"{wire}: dig said {result.output}"
        if wire.answer is not None:
            assert result.rdatas(wire.qtype) == sorted(wire.answer), f"{wire}: {result.output}"
        if wire.aa is not None:
            assert ("aa" in result.flags) == wire.aa, f"{wire}: {result.output}"
        if wire.tc is not None:
            assert ("tc" in result.flags) == wire.tc, f"{wire}: {result.output}"
        assert time.monotonic() - started < wire.timeout * 3 + 5
