"""A small DNS hierarchy on loopback for the resolver tests: root, test., example.test. (two servers),
hoster.test. (also serving other.test., behind a glueless delegation), with per-server faults.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import dns.asyncquery
import dns.message
import dns.rdatatype
import dns.zone

from _helpers import free_port
from mxdoctor.lab import authoritative, dnsserver, faults, resolver

# A /24 of loopback of our own, so these tests never collide with a lab started elsewhere on this host.
NET = "127.0.77."
ROOT, TLD, NS1, NS2, HOSTER, RESOLVER, FORWARDING = (NET + str(i) for i in (1, 2, 3, 4, 5, 53, 54))
DEAD = NET + "99"  # nothing ever listens here

ZONES: dict[str, str] = {
    ".": f"""
$TTL 3600
@ SOA a.root.test. hostmaster.root.test. 1 3600 600 86400 60
@ NS a.root.test.
test. NS ns.nic.test.
ns.nic.test. A {TLD}
a.root.test. A {ROOT}
""",
    "test.": f"""
$TTL 3600
@ SOA ns.nic.test. hostmaster.nic.test. 1 3600 600 86400 60
@ NS ns.nic.test.
ns.nic.test. A {TLD}
example NS ns1.example.test.
example NS ns2.example.test.
ns1.example A {NS1}
ns2.example A {NS2}
hoster NS ns.hoster.test.
ns.hoster A {HOSTER}
; glueless: the name server's name lives in another zone, so this zone has no address for it
other NS ns3.example.test.
; unresolvable: the name server's name lies inside the delegated zone and there is no glue
loop NS ns.loop.test.
""",
    "example.test.": f"""
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 1
@ NS ns1
@ NS ns2
@ MX 10 mx
ns1 A {NS1}
ns2 A {NS2}
ns3 A {HOSTER}
mx A 127.0.77.25
mx6 AAAA 2001:db8::25
short 1 A 127.0.77.26
www CNAME web.other.test.
alias CNAME mx
ring1 CNAME ring2
ring2 CNAME ring1
big TXT {" ".join('"' + "x" * 200 + '"' for _ in range(8))}
""",
    "hoster.test.": f"""
$TTL 300
@ SOA ns hostmaster 1 3600 600 86400 1
@ NS ns
ns A {HOSTER}
""",
    "other.test.": """
$TTL 300
@ SOA ns3.example.test. hostmaster.hoster.test. 1 3600 600 86400 1
@ NS ns3.example.test.
web A 127.0.77.80
""",
}

SERVERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "root": (ROOT, (".",)),
    "tld": (TLD, ("test.",)),
    "ns1": (NS1, ("example.test.",)),
    "ns2": (NS2, ("example.test.",)),
    "hoster": (HOSTER, ("hoster.test.", "other.test.")),
}
ROOT_HINTS = (("a.root.test.", ROOT),)




@dataclass
class MiniLab:
    port: int
    servers: dict[str, dnsserver.DnsServer]
    resolver: resolver.RecursiveResolver

    def upstream_count(
        self, qname: str, qtype: str, servers: Sequence[str] = ("ns1", "ns2", "hoster")
    ) -> int:
        """How many queries for (qname, qtype) the given servers (by default, the leaf zones') have seen."""
        qname = qname.lower().rstrip(".") + "."
        return sum(
            1
            for name in servers
            for (seen_name, seen_type, _) in self.servers[name].queries
            if seen_name == qname and seen_type == qtype
        )

    async def ask(
        self, qname: str, qtype: str, *, address: str = RESOLVER, rd: bool = True, timeout: float = 8.0
    ) -> dns.message.Message:
        query = dns.message.make_query(qname, qtype)
        if not rd:
            query.flags &= ~dns.flags.RD
        return await dns.asyncquery.udp(query, address, timeout=timeout, port=self.port)


@contextlib.asynccontextmanager
async def mini_lab(
    server_faults: Mapping[str, Sequence[faults.Fault]] | None = None,
    **resolver_options: object,
) -> AsyncIterator[MiniLab]:
    """Start the hierarchy and a resolver on RESOLVER; stop everything on exit."""
    server_faults = server_faults or {}
    port = free_port(*[address for address, _ in SERVERS.values()], RESOLVER, FORWARDING)
    zones = {
        origin: dns.zone.from_text(text, origin=origin, relativize=False, check_origin=True)
        for origin, text in ZONES.items()
    }
    servers: dict[str, dnsserver.DnsServer] = {}
    recursive = resolver.RecursiveResolver(ROOT_HINTS, port, **resolver_options)  # type: ignore[arg-type]
    try:
        for name, (address, origins) in SERVERS.items():
            handler = authoritative.Authoritative([zones[o] for o in origins])
            servers[name] = dnsserver.DnsServer(
                name, address, port, handler.handle, server_faults.get(name, ())
            )
        servers["resolver"] = dnsserver.DnsServer(
            "resolver", RESOLVER, port, recursive.handle, server_faults.get("resolver", ())
        )
        for server in servers.values():
            await server.start()
        yield MiniLab(port, servers, recursive)
    finally:
        for server in servers.values():
            await server.stop()


def rdtexts(response: dns.message.Message, rdtype: str) -> list[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset)
