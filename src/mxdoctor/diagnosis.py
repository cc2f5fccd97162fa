"""The Diagnosis and what it is made of: Severity, Seen, Remedy, Finding, Decision, Alternative, Verdict,
and THE exit-code policy that every checking command (diagnose, audit, smtp, queue, watch --once) uses.

Ground floor: plain frozen data and one pure policy function; it imports only evidence and route.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from mxdoctor.evidence import Evidence, ViewKind
from mxdoctor.route import Route


class Severity(enum.StrEnum):
    """How bad a finding is. CRITICAL: mail cannot be delivered by any sender. ERROR: some senders
    defer or bounce, or a standard is broken in a way that makes them. WARNING: works today but is
    fragile or against a SHOULD. NOTICE: worth knowing. INFO: a check ran and found things well."""

    CRITICAL = "CRITICAL"
    ERROR = "ERROR"
    WARNING = "WARNING"
    NOTICE = "NOTICE"
    INFO = "INFO"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.CRITICAL: 4, Severity.ERROR: 3, Severity.WARNING: 2, Severity.NOTICE: 1, Severity.INFO: 0}

@dataclass(frozen=True)
class Seen:
    """One place a fact was observed: a view, and the server there when it was one server."""

    view: str
    server: str | None = None
    detail: str | None = None

    def __str__(self) -> str:
        return f"{self.view} ({self.server})" if self.server else self.view


@dataclass(frozen=True)
class Remedy:
    sender: str = ""
    receiver: str = ""


@dataclass(frozen=True)
class Finding:
    """One fact, with every (view, server) that shows it, and what each side should change."""

    code: str
    severity: Severity
    subject: str  # what it is about: "mx.example.com. AAAA", "example.com.", "ns1.example.net. 192.0.2.1"
    title: str
    message: str
    seen: tuple[Seen, ...] = ()
    remediation: Remedy = Remedy()
    reproduce: tuple[str, ...] = ()  # commands (dig ...) that show the fact, with what they returned
    rfcs: tuple[str, ...] = ()
    args: dict[str, str] = field(default_factory=dict)
    exchanges: tuple[int, ...] = ()


class Decision(enum.StrEnum):
    DELIVER = "deliver"
    DEFER = "defer"
    BOUNCE = "bounce"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Alternative:
    """'With this change, it delivers': a knob and the outcome it leads to."""

    knob: str
    outcome: Decision
    how: str
    text: str


@dataclass(frozen=True)
class Verdict:
    mta: str
    title: str
    outcome: Decision
    status: str  # enhanced status code (RFC 3463), "" when delivering
    text: str  # what the MTA would log
    because: tuple[str, ...] = ()  # finding codes that cause it
    view: str = ""  # the view the MTA's lookups went through
    knobs: tuple[str, ...] = ()  # knobs applied
    host: str | None = None  # the exchanger used or that failed
    alternatives: tuple[Alternative, ...] = ()
    notes: tuple[str, ...] = ()


class ExitStatus(enum.IntEnum):
    """Monitoring-plugin exit codes (Nagios, Icinga, cron), the same in every command."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


# The one table of the policy: the worst severity of a result decides its exit status.
SEVERITY_STATUS: dict[Severity, ExitStatus] = {
    Severity.CRITICAL: ExitStatus.CRITICAL,
    Severity.ERROR: ExitStatus.CRITICAL,
    Severity.WARNING: ExitStatus.WARNING,
    Severity.NOTICE: ExitStatus.OK,
    Severity.INFO: ExitStatus.OK,
}


def exit_status(
    severities: Iterable[Severity],
    *,
    outcomes: Iterable[Decision] = (),
    untested: bool = False,
) -> ExitStatus:
    """THE exit-code policy, in this order:

    1. UNKNOWN when the command could not test what it was asked (``untested``: no resolver or
       server answered, nothing could be read or probed);
    2. CRITICAL when any MTA defers or bounces;
    3. UNKNOWN when some MTA could not be judged;
    4. else the worst finding through SEVERITY_STATUS: CRITICAL and ERROR give CRITICAL, WARNING gives
       WARNING, NOTICE and INFO leave it OK.
    """
    if untested:
        return ExitStatus.UNKNOWN
    decided = set(outcomes)
    if decided & {Decision.DEFER, Decision.BOUNCE}:
        return ExitStatus.CRITICAL
    if Decision.UNKNOWN in decided:
        return ExitStatus.UNKNOWN
    return max((SEVERITY_STATUS[s] for s in severities), default=ExitStatus.OK)


@dataclass(frozen=True)
class Diagnosis:
    """What mxdoctor concludes about one mail domain: a verdict per MTA model, the findings (one per
    fact), the route through each view, and the evidence it was all read from."""

    domain: str
    target: str
    verdicts: tuple[Verdict, ...]
    findings: tuple[Finding, ...]
    routes: dict[str, Route]
    reference: str | None
    evidence: Evidence

    @property
    def untested(self) -> bool:
        """Whether the probe could not test what it was asked: no verdict at all; for an audit, no
        authoritative server answered, or nothing was probed and the route showed nothing wrong."""
        outcomes = {v.outcome for v in self.verdicts}
        if self.evidence.command != "audit":
            return not outcomes
        auth = next((v for v in self.evidence.views if v.kind is ViewKind.AUTHORITATIVE), None)
        failing = bool({Decision.DEFER, Decision.BOUNCE} & outcomes)
        return auth is None or not auth.reachable or (not self.evidence.audit and not failing)

    @property
    def exit_code(self) -> int:
        """The exit policy (``exit_status``) over this diagnosis."""
        outcomes = [v.outcome for v in self.verdicts]
        return int(exit_status((f.severity for f in self.findings), outcomes=outcomes, untested=self.untested))

    def root_causes(self) -> list[Finding]:
        """The findings that make some MTA defer or bounce, worst first; when none does, those that
        left some MTA unjudged (e.g. the deadline that ended the probe)."""
        for wanted in ((Decision.DEFER, Decision.BOUNCE), (Decision.UNKNOWN,)):
            codes = {c for v in self.verdicts if v.outcome in wanted for c in v.because}
            if codes:
                return [f for f in self.findings if f.code in codes]
        return []
