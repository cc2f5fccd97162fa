"""SMTP probes for a terminal (one table of stages per address, then its TLS facts; also part of the
diagnose report) and the ``mxdoctor smtp`` result as text and JSON. The servers' words are printed
as plain text, never interpreted as markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from mxdoctor import evidence
from mxdoctor.diagnosis import Severity
from mxdoctor.evidence import SmtpProbe, SmtpStage, TlsInfo
from mxdoctor.report import _json
from mxdoctor.report._common import FindingDoc, findings_doc, make_console
from mxdoctor.report._registry import Kind, Options, renderer

if TYPE_CHECKING:
    from mxdoctor.api import SmtpResult

SCHEMA = "mxdoctor.smtp"
# 1.1: findings carry `reproduce` and `exchanges` too, as in every other JSON output.
SCHEMA_VERSION = "1.1"

# Longest server text shown per stage line; the evidence (and --json) keeps the whole reply.
SHOWN = 160


def where(p: SmtpProbe) -> str:
    address = f"[{p.address}]" if ":" in p.address else p.address
    host = p.host.rstrip(".")
    label = f"{host} " if host != p.address else ""
    return f"{label}{address}:{p.port} (IPv{p.family})"


def _words(s: SmtpStage) -> str:
    text = s.error if s.error else (s.text or "")
    if s.error and s.text:
        text = f"{s.text} ({s.error})"
    first = text.split("\n")
    shown = first[0] + (" …" if len(first) > 1 else "")
    return shown if len(shown) <= SHOWN else shown[: SHOWN - 1] + "…"


def stages_table(p: SmtpProbe) -> Table:
    """The stages of one probe: name, result, reply code, time taken and the server's words."""
    table = Table(
        title=Text(where(p), style="bold"),
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        expand=False,
        box=None,
        header_style="bold",
    )
    table.add_column("stage", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("code", justify="right", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("reply or error", overflow="fold", ratio=1)
    for s in p.stages:
        result = Text("ok", style="green") if s.ok else Text("FAIL", style="bold red")
        table.add_row(
            Text(s.stage),
            result,
            Text(str(s.code) if s.code is not None else "-"),
            Text(f"{s.duration * 1000:.0f} ms" if s.duration < 10 else f"{s.duration:.1f} s"),
            Text(_words(s)),
        )
    return table


def tls_lines(tls: TlsInfo) -> Text:
    """The TLS facts in a few lines: session, certificate, name match, expiry, chain."""
    out = Text()
    out.append("  TLS ", style="bold")
    out.append(f"{tls.protocol or '?'} {tls.cipher or ''}".strip() + "\n")
    if tls.subject is not None:
        out.append(f"  certificate {tls.subject}, issued by {tls.issuer}\n")
        out.append(f"  names {', '.join(tls.sans) or '(no subjectAltName)'}\n")
        if tls.matches_host is False:
            out.append("  name does NOT match the MX host\n", style="yellow")
        elif tls.matches_host:
            out.append("  name matches the MX host\n")
        expiry = f"  expires {tls.not_after}"
        out.append(expiry + (" (EXPIRED)\n" if tls.expired else "\n"), style="yellow" if tls.expired else "")
    if tls.verify_error:
        out.append(f"  chain not verified: {tls.verify_error}\n", style="yellow")
    out.rstrip()
    return out


def probe_block(p: SmtpProbe) -> RenderableType:
    parts: list[RenderableType] = [stages_table(p)]
    if p.extensions:
        parts.append(Text("  EHLO " + ", ".join(p.extensions), style="dim"))
    if p.tls is not None:
        parts.append(tls_lines(p.tls))
    return Group(*parts)


def render(probes: Iterable[SmtpProbe], console: Console) -> None:
    """Print every probe, one block per address, separated by a blank line."""
    for i, p in enumerate(probes):
        if i:
            console.print()
        console.print(probe_block(p))


_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.ERROR: "red",
    Severity.WARNING: "yellow",
    Severity.NOTICE: "cyan",
    Severity.INFO: "green",
}


@renderer(Kind.SMTP, "text")
def write_text(r: SmtpResult, out: IO[str], options: Options) -> None:
    console = make_console(out, color=options.color, width=options.width)
    if r.note:
        console.print(Text(r.note))
        console.print()
    if not r.evidence.smtp:
        console.print(Text("nothing to probe: no address was found", style="bold red"))
    render(r.evidence.smtp, console)
    if r.findings:
        console.print()
    for f in r.findings:
        line = Text()
        line.append(f"{f.severity.value:<8} ", style=_STYLE[f.severity])
        line.append(f"{f.code}  ", style="bold")
        line.append(f.message)
        console.print(line)
        if f.severity.rank >= Severity.WARNING.rank and f.remediation.receiver:
            console.print(Text(f"         receiving side: {f.remediation.receiver}", style="dim"))


@dataclass(frozen=True)
class SmtpDoc:
    """The JSON form (docs/smtp.md): every stage of every address, the findings, the exit code."""

    schema: str
    version: str
    target: str
    exit_code: int
    note: str | None
    probes: tuple[SmtpProbe, ...]
    findings: tuple[FindingDoc, ...]
    evidence: dict[str, Any]


@_json.document(Kind.SMTP)
def document(r: SmtpResult) -> SmtpDoc:
    return SmtpDoc(
        schema=SCHEMA,
        version=SCHEMA_VERSION,
        target=r.target,
        exit_code=r.exit_code,
        note=r.note,
        probes=r.evidence.smtp,
        findings=findings_doc(r.findings),
        evidence=evidence.to_dict(r.evidence),
    )
