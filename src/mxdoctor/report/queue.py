"""Text (rich), JSON and Nagios renderings of a queue shape for ``mxdoctor queue``."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mxdoctor.queues import status as status_mod
from mxdoctor.queues.record import printable
from mxdoctor.queues.shape import BUCKET_LABELS, DomainShape, Shape
from mxdoctor.queues.status import Status, Thresholds, format_age
from mxdoctor.report import _json
from mxdoctor.report._common import make_console
from mxdoctor.report._registry import Kind, Options, renderer

if TYPE_CHECKING:
    from mxdoctor.api import QueueReport

SCHEMA = "mxdoctor.queue"
SCHEMA_VERSION = "1.0"


def domain_dict(d: DomainShape, now: float) -> dict[str, Any]:
    return {
        "domain": d.domain,
        "messages": d.messages,
        "buckets": dict(zip(BUCKET_LABELS, d.buckets, strict=True)),
        "oldest_arrival": d.oldest_arrival,
        "oldest_age_s": None if d.oldest_arrival is None else round(d.oldest_age(now) or 0.0, 1),
        "oldest_queue_id": d.oldest_id,
        "mtas": sorted(m.value for m in d.mtas),
        "deferred_recipients": d.deferred,
        "categories": {c.value: n for c, n in sorted(d.categories().items())},
        "dominant_reason": d.dominant_dict(),
    }


def to_json(shape: Shape, *, source: str, fmt: str | None, status: Status, limits: Thresholds,
            top: int | None) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "source": source,
        "format": fmt,
        "now": shape.now,
        "status": status.name,
        "exit_code": int(status),
        "thresholds": {
            "warn_age_s": limits.warn_age,
            "crit_age_s": limits.crit_age,
            "warn_count": limits.warn_count,
            "crit_count": limits.crit_count,
        },
        "records": shape.records,
        "malformed": {
            "count": shape.malformed,
            "examples": [{"line": m.line, "problem": m.problem, "text": m.text} for m in shape.malformed_examples],
        },
        "bucket_minutes": list(BUCKET_LABELS),
        "total": domain_dict(shape.total, shape.now),
        "domains": [domain_dict(d, shape.now) for d in shape.top(top)],
        "domains_total": len(shape.domains),
    }


_STYLE = {Status.OK: "green", Status.WARNING: "yellow", Status.CRITICAL: "bold red", Status.UNKNOWN: "magenta"}


def print_text(console: Console, shape: Shape, *, source: str, fmt: str | None, status: Status,
               top: int | None) -> None:
    now = shape.now
    domains = shape.top(top)
    source = escape(printable(source))  # queue contents and names are untrusted: no escapes, no markup
    if status is Status.UNKNOWN:
        console.print(f"[{_STYLE[status]}]UNKNOWN[/]: nothing readable in {source}", highlight=False)
        _print_malformed(console, shape)
        return
    # Twelve columns must fit 80 characters: one space between columns, numbers never wrapped,
    # the domain column takes what is left and folds long names.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1), show_edge=False)
    table.add_column("domain", overflow="fold", min_width=10)
    table.add_column("T", justify="right", no_wrap=True)
    for label in BUCKET_LABELS:
        table.add_column(label, justify="right", no_wrap=True)
    for d in [shape.total, *domains]:
        style = "bold" if d is shape.total else None
        table.add_row(Text(printable(d.domain)), str(d.messages), *(str(n) for n in d.buckets), style=style)
    console.print(table)
    if len(shape.domains) > len(domains):
        console.print(f"({len(shape.domains) - len(domains)} more domains; --top 0 shows all)")

    reasons = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1))
    reasons.add_column("domain", overflow="fold", ratio=1, min_width=12)
    reasons.add_column("oldest", justify="right", no_wrap=True)
    reasons.add_column("category", no_wrap=True)
    reasons.add_column("dominant reason", overflow="fold", ratio=2)
    for d in domains:
        dom = d.dominant
        reasons.add_row(
            Text(printable(d.domain)),
            format_age(d.oldest_age(now)),
            dom.category.value if dom else "-",
            Text(printable(dom.short)) if dom else "(no reason listed)",
        )
    if domains:
        console.print(reasons)
    line = f"[{_STYLE[status]}]{status.name}[/]: {shape.total.messages} message(s) from {source}"
    if fmt:
        line += f" ({fmt})"
    line += f", oldest {format_age(shape.total.oldest_age(now))}"
    console.print(line, highlight=False)
    _print_malformed(console, shape)


def _print_malformed(console: Console, shape: Shape) -> None:
    if shape.malformed:
        console.print(f"{shape.malformed} malformed line(s) skipped; first:", highlight=False)
        for m in shape.malformed_examples:
            console.print(f"  {m}", highlight=False, markup=False, overflow="ellipsis", no_wrap=True)


@renderer(Kind.QUEUE, "text")
def write_text(r: QueueReport, out: IO[str], options: Options) -> None:
    console = make_console(out, color=options.color, width=options.width)
    print_text(console, r.shape, source=r.source, fmt=r.format, status=r.status, top=r.top)


@_json.document(Kind.QUEUE)
def document(r: QueueReport) -> dict[str, Any]:
    return to_json(r.shape, source=r.source, fmt=r.format, status=r.status, limits=r.limits, top=r.top)


@renderer(Kind.QUEUE, "nagios")
def write_nagios(r: QueueReport, out: IO[str], options: Options) -> None:
    out.write(status_mod.nagios(r.shape, r.limits, r.status, r.source) + "\n")
