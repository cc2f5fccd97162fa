"""A diagnosis as text and JSON: the terminal report (verdicts first, then findings with evidence,
then the resolution table; readable at 80 columns and without colour) and the documented JSON form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mxdoctor import diagnosis, evidence
from mxdoctor.checks import _registry as registry
from mxdoctor.diagnosis import Decision, Diagnosis, Finding, Severity, Verdict
from mxdoctor.evidence import DNSSEC_KEYS_VIEW, Lookup, Outcome, ViewKind
from mxdoctor.report import _json
from mxdoctor.report import smtp as smtp_report
from mxdoctor.report._common import FindingDoc, findings_doc, make_console, project
from mxdoctor.report._registry import Kind, Options, renderer
from mxdoctor.route import Exchanger, Question, Route, fqdn

SCHEMA = "mxdoctor.diagnosis"
SCHEMA_VERSION = "1.0"

_OUTCOME_STYLE = {
    Decision.DELIVER: "bold green",
    Decision.DEFER: "bold yellow",
    Decision.BOUNCE: "bold red",
    Decision.UNKNOWN: "bold magenta",
}
_SEVERITY_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.ERROR: "red",
    Severity.WARNING: "yellow",
    Severity.NOTICE: "cyan",
    Severity.INFO: "green",
}


def headline(d: Diagnosis) -> str:
    by: dict[Decision, list[str]] = {}
    for v in d.verdicts:
        by.setdefault(v.outcome, []).append(v.mta)
    parts = [f"{o.value} {len(by[o])}" for o in Decision if o in by]
    bad = by.get(Decision.DEFER, []) + by.get(Decision.BOUNCE, [])
    if bad:
        who = ", ".join(bad)
        return f"mail to {d.domain} is held or refused by: {who} ({'; '.join(parts)})"
    if Decision.UNKNOWN in by:
        return f"mail to {d.domain}: could not decide for {', '.join(by[Decision.UNKNOWN])}"
    return f"mail to {d.domain} is delivered by every modelled MTA"


def render(d: Diagnosis, console: Console, *, show_table: bool = True) -> None:
    ev = d.evidence
    views = ", ".join(
        v.name + (f" ({', '.join(str(s) for s in v.servers)})" if v.kind in (ViewKind.RESOLVER, ViewKind.SYSTEM)
                  and v.servers else "")
        for v in ev.views
    )
    console.print(Text(f"mxdoctor diagnose {d.target}", style="bold"))
    console.print(Text(f"views: {views}", style="dim"))
    if ev.deadline_hit:
        console.print(Text("the overall deadline ended the probe: some lookups are missing", style="red"))
    console.print()
    console.print(Text(headline(d), style="bold"))
    causes = d.root_causes()
    if causes:
        c = causes[0]
        console.print(Text.assemble(("root cause: ", "bold"), (c.code, _SEVERITY_STYLE[c.severity]),
                                    f"  {c.message}"))
    console.print()
    _verdicts(d, console)
    _findings(d, console)
    if ev.smtp:
        console.print(Text("SMTP probe, stage by stage", style="bold italic"))
        smtp_report.render(ev.smtp, console)
        console.print()
    if show_table:
        _resolution(d, console)


def _verdicts(d: Diagnosis, console: Console) -> None:
    table = Table(title="Verdicts per MTA", title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    table.add_column("MTA", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("what it logs / why")
    for v in d.verdicts:
        lines = [Text(v.text)]
        if v.because:
            lines.append(Text("because " + ", ".join(v.because), style="dim"))
        if v.view:
            lines.append(Text(f"through {v.view}" + (f", with {', '.join(v.knobs)}" if v.knobs else ""),
                              style="dim"))
        for alt in v.alternatives:
            lines.append(Text.assemble(("with " + alt.knob + ": ", "bold"),
                                       (alt.outcome.value, _OUTCOME_STYLE[alt.outcome]), f" — {alt.how}"))
        table.add_row(v.mta, Text(v.outcome.value.upper(), style=_OUTCOME_STYLE[v.outcome]), Group(*lines))
    console.print(table)


def _findings(d: Diagnosis, console: Console) -> None:
    console.print(Text("Findings", style="bold italic"))
    if not d.findings:
        console.print("  none")
    for f in d.findings:
        _finding(f, console)
    console.print()


def _finding(f: Finding, console: Console) -> None:
    head = Text.assemble(
        (f"{f.severity.value:<8} ", _SEVERITY_STYLE[f.severity]),
        (f.code, "bold"),
        f"  {f.subject}",
    )
    console.print(head)
    console.print(Text("  " + f.message))
    if f.severity is Severity.INFO:
        return
    if f.seen:
        console.print(Text("  seen: " + "; ".join(_seen(s) for s in f.seen), style="dim"))
    spec = registry.spec(f.code)
    console.print(Text("  why: " + spec.explanation))
    if f.remediation.receiver:
        console.print(Text.assemble(("  fix (receiving side): ", "bold"), f.remediation.receiver))
    if f.remediation.sender:
        console.print(Text.assemble(("  fix (sending side): ", "bold"), f.remediation.sender))
    if f.reproduce:
        console.print(Text("  reproduce:", style="bold"))
        for cmd in f.reproduce:
            console.print(Text("    " + cmd), soft_wrap=True)
    if f.rfcs:
        console.print(Text("  see: " + ", ".join(f.rfcs), style="dim"))
    console.print()


def _seen(s: diagnosis.Seen) -> str:
    out = s.view + (f" {s.server}" if s.server else "")
    return out + (f": {s.detail}" if s.detail else "")


def _answer(lk: Lookup, d: Diagnosis | None = None) -> str:
    text = " ".join(lk.records)
    if lk.cnames:
        text = "CNAME " + " -> ".join(lk.cnames) + ((" " + text) if text else "")
    if lk.detail and lk.outcome.is_failure:
        text = (text + " " + lk.detail).strip()
    if d is not None:
        # RFC 8914: what the server said about its failure (a validating resolver: which DNSSEC fault)
        edes = {f"EDE {e.code}" + (f" {e.text}" if e.text else "")
                for i in lk.exchanges if (x := d.evidence.exchange(i)) is not None for e in x.ede}
        if edes:
            text = (text + " " + "; ".join(sorted(edes))).strip()
    return text


def _time(d: Diagnosis, lk: Lookup) -> str:
    xs = [d.evidence.exchange(i) for i in lk.exchanges]
    total = sum(x.duration for x in xs if x is not None)
    return f"{total * 1000:.0f} ms" if xs else ""


@dataclass(frozen=True)
class ResolutionRow:
    """One line of the resolution table: a question's first row names it, the others where it was asked."""

    question: str  # "mx.example.com AAAA" on the first row of each question, else ""
    where: str  # the view, or "  ns1.example.net 192.0.2.1" for one server
    outcome: Outcome
    answer: str
    time: str


def resolution_rows(d: Diagnosis) -> list[ResolutionRow]:
    """Each question, where it was asked and what came back, questions in route order; a resolver
    view's one server is left out when it says exactly what the view says."""
    order = {v.name: i for i, v in enumerate(d.evidence.views)}
    # The zones' DNSKEY and DS answers are key material: the DNSSEC findings say what they mean.
    route_lookups = [lk for lk in d.evidence.lookups
                     if not (lk.view == DNSSEC_KEYS_VIEW and lk.qtype in ("DNSKEY", "DS"))]
    lookups = sorted(
        route_lookups,
        key=lambda lk: (_qorder(d, Question(fqdn(lk.qname), lk.qtype)), order.get(lk.view, 99),
                        lk.server is not None, str(lk.server)),
    )
    summaries = {(lk.view, lk.qname, lk.qtype): lk for lk in lookups if lk.server is None}
    rows: list[ResolutionRow] = []
    last = None
    for lk in lookups:
        view = d.evidence.view(lk.view)
        if lk.server is not None and view is not None and view.kind is not ViewKind.AUTHORITATIVE:
            same = summaries.get((lk.view, lk.qname, lk.qtype))
            if same is not None and (same.outcome, same.records) == (lk.outcome, lk.records):
                continue  # a resolver view's one server says what the view says
        q = f"{lk.qname.rstrip('.')} {lk.qtype}"
        if lk.server is None:
            where = lk.view
        else:
            name = (lk.server.name or "").rstrip(".")
            host = f"[{lk.server.address}]" if ":" in lk.server.address else lk.server.address
            where = f"  {name} {host}".rstrip() if name else f"  {host}"
        rows.append(ResolutionRow(q if q != last else "", where, lk.outcome, _answer(lk, d), _time(d, lk)))
        last = q
    return rows


def _resolution(d: Diagnosis, console: Console) -> None:
    table = Table(title="Resolution (each question, where it was asked, what came back)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    table.add_column("asked")
    table.add_column("result", no_wrap=True)
    table.add_column("answer")
    table.add_column("time", justify="right", no_wrap=True)
    for row in resolution_rows(d):
        if row.question:
            table.add_row(Text(row.question, style="bold"), "", "", "")
        style = "green" if row.outcome.is_answer else "red"
        table.add_row(row.where, Text(row.outcome.value, style=style), row.answer, row.time)
    console.print(table)


def _qorder(d: Diagnosis, q: Question) -> tuple[int, str, str]:
    if q.qtype == "MX":
        return (0, q.qname, q.qtype)
    return (1, q.qname, "0" if q.qtype == "A" else q.qtype)


@renderer(Kind.DIAGNOSIS, "text")
def write_text(d: Diagnosis, out: IO[str], options: Options) -> None:
    render(d, make_console(out, color=options.color, width=options.width), show_table=not options.brief)


# The documented JSON form (docs/json.md), as typed data that the one encoder (report._json) writes.

@dataclass(frozen=True)
class ExchangerDoc:
    host: str
    preference: int
    implicit: bool
    a: Outcome | None
    aaaa: Outcome | None
    addresses: tuple[str, ...]

    @classmethod
    def of(cls, x: Exchanger) -> ExchangerDoc:
        return project(cls, x, a=x.a.outcome if x.a else None, aaaa=x.aaaa.outcome if x.aaaa else None)


@dataclass(frozen=True)
class RouteDoc:
    kind: str
    exchangers: tuple[ExchangerDoc, ...]

    @classmethod
    def of(cls, r: Route) -> RouteDoc:
        return cls(kind=r.kind.value, exchangers=tuple(ExchangerDoc.of(x) for x in r.exchangers))


@dataclass(frozen=True)
class DiagnosisDoc:
    schema: str
    version: str
    domain: str
    target: str
    exit_code: int
    reference_view: str | None
    verdicts: tuple[Verdict, ...]
    findings: tuple[FindingDoc, ...]
    routes: dict[str, RouteDoc]
    evidence: dict[str, Any]


@_json.document(Kind.DIAGNOSIS)
def document(d: Diagnosis) -> DiagnosisDoc:
    return DiagnosisDoc(
        schema=SCHEMA,
        version=SCHEMA_VERSION,
        domain=d.domain,
        target=d.target,
        exit_code=d.exit_code,
        reference_view=d.reference,
        verdicts=d.verdicts,
        findings=findings_doc(d.findings),
        routes={name: RouteDoc.of(r) for name, r in d.routes.items()},
        evidence=evidence.to_dict(d.evidence),
    )
