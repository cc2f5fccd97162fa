"""The audit probe set as data: each probe's name, the query it sends (a ``QueryShape``), to which
name, and what a correct server answers. The audit run sends it; the audit checks judge by it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mxdoctor.dns import wire
from mxdoctor.dns.wire import QueryShape
from mxdoctor.evidence import Transport

UNKNOWN_TYPE = "TYPE65534"  # private-use type (RFC 6895 §3.1): never assigned, so always unknown
UNKNOWN_OPTION = 65001  # EDNS option code from the local/experimental range (RFC 6891 §9)
UNKNOWN_OPTION_DATA = b"mxdoctor"
UNKNOWN_EDNS_FLAG = 0x0040  # an undefined bit of the EDNS flags (only DO is defined)
UNKNOWN_OPCODE = 15  # unassigned opcode (RFC 6895 §2.2)
SMALL_BUFFER = 512


class Scope(enum.StrEnum):
    NAME = "name"  # asked for the mail domain and every MX host name
    ZONE = "zone"  # asked once per zone, at its apex (or a name derived from it)


@dataclass(frozen=True)
class ProbeSpec:
    """One probe: the query it sends and, in words, what a correct server answers."""

    name: str
    scope: Scope
    qtype: str
    expects: str
    rfc: str
    shape: QueryShape = QueryShape()
    dnssec: bool = False  # sent only to the servers of a zone whose parent publishes a DS for it


_T = Transport.TCP
N, Z = Scope.NAME, Scope.ZONE
_DO = QueryShape(do=True)

PROBES: tuple[ProbeSpec, ...] = (
    ProbeSpec("a", N, "A", "NOERROR (data or no data), AA set", "RFC 1035 §4.3.2"),
    ProbeSpec("aaaa", N, "AAAA", "NOERROR (data or no data), AA set; never SERVFAIL/NXDOMAIN/silence",
              "RFC 4074 §3"),
    ProbeSpec("mx", N, "MX", "NOERROR (data or no data), AA set", "RFC 5321 §5.1"),
    ProbeSpec("txt", N, "TXT", "NOERROR (data or no data), AA set", "RFC 1035 §3.3.14"),
    ProbeSpec("unknown-type", N, UNKNOWN_TYPE, "NOERROR with no data for a type the server does not know",
              "RFC 3597 §3"),
    ProbeSpec("case", N, "A", "the question echoed with the same letter case, same answer as `a`",
              "RFC 4343 §3, RFC 1035 §7.3"),
    ProbeSpec("soa", Z, "SOA", "NOERROR with the SOA, AA set (serial compared across servers)",
              "RFC 1034 §4.3.5"),
    ProbeSpec("ns", Z, "NS", "NOERROR with the NS set, AA set (compared across servers and the parent)",
              "RFC 1034 §4.2.2"),
    ProbeSpec("nxdomain", Z, "A", "NXDOMAIN with the SOA in the authority section, AA set",
              "RFC 2308 §2.1"),
    ProbeSpec("ent", Z, "A", "not NXDOMAIN for an empty non-terminal above an MX host", "RFC 8020 §2"),
    ProbeSpec("plain", Z, "SOA", "NOERROR without an OPT record", "RFC 1035 §4.1", QueryShape(edns=None)),
    ProbeSpec("edns", Z, "SOA", "NOERROR with an OPT record of version 0", "RFC 6891 §6.1.1"),
    ProbeSpec("edns1", Z, "SOA", "BADVERS with an OPT record of version 0", "RFC 6891 §6.1.3",
              QueryShape(edns=1)),
    ProbeSpec("ednsopt", Z, "SOA", "NOERROR, the unknown option ignored (not echoed)", "RFC 6891 §6.1.2",
              QueryShape(options=((UNKNOWN_OPTION, UNKNOWN_OPTION_DATA),))),
    ProbeSpec("ednsflags", Z, "SOA", "NOERROR, the undefined EDNS flag ignored (not echoed)",
              "RFC 6891 §6.1.4", QueryShape(ednsflags=UNKNOWN_EDNS_FLAG)),
    ProbeSpec("do512", Z, "MX", "a reply of at most 512 bytes: TC set when the answer does not fit",
              "RFC 6891 §7, RFC 1035 §4.2.1", QueryShape(do=True, payload=SMALL_BUFFER)),
    ProbeSpec("tcp", Z, "SOA", "NOERROR over TCP", "RFC 7766 §5", QueryShape(transport=_T, edns=None)),
    ProbeSpec("ednstcp", Z, "SOA", "NOERROR with OPT over TCP", "RFC 7766 §5, RFC 6891", QueryShape(transport=_T)),
    ProbeSpec("opcode", Z, "SOA", "NOTIMP for an unknown opcode", "RFC 1035 §4.1.1, RFC 6895 §2.2",
              QueryShape(opcode=UNKNOWN_OPCODE)),
    ProbeSpec("zflag", Z, "SOA", "NOERROR with the SOA; the Z bit ignored and clear in the reply",
              "RFC 1035 §4.1.1", QueryShape(z=True)),
    # DNSSEC, for signed zones: every answer to a DO query validates with the zone's keys
    ProbeSpec("dnskey", Z, "DNSKEY", "the DNSKEY set, signed by a key the parent's DS matches",
              "RFC 4035 §5.2", _DO, dnssec=True),
    ProbeSpec("rrsig-soa", Z, "SOA", "the SOA with a valid RRSIG", "RFC 4035 §3.1.1", _DO, dnssec=True),
    ProbeSpec("nxdomain-proof", Z, "A", "NXDOMAIN with the SOA's RRSIG and NSEC/NSEC3 proving the name and the "
              "wildcard do not exist", "RFC 4035 §3.1.3.2, RFC 5155 §7.2.2", _DO, dnssec=True),
    ProbeSpec("rrsig-mx", N, "MX", "the MX set with a valid RRSIG, or a proven NODATA", "RFC 4035 §3.1.1", _DO,
              dnssec=True),
    ProbeSpec("rrsig-a", N, "A", "the A set with a valid RRSIG, or a proven NODATA", "RFC 4035 §3.1.1", _DO,
              dnssec=True),
    ProbeSpec("rrsig-aaaa", N, "AAAA", "the AAAA set with a valid RRSIG, or a proven NODATA", "RFC 4035 §3.1.1",
              _DO, dnssec=True),
    ProbeSpec("nodata-proof", N, UNKNOWN_TYPE, "NODATA with the SOA's RRSIG and the NSEC/NSEC3 of the name "
              "without the type", "RFC 4035 §3.1.3.1, RFC 5155 §7.2.3", _DO, dnssec=True),
)  # fmt: skip
# the probe without DO that asks what each DNSSEC probe asks: how the server answers without DO
WITHOUT_DO = {"dnskey": "", "rrsig-soa": "soa", "nxdomain-proof": "nxdomain", "rrsig-mx": "mx", "rrsig-a": "a",
              "rrsig-aaaa": "aaaa", "nodata-proof": "unknown-type"}
BY_NAME = {p.name: p for p in PROBES}
ORDER = {p.name: i for i, p in enumerate(PROBES)}


def dig_command(spec: ProbeSpec, address: str, port: int, qname: str, qtype: str) -> str:
    """The dig command that sends what probe ``spec`` sent."""
    shape = spec.shape
    parts = ["dig", f"@{address}"]
    if port != 53:
        parts += ["-p", str(port)]
    parts += [qname, qtype] + ([] if shape.rd else ["+norecurse"])
    if shape.transport is Transport.TCP:
        parts.append("+tcp")
    if shape.edns is None:
        parts.append("+noedns")
    elif shape.edns:
        parts += [f"+edns={shape.edns}", "+noednsneg"]
    parts += [f"+ednsopt={code}:{data.hex()}" for code, data in shape.options]
    if shape.ednsflags:
        parts.append(f"+ednsflags=0x{shape.ednsflags:x}")
    if shape.do:
        parts.append("+dnssec")
    if shape.payload != wire.EDNS_PAYLOAD:
        parts += [f"+bufsize={shape.payload}", "+ignore"]
    if shape.opcode:
        parts.append(f"+opcode={shape.opcode}")
    if shape.z:
        parts.append("+zflag")
    return " ".join(parts)
