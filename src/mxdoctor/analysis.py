"""Analysis: Evidence in, Diagnosis out (findings from the checks, a verdict per MTA model). Pure.

The Diagnosis is what every renderer reads; its JSON form is the documented `--json` output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mxdoctor import _codec, evidence
from mxdoctor.checks import _registry as registry
from mxdoctor.checks import mx
from mxdoctor.checks._context import Context
from mxdoctor.diagnosis import Diagnosis, Severity
from mxdoctor.evidence import Evidence, ViewKind
from mxdoctor.mta import verdict as verdict_mod
from mxdoctor.mta.models import MODELS

SCHEMA = "mxdoctor.diagnosis"
SCHEMA_VERSION = "1.0"


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
        ctx.routes,
        reference=reference,
        externals=externals,
        reachable={v.name: v.reachable for v in ev.views},
        findings=findings,
        smtp=ev.smtp,
        mtas=mtas,
        knobs=knobs,
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
    from mxdoctor.errors import MxdoctorError

    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise MxdoctorError(f"unknown MTA model {unknown[0]!r} (known: {', '.join(MODELS)})")
    return list(names)


def to_dict(d: Diagnosis, *, with_evidence: bool = True) -> dict[str, Any]:
    """The documented JSON form (docs/json.md)."""
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "domain": d.domain,
        "target": d.target,
        "exit_code": d.exit_code,
        "reference_view": d.reference,
        "verdicts": [
            {
                "mta": v.mta,
                "title": v.title,
                "outcome": v.outcome.value,
                "status": v.status,
                "text": v.text,
                "because": list(v.because),
                "view": v.view,
                "host": v.host,
                "knobs": list(v.knobs),
                "alternatives": _codec.dump(v.alternatives),
                "notes": list(v.notes),
            }
            for v in d.verdicts
        ],
        "findings": [
            {
                "code": f.code,
                "severity": f.severity.value,
                "subject": f.subject,
                "title": f.title,
                "message": f.message,
                "seen": _codec.dump(f.seen),
                "remediation": {"sender": f.remediation.sender, "receiver": f.remediation.receiver},
                "reproduce": list(f.reproduce),
                "rfcs": list(f.rfcs),
                "exchanges": list(f.exchanges),
            }
            for f in d.findings
        ],
        "routes": {
            name: {
                "kind": r.kind.value,
                "exchangers": [
                    {
                        "host": x.host,
                        "preference": x.preference,
                        "implicit": x.implicit,
                        "a": x.a.outcome.value if x.a else None,
                        "aaaa": x.aaaa.outcome.value if x.aaaa else None,
                        "addresses": list(x.addresses),
                    }
                    for x in r.exchangers
                ],
            }
            for name, r in d.routes.items()
        },
    }
    if with_evidence:
        out["evidence"] = evidence.to_dict(d.evidence)
    return out


def dumps(d: Diagnosis) -> str:
    return json.dumps(to_dict(d), indent=2, ensure_ascii=False)
