"""A small DNS tree on loopback for the engine tests, built from the lab's server and fault kinds.

root -> test. (two servers) -> example.test. (two servers), other.test. (glueless: its only server
is ns.example.test.), lame.test. (delegated to a server that refuses it); plus a "resolver" that
answers every zone with RD, standing in for an internal DNS server.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.zone

from mxdoctor import evidence
from mxdoctor.lab import authoritative, dnsserver
from mxdoctor.lab.faults import Fault

NET = "127.0.78."  # a loopback /24 of our own: never collides with a lab started elsewhere
ROOT, NIC1, NIC2, NS1, NS2, NS3, RESOLVER = (NET + str(i) for i in (1, 2, 3, 4, 5, 6, 53))
DEAD = NET + "99"  # nothing listens here: the kernel answers port unreachable

_SOA = "@ SOA ns1.nic.test. hostmaster.nic.test. 1 3600 600 86400 60"
ZONES: dict[str, str] = {
    ".": f"""$TTL 3600
@ SOA a.root.test. hostmaster.root.test. 1 3600 600 86400 60
@ NS a.root.test.
test. NS ns1.nic.test.
test. NS ns2.nic.test.
ns1.nic.test. A {NIC1}
ns2.nic.test. A {NIC2}
a.root.test. A {ROOT}
""",
    "test.": f"""$TTL 3600
{_SOA}
@ NS ns1.nic.test.
@ NS ns2.nic.test.
ns1.nic A {NIC1}
ns2.nic A {NIC2}
example NS ns1.example.test.
example NS ns2.example.test.
ns1.example A {NS1}
ns2.example A {NS2}
other NS ns.example.test.
lame NS ns1.example.test.
""",
    "example.test.": f"""$TTL 300
{_SOA}
@ NS ns1
@ NS ns2
ns1 A {NS1}
ns2 A {NS2}
ns A {NS3}
@ MX 10 mx
mx A 192.0.2.1
mx AAAA 2001:db8::1
alias MX 10 mx.other.test.
www CNAME mx.other.test.
dup MX 10 www
dup MX 20 mx.other.test.
big MX 10 mx
"""
    + "".join(f'big TXT "{"x" * 200} {i}"\n' for i in range(12)),
    "other.test.": """$TTL 300
@ SOA ns.example.test. hostmaster.other.test. 1 3600 600 86400 60
@ NS ns.example.test.
@ MX 10 mx
mx A 192.0.2.2
mx AAAA 2001:db8::2
""",
}

SERVES: dict[str, tuple[str, ...]] = {
    ROOT: (".",),
    NIC1: ("test.",),
    NIC2: ("test.",),
    NS1: ("example.test.",),
    NS2: ("example.test.",),
    NS3: ("other.test.",),
    RESOLVER: ("example.test.", "other.test."),
}


@dataclass
class Tree:
    port: int
    servers: dict[str, dnsserver.DnsServer]
    root_hints: Path

    def server(self, address: str) -> evidence.Server:
        return evidence.Server(address, self.port)

    def queries(self, address: str) -> list[tuple[str, str, str]]:
        return list(self.servers[address].queries)


def _zone(origin: str) -> dns.zone.Zone:
    return dns.zone.from_text(ZONES[origin], origin, relativize=False)


@contextlib.asynccontextmanager
async def tree(
    tmp: Path,
    faults: Mapping[str, Sequence[Fault]] | None = None,
    extra: Sequence[str] = (),
) -> AsyncIterator[Tree]:
    """Start every server of the tree on one free port (plus ``extra`` addresses serving as the
    resolver does, e.g. "::1"); stop them all on exit."""
    faults = faults or {}
    plan = dict(SERVES) | {address: SERVES[RESOLVER] for address in extra}
    for _ in range(20):
        port = random.randrange(20000, 60000)
        servers: dict[str, dnsserver.DnsServer] = {}
        try:
            for address, origins in plan.items():
                handler = authoritative.Authoritative([_zone(o) for o in origins])
                server = dnsserver.DnsServer(address, address, port, handler.handle, faults.get(address, ()))
                await server.start()
                servers[address] = server
        except OSError:
            for server in servers.values():
                await server.stop()
            continue
        hints = tmp / "named.root"
        hints.write_text(f".  3600000  NS  a.root.test.\na.root.test.  3600000  A  {ROOT}\n")
        try:
            yield Tree(port, servers, hints)
        finally:
            for server in servers.values():
                await server.stop()
        return
    raise RuntimeError("no free port for the test tree")
