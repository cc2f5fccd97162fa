"""The audit report: the probe × server matrix of each zone, the findings, and what the MTA models
make of it; as rich text (80 columns, NO_COLOR honoured) or JSON. Reads a Diagnosis, computes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mxdoctor import diagnosis, evidence
from mxdoctor.checks.audit import Judge, Result, Status
from mxdoctor.diagnosis import Verdict
from mxdoctor.dns import probeset
from mxdoctor.evidence import AuditProbe, Evidence, Server
from mxdoctor.report import _json
from mxdoctor.report import diagnose as diagnose_report
from mxdoctor.report._common import FindingDoc, findings_doc, make_console
from mxdoctor.report._registry import Kind, Options, renderer

SCHEMA = "mxdoctor.audit"
SCHEMA_VERSION = "1.0"
PROBE_COLUMN = 24
CELL_WIDTH = 14

_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.NO_ANSWER: "bold yellow"}
_WORD = {Status.PASS: "ok", Status.FAIL: "FAIL", Status.NO_ANSWER: "--"}


def zones(ev: Evidence) -> list[tuple[str, list[Server]]]:
    """Every audited zone with its server addresses, in the order the probes were sent."""
    out: dict[str, list[Server]] = {}
    for p in ev.audit:
        servers = out.setdefault(p.zone, [])
        if p.server not in servers:
            servers.append(p.server)
    return list(out.items())


def row_label(p: AuditProbe) -> str:
    """The probe's name, with the name asked (relative to the zone) for name probes and ``ent``."""
    if probeset.BY_NAME[p.name].scope is probeset.Scope.ZONE and p.name != "ent":
        return p.name
    qname = p.qname.lower()
    if qname == p.zone:
        return f"{p.name} @"
    if qname.endswith("." + p.zone):
        return f"{p.name} {qname[: -len(p.zone) - 1]}"
    return f"{p.name} {qname}"


def _rows(judge: Judge, zone: str) -> dict[str, dict[str, Result]]:
    rows: dict[str, dict[str, Result]] = {}
    for r in judge.results:
        if r.probe.zone == zone:
            rows.setdefault(row_label(r.probe), {})[r.probe.server.address] = r
    return rows


def results(ev: Evidence) -> list[Result]:
    """Every probe of the audit, judged (the one place the renderers reach the audit's judgement)."""
    return Judge(ev).results


def word(r: Result) -> str:
    """What a matrix cell says before the RCODE: ``ok``, ``FAIL`` or ``--`` (no answer)."""
    return _WORD[r.status]


def cell(r: Result | None) -> Text:
    if r is None:
        return Text("n/a", style="dim")
    label = f"{_WORD[r.status]} {r.rcode}"
    if r.status is Status.PASS and r.exchange is not None and "TC" in r.exchange.flags:
        label += " TC"
    return Text(label, style=_STYLE[r.status])


def matrix(judge: Judge, zone: str, servers: list[Server], console: Console) -> None:
    width = console.width or 80
    per_table = max(1, (width - PROBE_COLUMN - 4) // (CELL_WIDTH + 1))
    rows = _rows(judge, zone)
    for start in range(0, len(servers), per_table):
        chunk = servers[start : start + per_table]
        part = "" if len(servers) <= per_table else f" (servers {start + 1}-{start + len(chunk)} of {len(servers)})"
        table = Table(title=f"Zone {zone}{part}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("probe", no_wrap=True, max_width=PROBE_COLUMN, overflow="ellipsis")
        for s in chunk:
            table.add_column(f"{s.name or ''}\n{s.address}", no_wrap=True, max_width=CELL_WIDTH + 6,
                             overflow="ellipsis")
        for label, by_addr in rows.items():
            table.add_row(label, *(cell(by_addr.get(s.address)) for s in chunk))
        console.print(table)


def render(d: diagnosis.Diagnosis, console: Console) -> None:
    ev = d.evidence
    judge = Judge(ev)
    console.print(Text(f"mxdoctor audit {ev.target}", style="bold"))
    if ev.deadline_hit:
        console.print(Text("the overall deadline ended the audit: some probes are missing", style="red"))
    found = zones(ev)
    if not found:
        console.print(Text("no zone to audit: no authoritative server of the domain or its MX hosts was found",
                           style="red"))
    for zone, servers in found:
        names = sorted({p.qname.lower() for p in ev.audit if p.zone == zone and
                        probeset.BY_NAME[p.name].scope is probeset.Scope.NAME})
        console.print(Text(f"{zone}: {len(servers)} server address(es); names probed: {', '.join(names)}",
                           style="dim"))
    console.print()
    for zone, servers in found:
        matrix(judge, zone, servers, console)
    console.print(Text("ok = expected answer, FAIL = wrong answer, -- = no answer; each with the RCODE. "
                       "See docs/audit.md for what each probe expects.", style="dim"))
    console.print()
    diagnose_report._findings(d, console)
    console.print(Text("What it means for senders", style="bold italic"))
    console.print(Text(diagnose_report.headline(d), style="bold"))
    diagnose_report._verdicts(d, console)
    console.print(Text(f"exit status {d.exit_code}", style="dim"))


@renderer(Kind.AUDIT, "text")
def write_text(d: diagnosis.Diagnosis, out: IO[str], options: Options) -> None:
    render(d, make_console(out, color=options.color, width=options.width))


@dataclass(frozen=True)
class ZoneDoc:
    zone: str
    servers: tuple[Server, ...]


@dataclass(frozen=True)
class ProbeDoc:
    """One probe sent to one server address, as judged."""

    probe: str
    zone: str
    qname: str
    qtype: str
    server: str | None
    address: str
    status: str
    rcode: str
    detail: str
    code: str
    exchanges: tuple[int, ...]

    @classmethod
    def of(cls, r: Result) -> ProbeDoc:
        return cls(
            probe=r.probe.name,
            zone=r.probe.zone,
            qname=r.probe.qname,
            qtype=r.exchange.qtype if r.exchange else probeset.BY_NAME[r.probe.name].qtype,
            server=r.probe.server.name,
            address=r.probe.server.address,
            status=r.status.value,
            rcode=r.rcode,
            detail=r.detail,
            code=r.spec.code if r.spec is not None and not r.ok else "",
            exchanges=r.probe.exchanges,
        )


@dataclass(frozen=True)
class AuditDoc:
    """The JSON form (docs/audit.md)."""

    schema: str
    version: str
    domain: str
    target: str
    exit_code: int
    zones: tuple[ZoneDoc, ...]
    probes: tuple[ProbeDoc, ...]
    findings: tuple[FindingDoc, ...]
    verdicts: tuple[Verdict, ...]
    evidence: dict[str, Any]


@_json.document(Kind.AUDIT)
def document(d: diagnosis.Diagnosis) -> AuditDoc:
    ev = d.evidence
    return AuditDoc(
        schema=SCHEMA,
        version=SCHEMA_VERSION,
        domain=d.domain,
        target=d.target,
        exit_code=d.exit_code,
        zones=tuple(ZoneDoc(zone, tuple(servers)) for zone, servers in zones(ev)),
        probes=tuple(ProbeDoc.of(r) for r in Judge(ev).results),
        findings=findings_doc(d.findings),
        verdicts=d.verdicts,
        evidence=evidence.to_dict(ev),
    )
