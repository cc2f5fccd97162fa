"""A small SVG line chart of a domain's history: held messages and oldest age over time.

Two series on one time axis, each scaled to its own maximum (labelled), lines and a text legend so
it reads without colour; no script, no external resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from mxdoctor.queues.status import format_age
from mxdoctor.web.board import Point

W, H = 720.0, 240.0
LEFT, RIGHT, TOP, BOTTOM = 56.0, 56.0, 24.0, 36.0


def svg(points: Sequence[Point], *, title: str) -> str:
    if len(points) < 1:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{W:.0f}" height="60" role="img">'
                f'<title>{escape(title)}</title><text x="8" y="30" font-size="13">no history yet</text></svg>')
    t0, t1 = points[0].at, points[-1].at
    span = max(t1 - t0, 1.0)
    max_msgs = max(max(p.messages for p in points), 1)
    max_age = max(max(p.oldest_age_s for p in points), 1.0)
    iw, ih = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + iw * (t - t0) / span

    def y(v: float, top: float) -> float:
        return TOP + ih * (1 - v / top)

    msgs = " ".join(f"{x(p.at):.1f},{y(p.messages, max_msgs):.1f}" for p in points)
    ages = " ".join(f"{x(p.at):.1f},{y(p.oldest_age_s, max_age):.1f}" for p in points)
    start = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M")
    end = datetime.fromtimestamp(t1, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="100%" '
        f'style="max-width:{W:.0f}px;height:auto" viewBox="0 0 {W:.0f} {H:.0f}" '
        'font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{iw}" height="{ih}" fill="#fafbfc" stroke="#d5dbe3"/>',
        f'<polyline class="series messages" points="{msgs}" fill="none" stroke="#1f5fa8" stroke-width="2"/>',
        f'<polyline class="series age" points="{ages}" fill="none" stroke="#b3261e" stroke-width="2" '
        'stroke-dasharray="6 3"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" fill="#1f5fa8">{max_msgs}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + ih}" text-anchor="end" fill="#1f5fa8">0</text>',
        f'<text x="{W - RIGHT + 4}" y="{TOP + 4}" fill="#b3261e">{escape(format_age(max_age))}</text>',
        f'<text x="{W - RIGHT + 4}" y="{TOP + ih}" fill="#b3261e">0</text>',
        f'<text x="{LEFT}" y="{H - 18}">{escape(start)}</text>',
        f'<text x="{W - RIGHT}" y="{H - 18}" text-anchor="end">{escape(end)}</text>',
        f'<text x="{LEFT}" y="{H - 4}" fill="#1f5fa8">— held messages (left axis)</text>',
        f'<text x="{W - RIGHT}" y="{H - 4}" text-anchor="end" fill="#b3261e">- - oldest age (right axis)</text>',
        "</svg>",
    ])
