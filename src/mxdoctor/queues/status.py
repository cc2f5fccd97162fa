"""Monitoring verdicts on a queue shape: thresholds, the OK/WARNING/CRITICAL/UNKNOWN status and the
Nagios status line with perfdata. Durations are written as ``90s``, ``30m``, ``4h`` or ``2d``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mxdoctor.diagnosis import Severity, exit_status
from mxdoctor.errors import ConfigError
from mxdoctor.queues.classify import Category
from mxdoctor.queues.record import printable
from mxdoctor.queues.shape import Shape

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_DURATION = 100 * 365 * 86400.0  # beyond a century is a typo, and would not fit JSON as a number


def parse_duration(text: str | float | int) -> float:
    """Seconds in a duration such as ``30m``; a bare number is seconds. Raises ConfigError."""
    if isinstance(text, int | float):
        if not 0 <= text < _MAX_DURATION:
            raise ConfigError(f"not a duration: {text!r}")
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"not a duration: {printable(text[:40])!r} (use e.g. 90s, 30m, 4h, 2d)")
    seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if not seconds < _MAX_DURATION:
        raise DurationTooLong(f"not a duration we take: {printable(text[:40])!r} is longer than a century")
    return seconds


class DurationTooLong(ConfigError):
    """A well-formed duration beyond any sensible bound (a typo, or a hostile value)."""


def format_age(seconds: float | None) -> str:
    """A short human age: ``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


class Status(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Thresholds:
    """Mail defaults: warn when the oldest message is 30 minutes old, critical at 4 hours."""

    warn_age: float = 30 * 60
    crit_age: float = 4 * 3600
    warn_count: int | None = None
    crit_count: int | None = None


def severity(shape: Shape, limits: Thresholds) -> Severity | None:
    """The queue's oldest message and size against the thresholds: CRITICAL, WARNING or None."""
    age = shape.total.oldest_age(shape.now) or 0.0
    count = shape.total.messages
    if age >= limits.crit_age or (limits.crit_count is not None and count >= limits.crit_count):
        return Severity.CRITICAL
    if age >= limits.warn_age or (limits.warn_count is not None and count >= limits.warn_count):
        return Severity.WARNING
    return None


def evaluate(shape: Shape, limits: Thresholds) -> Status:
    """The status of the whole queue through the one exit policy; nothing readable is UNKNOWN."""
    found = severity(shape, limits)
    return Status(exit_status([found] if found else [], untested=not shape.readable))


def _opt(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def nagios(shape: Shape, limits: Thresholds, status: Status, source: str) -> str:
    """One status line plus perfdata, as monitoring plugins print it."""
    total = shape.total
    age = total.oldest_age(shape.now)
    # Untrusted text (a domain from the queue, the source's name) escaped, and without the '|'
    # that would start the perfdata part of the line.
    source = printable(source).replace("|", "\\x7c")
    if status is Status.UNKNOWN:
        text = f"nothing readable in {source}: {shape.malformed} malformed line(s)"
    else:
        text = f"{total.messages} message(s) in {source}, oldest {format_age(age)}"
        worst = max(shape.domains.values(), key=lambda d: d.oldest_age(shape.now) or -1.0, default=None)
        if worst is not None and worst.dominant is not None and worst.messages:
            domain = printable(worst.domain).replace("|", "\\x7c")
            text += f"; {domain}: {worst.dominant.category} {worst.dominant.summary}"
        if shape.malformed:
            text += f"; {shape.malformed} malformed line(s)"
    perf = [
        f"'messages'={total.messages};{_opt(limits.warn_count)};{_opt(limits.crit_count)};0;",
        f"'oldest_age'={int(age or 0)}s;{_opt(limits.warn_age)};{_opt(limits.crit_age)};0;",
        f"'domains'={len(shape.domains)};;;0;",
        f"'malformed'={shape.malformed};;;0;",
    ]
    categories = total.categories()
    perf += [f"'deferrals_{c.value}'={categories.get(c, 0)};;;0;" for c in Category]
    return f"MXDOCTOR QUEUE {status.name} - {text} | {' '.join(perf)}"
