"""The HTML report of a diagnosis or an audit: one self-contained file (inline CSS and SVG, no script,
no external resource) that anyone can open offline, print, or send to the other side's DNS operator.

Reads a Diagnosis, computes nothing; the picture of the mail path comes from ``_mailpath``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2

from mxdoctor import __version__
from mxdoctor.checks import _registry as registry
from mxdoctor.diagnosis import Diagnosis
from mxdoctor.evidence import Outcome, ViewKind
from mxdoctor.report import _mailpath
from mxdoctor.report import text as text_report
from mxdoctor.route import Question, fqdn
from mxdoctor.smtp import render as smtp_render

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("mxdoctor.report", "templates"),
    autoescape=True,  # every server's words and every name are untrusted text
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class _ResolutionRow:
    where: str
    outcome: str
    answer: str
    time: str
    failed: bool


def render(d: Diagnosis) -> str:
    """The whole report as one HTML document."""
    ev = d.evidence
    causes = d.root_causes()
    side = _mailpath.side_at_fault(d)
    context: dict[str, Any] = {
        "command": ev.command,
        "target": d.target,
        "domain": d.domain,
        "created": ev.created,
        "version": __version__,
        "views": [_view_label(v.name, v.kind, v.servers) for v in ev.views],
        "deadline_hit": ev.deadline_hit,
        "headline": text_report.headline(d),
        "cause": causes[0] if causes else None,
        "side": side[1] if side and causes else None,
        "picture": _mailpath.svg(d),
        "verdicts": d.verdicts,
        "findings": d.findings,
        "explanations": {f.code: _explanation(f.code) for f in d.findings},
        "smtp": [_smtp(p) for p in ev.smtp],
        "audit": _audit_rows(d),
        "resolution": _resolution(d),
    }
    return _ENV.get_template("report.html.j2").render(context)


def _view_label(name: str, kind: ViewKind, servers: tuple[Any, ...]) -> str:
    if kind in (ViewKind.RESOLVER, ViewKind.SYSTEM) and servers:
        return f"{name} ({', '.join(str(s) for s in servers)})"
    return name


def _explanation(code: str) -> str:
    try:
        return registry.spec(code).explanation
    except KeyError:  # evidence from a newer mxdoctor may carry codes this one does not know
        return ""


def _smtp(p: Any) -> dict[str, Any]:
    return {
        "where": smtp_render.where(p),
        "extensions": p.extensions,
        "tls": p.tls,
        "stages": [
            {"stage": s.stage, "ok": s.ok, "code": s.code, "duration": s.duration, "words": smtp_render._words(s)}
            for s in p.stages
        ],
    }


def _audit_rows(d: Diagnosis) -> list[dict[str, Any]]:
    rows = []
    for a in d.evidence.audit:
        xs = [x for x in (d.evidence.exchange(i) for i in a.exchanges) if x is not None]
        last = xs[-1] if xs else None
        result = "no exchange" if last is None else (last.rcode or last.outcome.value)
        failed = last is None or last.outcome in (Outcome.TIMEOUT, Outcome.NETWORK_ERROR, Outcome.MALFORMED)
        rows.append({"zone": a.zone, "server": str(a.server), "name": a.name, "qname": a.qname,
                     "result": result + (f" ({last.error})" if last is not None and last.error else ""),
                     "failed": failed})
    return rows


def _resolution(d: Diagnosis) -> list[dict[str, Any]]:
    order = {v.name: i for i, v in enumerate(d.evidence.views)}
    kinds = {v.name: v.kind for v in d.evidence.views}
    lookups = sorted(
        d.evidence.lookups,
        key=lambda lk: (text_report._qorder(d, Question(fqdn(lk.qname), lk.qtype)), order.get(lk.view, 99),
                        lk.server is not None, str(lk.server)),
    )
    groups: dict[str, list[_ResolutionRow]] = {}
    for lk in lookups:
        if lk.server is not None and kinds.get(lk.view) is not ViewKind.AUTHORITATIVE:
            continue  # a resolver view's one server says what the view says
        where = lk.view if lk.server is None else f"{(lk.server.name or '').rstrip('.')} {lk.server.address}".strip()
        groups.setdefault(f"{lk.qname.rstrip('.')} {lk.qtype}", []).append(
            _ResolutionRow(where, lk.outcome.value, text_report._answer(lk), text_report._time(d, lk),
                           lk.outcome.is_failure)
        )
    return [{"question": q, "rows": rows} for q, rows in groups.items()]
