"""Wire helpers for the lab tests: raw and dnspython queries to one lab server, and dig."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from dataclasses import dataclass

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

DIG = shutil.which("dig")


def query(
    address: str,
    port: int,
    qname: str,
    qtype: str,
    *,
    tcp: bool = False,
    edns: bool = True,
    payload: int = 1232,
    timeout: float = 2.0,
) -> dns.message.Message:
    """One query with dnspython; raises dns.exception.Timeout, ConnectionError, FormError as it happens."""
    request = dns.message.make_query(qname, qtype, use_edns=0 if edns else False, payload=payload)
    if tcp:
        return dns.query.tcp(request, address, port=port, timeout=timeout)
    return dns.query.udp(request, address, port=port, timeout=timeout)


def raw_udp(address: str, port: int, wire: bytes, timeout: float = 1.0) -> bytes | None:
    """Send bytes, return the first datagram back (or None on silence)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(wire, (address, port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def raw_query(address: str, port: int, qname: str, qtype: str, *, edns: bool = True) -> tuple[int, bytes | None]:
    request = dns.message.make_query(qname, qtype, use_edns=0 if edns else False)
    return request.id, raw_udp(address, port, request.to_wire())


def texts(message: dns.message.Message, rdtype: str | None = None) -> list[str]:
    """The answer records' data as text, of one type or all."""
    out = []
    for rrset in message.answer:
        if rdtype is None or rrset.rdtype == dns.rdatatype.from_text(rdtype):
            out.extend(rd.to_text() for rd in rrset)
    return sorted(out)


def rcode(message: dns.message.Message) -> str:
    return dns.rcode.to_text(message.rcode())


@dataclass(frozen=True)
class DigResult:
    status: str  # NOERROR, SERVFAIL, ... or "" when dig got no reply
    flags: frozenset[str]
    answer: tuple[str, ...]  # "name ttl class type rdata" lines
    output: str

    def rdatas(self, rdtype: str) -> list[str]:
        out = []
        for line in self.answer:
            parts = line.split(None, 4)
            if len(parts) == 5 and parts[3] == rdtype:
                out.append(parts[4])
        return sorted(out)


def dig(address: str, port: int, qname: str, qtype: str, *extra: str, timeout: float = 2.0) -> DigResult:
    assert DIG is not None
    command = [DIG, f"@{address}", "-p", str(port), qname, qtype, "+tries=1", f"+time={max(1, int(timeout))}"]
    command += list(extra)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout * 3 + 5, check=False)
    out = done.stdout
    status = ""
    match = re.search(r"status: ([A-Z]+)", out)
    if match:
        status = match.group(1)
    flags: frozenset[str] = frozenset()
    flag_match = re.search(r";; flags: ([a-z ]*);", out)
    if flag_match:
        flags = frozenset(flag_match.group(1).split())
    answer: list[str] = []
    section = False
    for line in out.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = True
            continue
        if section:
            if not line.strip() or line.startswith(";;"):
                section = False
                continue
            answer.append(" ".join(line.split()))
    return DigResult(status, flags, tuple(answer), out + done.stderr)
