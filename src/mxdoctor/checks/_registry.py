"""The checks registry: every finding code with its severity, texts, RFCs and remedies, declared
beside the check function that emits it, so the catalogue and its docs page follow by themselves.

A check is ``@check(spec, ...)`` over ``def fn(ctx: Context) -> Iterable[Finding]``; it builds its
findings with ``spec.emit(...)``, which fails loudly when a template argument is missing. Other modules
pick findings by spec object or by ``Role`` (``codes(findings, mx.NULL_MX, Role.SMTP)``), never by a
code string.
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
import string
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mxdoctor.diagnosis import Finding, Remedy, Seen, Severity

if TYPE_CHECKING:
    from mxdoctor.checks._context import Context


# The closed vocabulary of template arguments (STYLE rule 3).
VOCABULARY: Mapping[str, str] = {
    "domain": "the mail domain under diagnosis",
    "host": "a mail exchanger host name",
    "qname": "the name asked",
    "qtype": "the record type asked",
    "rcode": "the response code or failure seen (SERVFAIL, TIMEOUT, ...)",
    "view": "a resolver view (internal, external ..., authoritative)",
    "views": "the views that show the fact, joined",
    "servers": "the servers that show the fact, joined",
    "ns_name": "a name server host name",
    "ns_ip": "a name server address",
    "zone": "a DNS zone",
    "target": "a CNAME or MX target",
    "records": "records as text, joined",
    "expected": "what was expected instead",
    "address": "an IP address",
    "port": "a TCP port",
    "stage": "an SMTP probe stage",
    "code": "an SMTP reply code",
    "reply": "the server's own words",
    "detail": "a detail in words",
    "count": "a number",
    "key_tag": "a DNSKEY's key tag (RFC 4034 appendix B)",
    "when": "a time in UTC, and how long before or after the probe",
}


class Role(enum.StrEnum):
    """What a finding means for mail on its way: the MTA verdicts pick their causes by role."""

    DNS_FAULT = "dns-fault"
    RESOLVER_FAULT = "resolver-fault"
    DOMAIN_PERMANENT = "domain-permanent"
    ROUTE_PERMANENT = "route-permanent"
    SMTP = "smtp"
    SMTP_ENVELOPE = "smtp-envelope"
    TLS = "tls"
    SERVER_DEFECT = "server-defect"
    INCONSISTENT = "inconsistent"
    CONFIGURATION = "configuration"
    UNTESTED = "untested"
    POSITIVE = "positive"

    @property
    def meaning(self) -> str:
        return ROLE_MEANINGS[self]


ROLE_MEANINGS: Mapping[Role, str] = {
    Role.DNS_FAULT: "a lookup on the mail route fails at the zone's servers, for now",
    Role.RESOLVER_FAULT: "a resolver fails or differs where the zone's servers answer",
    Role.DOMAIN_PERMANENT: "the domain takes no mail at all: no such domain, null MX",
    Role.ROUTE_PERMANENT: "the mail exchangers have no usable address, for good",
    Role.SMTP: "the SMTP session with an exchanger fails before a message can be offered",
    Role.SMTP_ENVELOPE: "the server refuses the sender or the recipient",
    Role.TLS: "the server's certificate is wrong for a sender that verifies it",
    Role.SERVER_DEFECT: "a name server breaks a protocol rule: a risk for some resolvers, not yet a failure",
    Role.INCONSISTENT: "the servers of a zone disagree with each other or with the parent",
    Role.CONFIGURATION: "the records break a rule that MTAs tolerate",
    Role.UNTESTED: "something could not be observed from here",
    Role.POSITIVE: "a check ran and found nothing wrong",
}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True)
class FindingSpec:
    """Everything one finding code can say. Codes never change once released."""

    code: str
    severity: Severity
    role: Role
    title: str
    message: str  # template over VOCABULARY names
    explanation: str
    sender: str = ""  # remedy on the sending side (template)
    receiver: str = ""  # remedy on the receiving side (template)
    rfcs: tuple[str, ...] = ()
    family: str = ""

    def __post_init__(self) -> None:
        unknown = (_fields(self.message) | _fields(self.sender) | _fields(self.receiver)) - set(VOCABULARY)
        if unknown:
            raise ValueError(f"{self.code}: template arguments outside the vocabulary: {sorted(unknown)}")
        if not self.code.isupper() or not self.code.replace("_", "").isalnum():
            raise ValueError(f"{self.code}: codes are UPPER_SNAKE words")

    @property
    def required(self) -> set[str]:
        return _fields(self.message) | _fields(self.sender) | _fields(self.receiver)

    def emit(
        self,
        subject: str,
        *,
        seen: Iterable[Seen] = (),
        reproduce: Iterable[str] = (),
        exchanges: Iterable[int] = (),
        **args: str,
    ) -> Finding:
        missing = self.required - set(args)
        if missing:
            raise KeyError(f"{self.code}: missing template arguments {sorted(missing)}")
        return Finding(
            code=self.code,
            severity=self.severity,
            subject=subject,
            title=self.title,
            message=self.message.format(**args),
            seen=tuple(seen),
            remediation=Remedy(self.sender.format(**args), self.receiver.format(**args)),
            reproduce=tuple(reproduce),
            rfcs=self.rfcs,
            args=dict(args),
            exchanges=tuple(sorted(set(exchanges))),
        )

    def matches(self, f: Finding) -> bool:
        """``f`` states this spec's fact."""
        return f.code == self.code


CheckFn = Callable[["Context"], Iterable[Finding]]


@dataclass(frozen=True)
class Check:
    name: str
    family: str
    fn: CheckFn
    specs: tuple[FindingSpec, ...]


_SPECS: dict[str, FindingSpec] = {}
_CHECKS: list[Check] = []


def finding(
    code: str,
    severity: Severity,
    role: Role,
    title: str,
    message: str,
    explanation: str,
    *,
    sender: str = "",
    receiver: str = "",
    rfcs: tuple[str, ...] = (),
) -> FindingSpec:
    """Declare a finding code (at module level, beside the check that emits it)."""
    if code in _SPECS:
        raise ValueError(f"finding code {code} declared twice")
    # The family is the declaring module, so a code emitted outside any check still has one.
    family = str(sys._getframe(1).f_globals.get("__name__", "")).rsplit(".", 1)[-1]
    spec = FindingSpec(code, severity, role, title, message, explanation, sender, receiver, rfcs, family)
    _SPECS[code] = spec
    return spec


def check(*specs: FindingSpec) -> Callable[[CheckFn], CheckFn]:
    """Register a check function with the finding codes it may emit."""

    def register(fn: CheckFn) -> CheckFn:
        family = fn.__module__.rsplit(".", 1)[-1]
        _CHECKS.append(Check(fn.__name__, family, fn, specs))
        return fn

    return register


def load_families() -> None:
    """Import every family module of mxdoctor.checks (discovery by import)."""
    import mxdoctor.checks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"mxdoctor.checks.{info.name}")


def catalogue() -> list[FindingSpec]:
    load_families()
    return sorted(_SPECS.values(), key=lambda s: (s.family, s.code))


def spec(code: str) -> FindingSpec:
    load_families()
    return _SPECS[code]


def checks() -> list[Check]:
    load_families()
    return list(_CHECKS)


def codes(findings: Iterable[Finding], *wanted: FindingSpec | Role) -> tuple[str, ...]:
    """The codes, sorted and once each, of the findings that are one of the ``wanted`` specs or have
    one of the ``wanted`` roles."""
    load_families()
    specs = {w.code for w in wanted if isinstance(w, FindingSpec)}
    roles = {w for w in wanted if isinstance(w, Role)}
    return tuple(
        sorted({f.code for f in findings if f.code in specs or (f.code in _SPECS and _SPECS[f.code].role in roles)})
    )


def run(ctx: Context, *, families: Iterable[str] | None = None) -> list[Finding]:
    """Run every registered check (or those of some families) and merge findings per fact."""
    wanted = set(families) if families is not None else None
    found: list[Finding] = []
    for chk in checks():
        if wanted is None or chk.family in wanted:
            found.extend(chk.fn(ctx))
    return merge(found)


def merge(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per (code, subject): the places that show it are joined (STYLE rule 5)."""
    out: dict[tuple[str, str], Finding] = {}
    for f in findings:
        key = (f.code, f.subject)
        prev = out.get(key)
        if prev is None:
            out[key] = f
            continue
        seen = prev.seen + tuple(s for s in f.seen if s not in prev.seen)
        reproduce = prev.reproduce + tuple(r for r in f.reproduce if r not in prev.reproduce)
        exchanges = tuple(sorted(set(prev.exchanges) | set(f.exchanges)))
        out[key] = Finding(
            prev.code, prev.severity, prev.subject, prev.title, prev.message, seen,
            prev.remediation, reproduce, prev.rfcs, prev.args, exchanges,
        )
    return sorted(out.values(), key=lambda f: (-f.severity.rank, f.code, f.subject))
