"""Helpers every suite shares: a free port, whether ::1 exists, one DNS query to a lab server, the
stage of an SMTP probe by name, the smallest scenario (``from _helpers import ...``: tests/ is on sys.path)."""

from __future__ import annotations

import contextlib
import functools
import random
import socket
from typing import Protocol

import dns.message
import dns.query

from mxdoctor import evidence

# The smallest scenario: one zone, one server; tests add keys at its end (a fault goes on the server).
MINIMAL_SCENARIO = """
description = "minimal"
domains = ["example.com"]

[zones."example.com"]
text = "@ MX 10 mx1\\nmx1 A 127.0.0.25"

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]
"""

# What load balancers send (dnsdist's RCodeAction): NXDOMAIN without AA and without SOA, for mx1's AAAA.
LB_NXDOMAIN = """
description = "Both servers of example.com answer AAAA of mx1 with NXDOMAIN, no AA, no SOA."
domains = ["example.com"]

[zones."example.com"]
text = '''
@     MX  10 mx1
mx1   A   127.0.0.25
'''

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]
faults = [{ kind = "lb-nxdomain", name = "mx1.example.com.", qtype = "AAAA" }]

[[servers]]
name = "ns2.example.com"
address = "127.0.0.12"
zones = ["example.com"]
faults = [{ kind = "lb-nxdomain", name = "mx1.example.com.", qtype = "AAAA" }]
"""


@functools.cache
def has_ipv6() -> bool:
    """Whether ::1 can be bound here (some containers have no IPv6 loopback)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port(*addresses: str) -> int:
    """A port free for UDP and TCP on every address (default 127.0.0.1) right now: the lab uses one
    port for all its servers. Others may still take it before the caller binds it."""
    hosts = addresses or ("127.0.0.1",)
    for _ in range(200):
        port = random.randint(20000, 60000)
        try:
            with contextlib.ExitStack() as stack:
                for host in hosts:
                    family = socket.AF_INET6 if ":" in host else socket.AF_INET
                    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                        stack.enter_context(socket.socket(family, kind)).bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port on {', '.join(hosts)}")


class Endpoint(Protocol):
    address: str
    port: int


def ask(
    endpoint: Endpoint, qname: str, qtype: str, *, tcp: bool = False, edns: bool = True, timeout: float = 8.0
) -> dns.message.Message:
    """One query with dnspython (EDNS 0, buffer 1232) to a lab server (``card.server(...)``, ``card.resolver(...)``)."""
    request = dns.message.make_query(qname, qtype, use_edns=0 if edns else False, payload=1232)
    if tcp:
        return dns.query.tcp(request, endpoint.address, port=endpoint.port, timeout=timeout)
    return dns.query.udp(request, endpoint.address, port=endpoint.port, timeout=timeout)


def stage(probe: evidence.SmtpProbe, name: str) -> evidence.SmtpStage:
    """The last stage of that name in an SMTP probe (a retried stage appears twice); fails if none."""
    found = [s for s in probe.stages if s.stage == name]
    assert found, f"no {name} stage in {[s.stage for s in probe.stages]}"
    return found[-1]
