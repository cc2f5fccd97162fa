"""Markdown of a diagnosis and of an audit, for a ticket, a wiki page or a mail to the other side's
administrator: the same sections as the terminal report. Everything the servers said is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO

from mxdoctor.checks import _registry as registry
from mxdoctor.diagnosis import Diagnosis, Finding, Severity
from mxdoctor.report import audit as audit_report
from mxdoctor.report import diagnose as diagnose_report
from mxdoctor.report._registry import Kind, Options, renderer

_SPECIAL = str.maketrans({c: f"\\{c}" for c in "\\`*_[]<>|#"})


def text(value: str) -> str:
    """Plain text that Markdown shows as written: no markup, no HTML, one line."""
    return " ".join(value.translate(_SPECIAL).split())


def code(value: str) -> str:
    """An inline code span that holds any text: its fence is longer than any run of backticks in it."""
    value = " ".join(value.split())
    runs = [len(r) for r in "".join(c if c == "`" else " " for c in value).split()]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or not value else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def table(head: list[str], rows: Iterable[list[str]]) -> list[str]:
    """A pipe table; cells are given already escaped."""
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return out


def _verdicts(d: Diagnosis) -> list[str]:
    lines = ["## Verdicts per MTA", ""]
    rows = []
    for v in d.verdicts:
        why = text(v.text)
        if v.because:
            why += "<br>because " + ", ".join(code(c) for c in v.because)
        for alt in v.alternatives:
            why += f"<br>with {code(alt.knob)}: **{alt.outcome.value}** — {text(alt.how)}"
        rows.append([code(v.mta), f"**{v.outcome.value.upper()}**", why])
    return lines + table(["MTA", "outcome", "what it logs / why"], rows) + [""]


def _finding(f: Finding) -> list[str]:
    lines = [f"### {f.severity.value} {code(f.code)} {text(f.subject)}", "", text(f.message), ""]
    if f.severity is Severity.INFO:
        return lines
    if f.seen:
        lines.append("- seen: " + "; ".join(text(str(s) + (f": {s.detail}" if s.detail else "")) for s in f.seen))
    lines.append("- why: " + text(registry.spec(f.code).explanation))
    if f.remediation.receiver:
        lines.append("- **fix (receiving side):** " + text(f.remediation.receiver))
    if f.remediation.sender:
        lines.append("- **fix (sending side):** " + text(f.remediation.sender))
    if f.rfcs:
        lines.append("- see: " + ", ".join(text(r) for r in f.rfcs))
    if f.reproduce:
        fence = "~" * max(3, *(len(line) - len(line.lstrip("~")) + 1 for line in f.reproduce))
        lines += ["", "Reproduce:", "", fence, *(" ".join(cmd.split()) for cmd in f.reproduce), fence]
    return lines + [""]


def _findings(d: Diagnosis) -> list[str]:
    lines = ["## Findings", ""]
    if not d.findings:
        lines += ["none", ""]
    for f in d.findings:
        lines += _finding(f)
    return lines


def _head(d: Diagnosis, command: str) -> list[str]:
    lines = [f"# mxdoctor {command} {text(d.target)}", ""]
    if d.evidence.deadline_hit:
        lines += ["*The overall deadline ended the probe: some answers are missing.*", ""]
    lines += [f"**{text(diagnose_report.headline(d))}**", ""]
    causes = d.root_causes()
    if causes:
        lines += [f"Root cause: {code(causes[0].code)} {text(causes[0].message)}", ""]
    return lines


@renderer(Kind.DIAGNOSIS, "markdown")
def write_diagnosis(d: Diagnosis, out: IO[str], options: Options) -> None:
    views = ", ".join(text(v.name) for v in d.evidence.views)
    lines = _head(d, "diagnose") + [f"Views: {views}", ""] + _verdicts(d) + _findings(d)
    if not options.brief:
        rows = [[text(r.question), text(r.where.strip()), r.outcome.value, text(r.answer), r.time]
                for r in diagnose_report.resolution_rows(d)]
        lines += ["## Resolution", ""] + table(["asked", "where", "result", "answer", "time"], rows) + [""]
    lines.append(f"Exit status {d.exit_code}.")
    out.write("\n".join(lines) + "\n")


@renderer(Kind.AUDIT, "markdown")
def write_audit(d: Diagnosis, out: IO[str], options: Options) -> None:
    lines = _head(d, "audit")
    results = audit_report.results(d.evidence)
    for zone, servers in audit_report.zones(d.evidence):
        lines += [f"## Zone {text(zone)}", ""]
        rows: dict[str, dict[str, str]] = {}
        for r in results:
            if r.probe.zone == zone:
                shown = audit_report.word(r)
                shown = f"**{shown}**" if shown == "FAIL" else shown
                rows.setdefault(audit_report.row_label(r.probe), {})[r.probe.server.address] = f"{shown} {r.rcode}"
        head = ["probe", *(text(f"{s.name or ''} {s.address}".strip()) for s in servers)]
        body = [[text(label), *(by.get(s.address, "n/a") for s in servers)] for label, by in rows.items()]
        lines += table(head, body) + [""]
    lines += ["ok = expected answer, FAIL = wrong answer, -- = no answer; each with the RCODE.", ""]
    lines += _findings(d) + _verdicts(d) + [f"Exit status {d.exit_code}."]
    out.write("\n".join(lines) + "\n")
