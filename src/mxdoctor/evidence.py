"""The Evidence data model: every DNS and SMTP exchange a probe made, as plain data.

Evidence serialises to versioned JSON and loads back unchanged (``dumps``/``loads``); the analysis
reads nothing else, so a saved file re-analyses offline with ``mxdoctor explain``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mxdoctor import _codec, _loader
from mxdoctor.errors import EvidenceError

SCHEMA = "mxdoctor.evidence"
# 1.1 limits_reached; 1.2 Lookup.unfinished; 1.3 Exchange.ede, Evidence.trust_anchor, the dnssec view, TlsInfo.chain
SCHEMA_VERSION = "1.3"
MAX_FILE_BYTES = 256 * 1024 * 1024  # far above any real probe run; a bound for a device or a stray file
# aliases followed for one question; a longer chain fails as in resolvers (BIND 16, Unbound 11 restarts)
CNAME_CHAIN_LIMIT = 16


def cname_loop(qname: str, cnames: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The names of the loop in the chain ``qname -> cnames``, from its first repeated name back to it;
    empty when the chain does not loop."""
    names = [qname.lower(), *(c.lower() for c in cnames)]
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            return tuple(names[first[name]: i + 1])
        first[name] = i
    return ()


class Outcome(enum.StrEnum):
    """What one question got from one source, after all attempts.

    NOERROR means an answer of the asked type (possibly after CNAMEs); NODATA means NOERROR with
    no record of that type (RFC 2308 §2.2). The rest are failures of one kind or another.
    """

    NOERROR = "NOERROR"
    NODATA = "NODATA"
    NXDOMAIN = "NXDOMAIN"
    SERVFAIL = "SERVFAIL"
    REFUSED = "REFUSED"
    FORMERR = "FORMERR"
    NOTIMP = "NOTIMP"
    OTHER_RCODE = "OTHER_RCODE"  # any other RCODE (BADVERS, YXDOMAIN, ...): see ``rcode``
    TIMEOUT = "TIMEOUT"
    NETWORK_ERROR = "NETWORK_ERROR"  # connection refused, unreachable, reset
    MALFORMED = "MALFORMED"  # bytes that do not parse, wrong ID or wrong question
    BROKEN = "BROKEN"  # parses, but the answer is unusable (RFC 4074 §4.4: wrong type or size)
    LAME = "LAME"  # an authoritative server answered without AA or with a referral

    @property
    def is_answer(self) -> bool:
        """A definite answer: data, no data, or no such name."""
        return self in (Outcome.NOERROR, Outcome.NODATA, Outcome.NXDOMAIN)

    @property
    def is_failure(self) -> bool:
        return not self.is_answer


class Transport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"


class ViewKind(enum.StrEnum):
    SYSTEM = "system"  # the OS resolver configuration (/etc/resolv.conf)
    RESOLVER = "resolver"  # a named recursive resolver: the MTA's internal DNS server
    EXTERNAL = "external"  # a public/external resolver to compare with
    AUTHORITATIVE = "authoritative"  # iterative from the root, every server asked directly


@dataclass(frozen=True)
class Server:
    """One DNS server address as asked (``name`` is the NS host name where known)."""

    address: str
    port: int = 53
    name: str | None = None

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        label = f"{self.name} " if self.name else ""
        return f"{label}{host}" + ("" if self.port == 53 else f":{self.port}")


# The view name of the DNSKEY and DS lookups of each zone on the path (asked of the authoritative
# servers after the route is resolved; kept apart so the route's own checks do not count them).
DNSSEC_KEYS_VIEW = "dnssec"


@dataclass(frozen=True)
class Ede:
    """One Extended DNS Error of a reply (RFC 8914): its INFO-CODE and EXTRA-TEXT."""

    code: int
    text: str = ""


@dataclass(frozen=True)
class Exchange:
    """One attempt on the wire: a question sent to a server and what came back (or not)."""

    id: int
    view: str
    server: Server
    transport: Transport
    qname: str
    qtype: str
    rd: bool
    edns: int | None  # EDNS version sent, None without OPT
    do: bool
    started: float  # seconds since the probe run began
    duration: float  # seconds
    outcome: Outcome
    rcode: str | None = None  # textual RCODE (including extended), None without a parsed reply
    flags: tuple[str, ...] = ()  # header flags of the reply, e.g. ("QR", "AA", "RD")
    answer: tuple[str, ...] = ()  # RRs in master-file text
    authority: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()
    reply_edns: int | None = None  # EDNS version of the reply's OPT, None without OPT
    ede: tuple[Ede, ...] = ()  # Extended DNS Errors of the reply (RFC 8914)
    error: str | None = None  # the failure in words, for TIMEOUT/NETWORK_ERROR/MALFORMED/BROKEN
    workaround: str | None = None  # why this attempt was made, e.g. "TcpOnTruncation"
    attempt: int = 1
    probe: str | None = None  # audit probe name when the exchange belongs to an audit probe
    size: int | None = None  # bytes of the reply as received (audit probes)
    reply_qname: str | None = None  # the reply's question name with its case as sent back (audit probes)


@dataclass(frozen=True)
class Lookup:
    """The result of one question through one source after all its attempts.

    For recursive views ``server`` is the resolver that gave the final answer; for the
    authoritative view there is one Lookup per (server address, question).
    """

    view: str
    server: Server | None
    qname: str
    qtype: str
    outcome: Outcome
    rcode: str | None = None
    records: tuple[str, ...] = ()  # rdata text of the asked type at the end of the CNAME chain
    cnames: tuple[str, ...] = ()  # CNAME targets followed, in order
    ttl: int | None = None
    authoritative: bool = False  # AA bit seen
    exchanges: tuple[int, ...] = ()  # ids of the Exchanges behind it
    detail: str | None = None  # why BROKEN/MALFORMED/LAME, in words
    # the run's deadline ended it before any answer came (outcome TIMEOUT, for older readers): it
    # says nothing of the server, so the checks and the route leave it out (since 1.2)
    unfinished: bool = False


@dataclass(frozen=True)
class View:
    """One way of looking at the DNS: a resolver, a set of resolvers, or the authoritative tree."""

    name: str  # unique label used in Exchange.view / Lookup.view, e.g. "internal", "external 9.9.9.9"
    kind: ViewKind
    servers: tuple[Server, ...] = ()
    reachable: bool = True  # False when no server of the view answered anything at all


@dataclass(frozen=True)
class NameServer:
    name: str
    addresses: tuple[str, ...] = ()
    glue: tuple[str, ...] = ()  # addresses from the parent's additional section


@dataclass(frozen=True)
class Zone:
    """A zone met while iterating from the root, with its servers as the parent delegates them."""

    name: str
    parent: str | None
    nameservers: tuple[NameServer, ...] = ()
    apex_ns: tuple[str, ...] = ()  # NS set as the zone's own servers answer it, when asked


@dataclass(frozen=True)
class TlsInfo:
    protocol: str | None = None
    cipher: str | None = None
    subject: str | None = None
    issuer: str | None = None
    sans: tuple[str, ...] = ()
    not_after: str | None = None  # ISO 8601
    expired: bool = False
    matches_host: bool | None = None
    verify_error: str | None = None
    chain: tuple[str, ...] = ()  # (since 1.3) the certificates the server sent, leaf first, base64 DER


@dataclass(frozen=True)
class SmtpStage:
    """One stage of an SMTP probe: connect, greeting, ehlo, starttls, mail, rcpt, rset, quit."""

    stage: str
    ok: bool
    code: int | None = None
    text: str | None = None  # the server's own words (first line or joined lines)
    duration: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class SmtpProbe:
    """An SMTP probe of one address of one MX host."""

    host: str  # the MX host name (or the address when probed directly)
    address: str
    port: int
    family: int  # 4 or 6
    stages: tuple[SmtpStage, ...] = ()
    extensions: tuple[str, ...] = ()
    tls: TlsInfo | None = None
    started: float = 0.0


@dataclass(frozen=True)
class AuditProbe:
    """One audit probe against one server address; its exchanges carry ``probe=name``."""

    name: str  # e.g. "aaaa", "edns1", "unknown-type"
    zone: str
    qname: str
    server: Server
    exchanges: tuple[int, ...] = ()


@dataclass(frozen=True)
class LimitReached:
    """A per-run bound that cut the probe short (the deadline, a count or a size), and what it left
    undone, so the analysis can say the diagnosis is partial instead of guessing."""

    limit: str  # "deadline", "exchanges", "records", "ns-names", "ns-depth"
    detail: str  # what was left undone, in words
    count: int = 1  # how many times the bound refused something


@dataclass(frozen=True)
class Evidence:
    """Everything a run observed. Analysis is a pure function of this."""

    target: str  # as the user gave it
    domain: str  # the mail domain, normalised (A-labels, no trailing dot, lower case)
    schema: str = SCHEMA
    version: str = SCHEMA_VERSION
    tool: str = ""
    created: str = ""  # ISO 8601 UTC time the probe began (informative only)
    command: str = "diagnose"  # diagnose | audit | smtp
    views: tuple[View, ...] = ()
    zones: tuple[Zone, ...] = ()
    exchanges: tuple[Exchange, ...] = ()
    lookups: tuple[Lookup, ...] = ()
    smtp: tuple[SmtpProbe, ...] = ()
    audit: tuple[AuditProbe, ...] = ()
    deadline_hit: bool = False  # the overall deadline ended the probe before it finished
    trust_anchor: tuple[str, ...] = ()  # DS/DNSKEY lines of the root the DNSSEC checks validate from
    notes: tuple[str, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    limits_reached: tuple[LimitReached, ...] = ()  # since 1.1

    def view(self, name: str) -> View | None:
        return next((v for v in self.views if v.name == name), None)

    def lookups_for(self, view: str) -> tuple[Lookup, ...]:
        return tuple(lk for lk in self.lookups if lk.view == view)

    def exchange(self, ident: int) -> Exchange | None:
        return next((x for x in self.exchanges if x.id == ident), None)


def to_dict(ev: Evidence) -> dict[str, Any]:
    data: dict[str, Any] = _codec.dump(ev)
    return data


def dumps(ev: Evidence, *, indent: int | None = 2) -> str:
    return json.dumps(to_dict(ev), indent=indent, ensure_ascii=False)


def from_dict(data: Any, *, source: str = "evidence") -> Evidence:
    """Build Evidence from parsed JSON; raise EvidenceError naming the key path of the first problem.

    Another major version is refused; a newer minor version may add members, which are ignored.
    """
    if not isinstance(data, dict):
        raise EvidenceError(f"{source}: not an evidence object")
    if data.get("schema") != SCHEMA:
        raise EvidenceError(f"{source}: schema: not mxdoctor evidence (expected {SCHEMA!r})")
    version = data.get("version")
    major, _, minor = str(version).partition(".") if isinstance(version, str) else ("", "", "")
    ours_major, _, ours_minor = SCHEMA_VERSION.partition(".")
    if major != ours_major:
        raise EvidenceError(
            f"{source}: version: evidence version {_loader.shown(version)} is not readable by this "
            f"mxdoctor (reads {ours_major}.x)"
        )
    newer = not minor.isdigit() or len(minor) > 6 or int(minor) > int(ours_minor)
    return _loader.convert(data, Evidence, source=source, error=EvidenceError, unknown_keys=newer)


def loads(text: str | bytes, *, source: str = "evidence") -> Evidence:
    """Parse evidence JSON text; raise EvidenceError (not JSON, nested too deeply, wrong schema)."""
    return from_dict(_loader.parse_json(text, source=source, error=EvidenceError), source=source)


def load(path: str | Path) -> Evidence:
    """Read an evidence file (at most MAX_FILE_BYTES); raise EvidenceError if it cannot be used."""
    text = _loader.read_text(path, limit=MAX_FILE_BYTES, error=EvidenceError)
    return loads(text, source=str(path))


def replace(ev: Evidence, **changes: Any) -> Evidence:
    return dataclasses.replace(ev, **changes)
