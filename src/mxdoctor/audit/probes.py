"""The audit probe set as data: what each probe sends, to which name, and what it expects (pure).

A probe is either per audited name (the mail domain and every MX host) or per zone (asked at the
apex once per server). ``judge`` in ``mxdoctor.audit.judge`` reads the expectations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mxdoctor.evidence import Transport

UNKNOWN_TYPE = "TYPE65534"  # private-use type (RFC 6895 §3.1): never assigned, so always unknown
UNKNOWN_OPTION = 65001  # EDNS option code from the local/experimental range (RFC 6891 §9)
UNKNOWN_EDNS_FLAG = 0x0040  # an undefined bit of the EDNS flags (only DO is defined)
Z_FLAG = 0x0040  # the header's Z bit (RFC 1035 §4.1.1: must be zero)
UNKNOWN_OPCODE = 15  # unassigned opcode (RFC 6895 §2.2)
SMALL_BUFFER = 512
NONEXISTENT_LABEL = "mxdoctor-nonexistent-probe"


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
    transport: Transport = Transport.UDP
    edns: int | None = 0
    do: bool = False
    payload: int = 1232
    option: bool = False
    edns_flag: bool = False
    opcode: int = 0
    zflag: bool = False


_U, _T = Transport.UDP, Transport.TCP
N, Z = Scope.NAME, Scope.ZONE

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
    ProbeSpec("plain", Z, "SOA", "NOERROR without an OPT record", "RFC 1035 §4.1", edns=None),
    ProbeSpec("edns", Z, "SOA", "NOERROR with an OPT record of version 0", "RFC 6891 §6.1.1"),
    ProbeSpec("edns1", Z, "SOA", "BADVERS with an OPT record of version 0", "RFC 6891 §6.1.3", edns=1),
    ProbeSpec("ednsopt", Z, "SOA", "NOERROR, the unknown option ignored (not echoed)", "RFC 6891 §6.1.2",
              option=True),
    ProbeSpec("ednsflags", Z, "SOA", "NOERROR, the undefined EDNS flag ignored (not echoed)",
              "RFC 6891 §6.1.4", edns_flag=True),
    ProbeSpec("do512", Z, "MX", "a reply of at most 512 bytes: TC set when the answer does not fit",
              "RFC 6891 §7, RFC 1035 §4.2.1", do=True, payload=SMALL_BUFFER),
    ProbeSpec("tcp", Z, "SOA", "NOERROR over TCP", "RFC 7766 §5", transport=_T, edns=None),
    ProbeSpec("ednstcp", Z, "SOA", "NOERROR with OPT over TCP", "RFC 7766 §5, RFC 6891", transport=_T),
    ProbeSpec("opcode", Z, "SOA", "NOTIMP for an unknown opcode", "RFC 1035 §4.1.1, RFC 6895 §2.2",
              opcode=UNKNOWN_OPCODE),
    ProbeSpec("zflag", Z, "SOA", "NOERROR with the SOA; the Z bit ignored and clear in the reply",
              "RFC 1035 §4.1.1", zflag=True),
)
BY_NAME = {p.name: p for p in PROBES}
ORDER = {p.name: i for i, p in enumerate(PROBES)}
# Probes whose answers must carry AA: every query for data the server is authoritative for.
AUTHORITATIVE_PROBES = frozenset(
    {"a", "aaaa", "mx", "txt", "unknown-type", "case", "soa", "ns", "nxdomain", "ent", "plain", "edns",
     "ednsopt", "ednsflags", "tcp", "ednstcp", "zflag"}
)  # fmt: skip
EDNS_DERIVED = frozenset({"edns1", "ednsopt", "ednsflags", "do512", "ednstcp"})


def mixed_case(name: str) -> str:
    """``example.com.`` -> ``ExAmPlE.CoM.``: the letter case a 0x20-style resolver might send."""
    out: list[str] = []
    upper = True
    for ch in name:
        if ch.isalpha():
            out.append(ch.upper() if upper else ch.lower())
            upper = not upper
        else:
            out.append(ch)
    return "".join(out)


def nonexistent(zone: str) -> str:
    return f"{NONEXISTENT_LABEL}.{zone}" if zone != "." else f"{NONEXISTENT_LABEL}."


def empty_nonterminals(zone: str, names: list[str]) -> list[str]:
    """Names strictly between ``zone`` and each of ``names`` (in the zone): they exist (as empty
    non-terminals at least) because a name below them does, so NXDOMAIN for them is wrong."""
    out: list[str] = []
    suffix = "" if zone == "." else zone
    for name in names:
        if name == zone or not name.endswith("." + suffix if suffix else "."):
            continue
        labels = name[: len(name) - len(suffix)].rstrip(".").split(".")
        for i in range(1, len(labels)):
            candidate = ".".join(labels[i:]) + "." + suffix
            if candidate not in out and candidate not in names:
                out.append(candidate)
    return out


def dig_command(spec: ProbeSpec, address: str, port: int, qname: str, qtype: str) -> str:
    """The dig command that sends what probe ``spec`` sent."""
    parts = ["dig", f"@{address}"]
    if port != 53:
        parts += ["-p", str(port)]
    parts += [qname, qtype, "+norecurse"]
    if spec.transport is Transport.TCP:
        parts.append("+tcp")
    if spec.edns is None:
        parts.append("+noedns")
    elif spec.edns:
        parts += [f"+edns={spec.edns}", "+noednsneg"]
    if spec.option:
        parts.append(f"+ednsopt={UNKNOWN_OPTION}:6d78646f63746f72")
    if spec.edns_flag:
        parts.append(f"+ednsflags=0x{UNKNOWN_EDNS_FLAG:x}")
    if spec.do:
        parts += ["+dnssec", f"+bufsize={spec.payload}", "+ignore"]
    if spec.opcode:
        parts.append(f"+opcode={spec.opcode}")
    if spec.zflag:
        parts.append("+zflag")
    return " ".join(parts)
