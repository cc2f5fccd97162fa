"""The picture of the mail path as inline SVG: domain -> MX -> exchanger hosts -> A/AAAA answers, one
row per view and per authoritative server, failing lookups marked by colour AND a text label.

A small layered layout of our own (columns, fixed row height, monospace text), so no system binary
is needed and the picture reads the same in black and white and on paper.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from mxdoctor.diagnosis import Diagnosis
from mxdoctor.evidence import Lookup, Outcome, ViewKind
from mxdoctor.route import Route, fqdn

CHAR = 7.4  # width of one character of the 12px monospace font, in px
ROW = 18.0  # height of one row of a box
PAD = 8.0
GAP = 44.0  # horizontal space between columns (the edges run there)
MAX_LABEL = 46  # characters shown of a row; the report's tables carry the whole text


@dataclass(frozen=True)
class Row:
    label: str  # where the answer came from: a view, or a server of the authoritative view
    result: str  # "ok", "no data", "FAIL", ...
    detail: str  # the rcode and the records
    failed: bool


@dataclass(frozen=True)
class Box:
    title: str
    rows: tuple[Row, ...]

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.rows)

    def width(self) -> float:
        texts = [self.title] + [_row_text(r) for r in self.rows]
        return min(max(len(t) for t in texts), MAX_LABEL + 12) * CHAR + 2 * PAD

    def height(self) -> float:
        return ROW * (1 + len(self.rows)) + PAD


def _row_text(r: Row) -> str:
    text = f"{r.result:<7} {r.label}: {r.detail}".rstrip(": ")
    return text if len(text) <= MAX_LABEL + 12 else text[: MAX_LABEL + 11] + "…"


def _result(lk: Lookup) -> tuple[str, bool]:
    if lk.unfinished:
        return "unfinished", False  # the deadline ended it: not a failure of the server
    if lk.outcome is Outcome.NOERROR:
        return "ok", False
    if lk.outcome is Outcome.NODATA:
        return "no data", False
    if lk.outcome is Outcome.NXDOMAIN:
        return "NXDOMAIN", lk.qtype != "MX"  # a missing MX host is a fault; a missing domain is an answer
    return "FAIL", True


def _where(d: Diagnosis, lk: Lookup) -> str:
    view = d.evidence.view(lk.view)
    if lk.server is None or view is None or view.kind is not ViewKind.AUTHORITATIVE:
        return lk.view
    name = (lk.server.name or "").rstrip(".")
    return f"{name} {lk.server.address}".strip()


def rows_for(d: Diagnosis, qname: str, qtype: str) -> tuple[Row, ...]:
    """One row per recursive view (its summary) and per authoritative server, in the views' order."""
    order = {v.name: i for i, v in enumerate(d.evidence.views)}
    want = fqdn(qname)
    mine = [lk for lk in d.evidence.lookups if fqdn(lk.qname) == want and lk.qtype == qtype]
    kinds = {v.name: v.kind for v in d.evidence.views}
    chosen: list[Lookup] = []
    for lk in mine:
        authoritative = kinds.get(lk.view) is ViewKind.AUTHORITATIVE
        if authoritative == (lk.server is not None):
            chosen.append(lk)
    chosen.sort(key=lambda lk: (order.get(lk.view, 99), str(lk.server)))
    out = []
    for lk in chosen:
        result, failed = _result(lk)
        detail = lk.outcome.value if lk.outcome is not Outcome.NOERROR else " ".join(lk.records)
        if lk.unfinished:
            detail = "cut off by the deadline"
        if lk.cnames:
            detail = "CNAME " + " -> ".join(c.rstrip(".") for c in lk.cnames) + " " + detail
        out.append(Row(_where(d, lk), result, detail.strip(), failed))
    return tuple(out)


def _hosts(routes: Iterable[Route]) -> list[tuple[str, int]]:
    seen: dict[str, int] = {}
    for r in routes:
        for x in r.exchangers:
            seen.setdefault(x.host, x.preference)
    return sorted(seen.items(), key=lambda hp: (hp[1], hp[0]))


def side_at_fault(d: Diagnosis) -> tuple[str, str] | None:
    """(code, words) naming who must act for the first root cause, from where it was seen."""
    causes = d.root_causes() or [f for f in d.findings if f.severity.rank >= 3]
    if not causes:
        return None
    cause = causes[0]
    auth = {v.name for v in d.evidence.views if v.kind is ViewKind.AUTHORITATIVE}
    servers = sorted({s.server for s in cause.seen if s.view in auth and s.server})
    if servers:
        return cause.code, "receiving side: its authoritative DNS (" + ", ".join(servers) + ")"
    if cause.seen:
        return cause.code, "sending side: " + ", ".join(sorted({s.view for s in cause.seen}))
    return cause.code, "see the finding"


def svg(d: Diagnosis) -> str:
    """The whole picture as one <svg> element (no external reference)."""
    domain = fqdn(d.domain)
    mx = Box(f"{domain.rstrip('.')} MX", rows_for(d, domain, "MX"))
    hosts = _hosts(d.routes.values())
    columns: list[list[tuple[Box, int]]] = [[(Box(domain.rstrip("."), ()), 0)], [(mx, 0)], [], []]
    for i, (host, pref) in enumerate(hosts):
        columns[2].append((Box(f"{host.rstrip('.')} (preference {pref})", ()), i))
        for qtype in ("A", "AAAA"):
            columns[3].append((Box(f"{host.rstrip('.')} {qtype}", rows_for(d, host, qtype)), i))
    widths = [max((b.width() for b, _ in col), default=0.0) for col in columns]
    banner = side_at_fault(d)
    top = 2 * ROW + PAD if banner else PAD
    # Column 3 decides the height; each host's box in column 2 sits beside its own A and AAAA boxes.
    ys: list[list[float]] = [[], [], [], []]
    y = top
    host_y: dict[int, tuple[float, float]] = {}
    for box, owner in columns[3]:
        ys[3].append(y)
        lo, _ = host_y.get(owner, (y, y))
        host_y[owner] = (lo, y + box.height())
        y += box.height() + PAD
    height = max(y, top + mx.height() + PAD) + PAD
    for box, owner in columns[2]:
        lo, hi = host_y.get(owner, (top, top + box.height()))
        ys[2].append((lo + hi) / 2 - box.height() / 2)
    ys[1].append(max(top, (height - mx.height()) / 2))
    ys[0].append(max(top, (height - columns[0][0][0].height()) / 2))
    xs: list[float] = [PAD]
    for w in widths[:-1]:
        xs.append(xs[-1] + w + GAP)
    width = xs[-1] + widths[-1] + PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="mailpath" role="img" width="100%" '
        f'style="max-width:{width:.0f}px;height:auto" viewBox="0 0 {width:.0f} {height:.0f}" '
        'font-family="DejaVu Sans Mono, monospace" font-size="12">',
        f"<title>Mail path of {escape(domain)}: MX, exchangers and their address lookups per view</title>",
    ]
    if banner:
        code, words = banner
        parts.append(f'<text x="{PAD}" y="{ROW}" class="banner" font-weight="bold">'
                     f"Root cause {escape(code)}; to act: {escape(words)}</text>")
    centres: list[list[tuple[float, float, float]]] = []  # per column: (left x, right x, mid y)
    for c, col in enumerate(columns):
        mids = []
        for (box, _), top_y in zip(col, ys[c], strict=True):
            parts.extend(_box(box, xs[c], top_y, widths[c]))
            mids.append((xs[c], xs[c] + widths[c], top_y + box.height() / 2))
        centres.append(mids)
    for c in range(3):
        for i, (_, right, y0) in enumerate(centres[c]):
            for j, (left, _, y1) in enumerate(centres[c + 1]):
                if c == 2 and columns[3][j][1] != columns[2][i][1]:
                    continue  # an A/AAAA box belongs to one host
                failed = columns[c + 1][j][0].failed
                parts.append(_edge(right, y0, left, y1, failed))
    parts.append("</svg>")
    return "\n".join(parts)


def _box(box: Box, x: float, y: float, w: float) -> Sequence[str]:
    cls = "box fail" if box.failed else "box"
    out = [
        f'<g class="{cls}">',
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{box.height():.0f}" rx="4" '
        f'fill="{"#fdecea" if box.failed else "#f4f7fb"}" stroke="{"#b3261e" if box.failed else "#5f6b7a"}" '
        f'stroke-width="{2 if box.failed else 1}"/>',
        f'<text x="{x + PAD:.0f}" y="{y + ROW - 4:.0f}" font-weight="bold">{escape(box.title)}</text>',
    ]
    for i, row in enumerate(box.rows):
        ry = y + ROW * (i + 2) - 4
        colour = "#b3261e" if row.failed else "#1e6b32" if row.result == "ok" else "#444"
        weight = ' font-weight="bold"' if row.failed else ""
        out.append(f'<text x="{x + PAD:.0f}" y="{ry:.0f}" fill="{colour}"{weight} '
                   f'class="{"row fail" if row.failed else "row"}">{escape(_row_text(row))}</text>')
    out.append("</g>")
    return out


def _edge(x0: float, y0: float, x1: float, y1: float, failed: bool) -> str:
    mid = (x0 + x1) / 2
    dash = ' stroke-dasharray="5 3"' if failed else ""
    colour = "#b3261e" if failed else "#5f6b7a"
    return (f'<path d="M{x0:.0f},{y0:.0f} C{mid:.0f},{y0:.0f} {mid:.0f},{y1:.0f} {x1:.0f},{y1:.0f}" '
            f'fill="none" stroke="{colour}" stroke-width="{2 if failed else 1}"{dash}/>')
