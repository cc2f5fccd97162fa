"""Analysis: Evidence in, Diagnosis out (findings from the checks, a verdict per MTA model). Pure.

The Diagnosis is what every renderer reads; its JSON form (docs/json.md) lives in report/diagnose.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from mxdoctor.checks import _registry as registry
from mxdoctor.checks import audit, mx
from mxdoctor.checks._context import Context
from mxdoctor.diagnosis import Diagnosis, Severity
from mxdoctor.evidence import Evidence, ViewKind
from mxdoctor.mta import verdict as verdict_mod
from mxdoctor.mta.models import MODELS


def analyse(
    ev: Evidence,
    *,
    mtas: Sequence[str] | None = None,
    knobs: dict[str, tuple[str, ...]] | None = None,
) -> Diagnosis:
    """Run every check and every MTA model over the evidence."""
    ctx = Context.build(ev)
    findings = registry.run(ctx)
    dns_problem = any(
        f.severity.rank >= Severity.WARNING.rank and not mx.MAIL_ROUTE_OK.matches(f) for f in findings
    )
    ref_route = ctx.reference_route()
    if not dns_problem and ref_route is not None and any(x.addresses for x in ref_route.exchangers):
        findings.append(mx.MAIL_ROUTE_OK.emit(ctx.domain, domain=ctx.domain))
    externals = [v.name for v in ev.views if v.kind is ViewKind.EXTERNAL]
    reference = ctx.reference or ctx.authoritative
    verdicts = verdict_mod.predict(
        audit.validating_routes(ctx),
        reference=reference,
        externals=externals,
        reachable={v.name: v.reachable for v in ev.views},
        findings=findings,
        smtp=ev.smtp,
        mtas=mtas,
        knobs=knobs,
        stub=verdict_mod.StubWait.from_options(ev.options),
        authoritative=ctx.authoritative,
    )
    return Diagnosis(
        domain=ev.domain,
        target=ev.target,
        verdicts=tuple(verdicts),
        findings=tuple(registry.merge(findings)),
        routes=ctx.routes,
        reference=reference,
        evidence=ev,
    )


def check_mtas(names: Sequence[str]) -> list[str]:
    """The names, when each is an MTA model; raises ConfigError naming the first that is not."""
    from mxdoctor.errors import ConfigError

    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ConfigError(f"unknown MTA model {unknown[0]!r} (known: {', '.join(MODELS)})")
    return list(names)
