"""The audit report: the probe × server matrix of each zone, the findings, and what the MTA models
make of it; as rich text (80 columns, NO_COLOR honoured) or JSON. Reads a Diagnosis, computes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mxdoctor import analysis, diagnosis, evidence
from mxdoctor.checks.audit import Judge, Result, Status
from mxdoctor.dns import probeset
from mxdoctor.evidence import AuditProbe, Evidence, Server, ViewKind
from mxdoctor.report import text

SCHEMA = "mxdoctor.audit"
SCHEMA_VERSION = "1.0"
PROBE_COLUMN = 24
CELL_WIDTH = 14

_STYLE = {Status.PASS: "green", Status.FAIL: "bold red", Status.NO_ANSWER: "bold yellow"}
_WORD = {Status.PASS: "ok", Status.FAIL: "FAIL", Status.NO_ANSWER: "--"}


def exit_code(d: diagnosis.Diagnosis) -> int:
    """The one exit policy (diagnosis.exit_status) over an audit."""
    ev = d.evidence
    auth = next((v for v in ev.views if v.kind is ViewKind.AUTHORITATIVE), None)
    outcomes = [v.outcome for v in d.verdicts]
    failing = {diagnosis.Decision.DEFER, diagnosis.Decision.BOUNCE} & set(outcomes)
    # No server answered, or nothing was probed and the route itself showed nothing wrong.
    untested = auth is None or not auth.reachable or (not ev.audit and not failing)
    return int(diagnosis.exit_status((f.severity for f in d.findings), outcomes=outcomes, untested=untested))


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
    text._findings(d, console)
    console.print(Text("What it means for senders", style="bold italic"))
    console.print(Text(text.headline(d), style="bold"))
    text._verdicts(d, console)
    console.print(Text(f"exit status {exit_code(d)}", style="dim"))


def to_dict(d: diagnosis.Diagnosis) -> dict[str, Any]:
    ev = d.evidence
    judge = Judge(ev)
    diagnosis = analysis.to_dict(d, with_evidence=False)
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "domain": d.domain,
        "target": d.target,
        "exit_code": exit_code(d),
        "zones": [
            {
                "zone": zone,
                "servers": [{"name": s.name, "address": s.address, "port": s.port} for s in servers],
            }
            for zone, servers in zones(ev)
        ],
        "probes": [
            {
                "probe": r.probe.name,
                "zone": r.probe.zone,
                "qname": r.probe.qname,
                "qtype": r.exchange.qtype if r.exchange else probeset.BY_NAME[r.probe.name].qtype,
                "server": r.probe.server.name,
                "address": r.probe.server.address,
                "status": r.status.value,
                "rcode": r.rcode,
                "detail": r.detail,
                "code": r.spec.code if r.spec is not None and not r.ok else "",
                "exchanges": list(r.probe.exchanges),
            }
            for r in judge.results
        ],
        "findings": diagnosis["findings"],
        "verdicts": diagnosis["verdicts"],
        "evidence": evidence.to_dict(ev),
    }


def dumps(d: diagnosis.Diagnosis) -> str:
    return json.dumps(to_dict(d), indent=2, ensure_ascii=False)
