"""Rendering of SMTP probes for a terminal: one table of stages per address, then its TLS facts.

Readable at 80 columns and without colour; the servers' words are printed as plain text, never
interpreted as markup. Used by ``mxdoctor smtp`` and available to the diagnose report.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from mxdoctor.evidence import SmtpProbe, SmtpStage, TlsInfo

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
