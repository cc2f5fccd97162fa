"""What the probe left unfinished: the run's deadline or a per-run limit cut it short, so the other
findings and the verdicts rest on partial evidence."""

from __future__ import annotations

from collections.abc import Iterable

from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import Role, check, finding
from mxdoctor.diagnosis import Finding, Seen, Severity

DEADLINE_REACHED = finding(
    "DEADLINE_REACHED",
    Severity.WARNING,
    Role.UNTESTED,
    "The deadline ended the probe before it finished",
    "The run's deadline of {count} s ended the probe before it finished: {detail}.",
    "mxdoctor stops every diagnosis at its deadline (--deadline) and reports what it saw. The lookups "
    "that were still running are marked unfinished: they were not waited for, so no finding blames a "
    "server for them, and a verdict that needs one says 'unknown' where more time would have found an "
    "answer. Servers that answer slowly, or a zone with many glueless name servers, make the probe "
    "take long.",
    sender="Run again with a longer --deadline to see the whole route; if it never finishes, the "
    "slow servers named in the unfinished lookups are the ones to look at.",
    receiver="Make the zone's servers answer promptly, and give name servers glue or in-zone addresses "
    "so resolvers do not have to chase them.",
    rfcs=("RFC 1035 §7.2",),
)
LIMIT_REACHED = finding(
    "LIMIT_REACHED",
    Severity.NOTICE,
    Role.UNTESTED,
    "A per-run limit cut the probe short",
    "A per-run limit of the probe was reached: {detail} ({count} times).",
    "mxdoctor bounds what one diagnosis sends and keeps (exchanges, records per answer, glueless name "
    "servers resolved and how deep), so that a huge or hostile zone costs bounded time and memory. "
    "What the limit refused is missing from the evidence; resolvers have limits of the same kind and "
    "give up on such zones too.",
    sender="Nothing to change on the sending side.",
    receiver="Keep answers small and delegations simple: a few name servers with glue, a few mail "
    "exchangers with a few addresses each.",
    rfcs=("RFC 1034 §5.3.3",),
)


@check(DEADLINE_REACHED, LIMIT_REACHED)
def unfinished(ctx: Context) -> Iterable[Finding]:
    ev = ctx.evidence
    limits = {lr.limit: lr for lr in ev.limits_reached}
    deadline = limits.pop("deadline", None)
    if ev.deadline_hit or deadline is not None:
        yield DEADLINE_REACHED.emit(
            ev.domain + ".",
            seen=[Seen(v.name) for v in ev.views],
            count=ev.options.get("deadline", "?"),
            detail=deadline.detail if deadline is not None else "some lookups are missing",
        )
    for lr in limits.values():
        yield LIMIT_REACHED.emit(lr.limit, detail=lr.detail, count=str(lr.count))
