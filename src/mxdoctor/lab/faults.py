"""Lab faults: the ways a lab DNS server misbehaves, one kind per entry, as scenario data.

A fault is declared per server and per (name pattern, query type, transport); ``DnsServer`` applies
the matching faults before its handler runs (drop, rcode, delay, EDNS) or to the reply (the rest).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype

from mxdoctor.errors import ScenarioError

# kind -> (acts before the handler, one-line summary, RFC 4074 section it reproduces or "")
KINDS: dict[str, tuple[bool, str, str]] = {
    "rcode": (True, "answer with the given RCODE and no records", "4.2 / 4.3"),
    "drop": (True, "send no answer at all", "4.1"),
    "delay": (True, "wait `seconds` before answering (other faults still apply)", ""),
    "edns-formerr": (True, "answer FORMERR to queries that carry an OPT record", ""),
    "edns-drop": (True, "send no answer to queries that carry an OPT record", ""),
    "lb-nxdomain": (True, "answer NXDOMAIN without AA and without SOA, as load balancers and dnsdist do", "4.2"),
    "tcp-refuse": (True, "close TCP connections at once, without an answer", ""),
    "broken-aaaa": (False, "answer AAAA with 4-byte rdata (the name's A address)", "4.4"),
    "wrong-type": (False, "answer with records of another type (`rtype`, default A)", "4.4"),
    "no-aa": (False, "clear the AA bit: a lame answer", "4.5"),
    "truncate": (False, "set TC with an empty answer (UDP only unless `transport` says otherwise)", ""),
    "garbage": (False, "reply with `size` random bytes that do not parse", ""),
    "wrong-id": (False, "reply with another message ID", ""),
    "wrong-question": (False, "reply with another question name (`qname`)", ""),
    # misbehaviours the audit probes look for (docs/audit.md)
    "edns-version-ignore": (True, "answer queries of any EDNS version as version 0 (no BADVERS)", ""),
    "edns-option-formerr": (True, "answer FORMERR to queries that carry any EDNS option", ""),
    "edns-flags-formerr": (True, "answer FORMERR to queries with an undefined EDNS flag set", ""),
    "opcode-drop": (True, "send no answer to queries whose opcode is not QUERY", ""),
    "zflag-formerr": (True, "answer FORMERR to queries with the header's Z bit set", ""),
    "ignore-payload": (False, "ignore the EDNS buffer size over UDP: the whole answer, never TC", ""),
    "qname-lowercase": (False, "lower-case the question name in the reply", ""),
    "no-soa": (False, "leave the SOA out of negative answers (NXDOMAIN and no data)", ""),
    "stale-serial": (False, "serve the SOA serial one lower: a secondary that missed an update", ""),
}

RCODES = ("SERVFAIL", "NXDOMAIN", "REFUSED", "FORMERR", "NOTIMP", "NOERROR", "YXDOMAIN", "NOTAUTH")
TRANSPORTS = ("*", "udp", "tcp")
_ALLOWED_KEYS = {
    "kind",
    "name",
    "qtype",
    "transport",
    "rcode",
    "seconds",
    "rtype",
    "size",
    "qname",
    "aa",
}


@dataclass(frozen=True)
class Fault:
    """One misbehaviour of one lab DNS server.

    ``name`` is an fnmatch pattern over the lower-case query name with its trailing dot; ``qtype``
    a type mnemonic or ``*``; ``transport`` ``udp``, ``tcp`` or ``*``. The other fields are
    parameters of particular kinds (see ``KINDS`` and docs/lab.md).
    """

    kind: str
    name: str = "*"
    qtype: str = "*"
    transport: str = "*"
    rcode: str = "SERVFAIL"
    seconds: float = 0.0
    rtype: str = "A"
    size: int = 48
    qname: str = "wrong-question.invalid."
    aa: bool | None = None  # for rcode: set AA on the reply (default: only for NXDOMAIN)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    @property
    def before_handler(self) -> bool:
        return KINDS[self.kind][0]

    def matches(self, qname: str, qtype: str, transport: str) -> bool:
        """Whether this fault applies to a query; ``qname`` is lower case with its trailing dot."""
        if self.transport != "*" and self.transport != transport:
            return False
        if self.kind == "truncate" and self.transport == "*" and transport != "udp":
            return False
        if self.qtype != "*" and self.qtype != qtype.upper():
            return False
        return fnmatch.fnmatchcase(qname, self.name)

    @property
    def rcode_value(self) -> dns.rcode.Rcode:
        return dns.rcode.from_text(self.rcode)

    @property
    def sets_aa(self) -> bool:
        return self.aa if self.aa is not None else self.rcode == "NXDOMAIN"

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], source: str, key: str) -> Fault:
        """Build a fault from one TOML table; raise ScenarioError naming ``source`` and ``key``."""
        if not isinstance(table, Mapping):
            raise ScenarioError(source, key, "a fault must be a table with at least `kind`")
        unknown = sorted(set(table) - _ALLOWED_KEYS)
        if unknown:
            raise ScenarioError(source, f"{key}.{unknown[0]}", f"unknown fault key (allowed: {_keys()})")
        kind = table.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            raise ScenarioError(source, f"{key}.kind", f"must be one of {', '.join(KINDS)}; got {kind!r}")
        args: dict[str, Any] = {"kind": kind}
        if "name" in table:
            args["name"] = _name_pattern(table["name"], source, f"{key}.name")
        if "qtype" in table:
            args["qtype"] = _qtype(table["qtype"], source, f"{key}.qtype")
        if "transport" in table:
            transport = table["transport"]
            if transport not in TRANSPORTS:
                raise ScenarioError(source, f"{key}.transport", f"must be udp, tcp or *; got {transport!r}")
            args["transport"] = transport
        if "rcode" in table:
            rcode = table["rcode"]
            if not isinstance(rcode, str) or rcode.upper() not in RCODES:
                problem = f"must be one of {', '.join(RCODES)}; got {rcode!r}"
                raise ScenarioError(source, f"{key}.rcode", problem)
            args["rcode"] = rcode.upper()
        elif kind == "rcode":
            raise ScenarioError(source, f"{key}.rcode", "missing: a fault of kind rcode needs `rcode`")
        if "seconds" in table:
            seconds = table["seconds"]
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not math.isfinite(seconds)
                or not 0 <= seconds <= 60
            ):
                problem = f"must be a number from 0 to 60; got {seconds!r}"
                raise ScenarioError(source, f"{key}.seconds", problem)
            args["seconds"] = float(seconds)
        elif kind == "delay":
            raise ScenarioError(source, f"{key}.seconds", "missing: a fault of kind delay needs `seconds`")
        if "rtype" in table:
            args["rtype"] = _qtype(table["rtype"], source, f"{key}.rtype")
        if "size" in table:
            size = table["size"]
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 4096:
                raise ScenarioError(source, f"{key}.size", f"must be an integer from 1 to 4096; got {size!r}")
            args["size"] = size
        if "qname" in table:
            qname = table["qname"]
            try:
                args["qname"] = dns.name.from_text(str(qname)).to_text().lower()
            except Exception as exc:
                raise ScenarioError(source, f"{key}.qname", f"not a domain name: {exc}") from None
        if "aa" in table:
            if not isinstance(table["aa"], bool):
                raise ScenarioError(source, f"{key}.aa", "must be true or false")
            args["aa"] = table["aa"]
        return cls(**args)

    def to_toml(self) -> dict[str, Any]:
        """The table that declares this fault (only the keys that differ from the defaults)."""
        out: dict[str, Any] = {"kind": self.kind}
        default = Fault(self.kind)
        for key in ("name", "qtype", "transport", "rcode", "seconds", "rtype", "size", "qname", "aa"):
            value = getattr(self, key)
            if value != getattr(default, key):
                out[key] = value
        return out


def parse_list(value: Any, source: str, key: str) -> tuple[Fault, ...]:
    """Parse the ``faults`` array of a server."""
    if not isinstance(value, list):
        raise ScenarioError(source, key, "must be an array of tables ([[...faults]])")
    return tuple(Fault.from_toml(item, source, f"{key}[{i}]") for i, item in enumerate(value))


def matching(faults: Iterable[Fault], qname: str, qtype: str, transport: str) -> list[Fault]:
    return [f for f in faults if f.matches(qname, qtype, transport)]


def _keys() -> str:
    return ", ".join(sorted(_ALLOWED_KEYS))


def _name_pattern(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ScenarioError(source, key, 'must be a non-empty name pattern, e.g. "mx.example.com." or "*"')
    pattern = value.lower()
    if pattern != "*" and not pattern.endswith("."):
        pattern += "."
    return pattern


def _qtype(value: Any, source: str, key: str) -> str:
    if not isinstance(value, str):
        raise ScenarioError(source, key, f"must be a record type such as AAAA, or *; got {value!r}")
    if value == "*":
        return value
    try:
        return dns.rdatatype.to_text(dns.rdatatype.from_text(value.upper()))
    except Exception:
        raise ScenarioError(source, key, f"unknown record type {value!r}") from None
