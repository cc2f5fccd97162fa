"""Reader for Postfix ``mailq`` / ``postqueue -p`` text (showq's Sendmail-compatible listing).

A reason line ``(text)`` is printed only when it changes within a message, so it is carried to
the recipients that follow it. Arrival times carry no year: the latest past one is assumed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator

from mxdoctor.queues import _clock, record
from mxdoctor.queues.record import Item, Malformed, Mta, QueuedMessage, Recipient

NAME = "postfix-text"
MTA = Mta.POSTFIX
COMMAND = ("postqueue", "-p")

# Matched on a right-stripped line: the sender is the last word, or absent (linear on long lines,
# where "\s+(\S*)\s*$" backtracked quadratically over runs of spaces).
_ENTRY = re.compile(r"^(\S+?)([*!#]?)\s+(\d+)\s+(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d)(?:\s+(\S+))?$")
_QUEUE_BY_FLAG = {"*": "active", "!": "hold", "#": "deferred"}


def sniff(head: list[str]) -> bool:
    first = head[0] if head else ""
    return first.startswith(("-Queue ID-", "----Queue ID", "Mail queue is empty"))


@record.reader(NAME, MTA, command=COMMAND, sniff=sniff, order=50)
def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield one record per queue entry; ``now`` fixes the year of the yearless arrival times."""
    now = time.time() if now is None else now
    entry: re.Match[str] | None = None
    rcpts: list[Recipient] = []
    reason: str | None = None
    start = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip()
        if not line:
            if entry is not None:
                yield _message(entry, rcpts, now, start)
                entry, rcpts, reason = None, [], None
            continue
        if entry is not None and line.startswith("(") and line.endswith(")"):
            # showq indents the reason to column 23 unless it is too long to fit; then it starts at 0.
            reason = line[1:-1]
            continue
        if not line[0].isspace():
            if entry is not None:
                yield _message(entry, rcpts, now, start)
                entry, rcpts, reason = None, [], None
            if line.startswith(("-Queue ID-", "----Queue ID", "-- ", "Mail queue is empty")):
                continue
            match = _ENTRY.match(line)
            if match is None:
                yield Malformed(number, "not a queue entry line", record.excerpt(line))
            else:
                entry, start = match, number
            continue
        text = line.strip()
        if entry is None:
            yield Malformed(number, "recipient or reason outside a queue entry", record.excerpt(line))
        elif text.startswith("(") and text.endswith(")"):
            reason = text[1:-1]
        else:
            rcpts.append(record.recipient(text, reason))
    if entry is not None:
        yield _message(entry, rcpts, now, start)


def _message(entry: re.Match[str], rcpts: list[Recipient], now: float, line: int) -> Item:
    try:
        return record.check(_build(entry, rcpts, now))
    except _clock.NotUnderstood:
        return Malformed(line, "arrival time not understood", entry.group(4))
    except Exception as exc:  # any record, however broken, is one malformed entry
        return Malformed(line, record.problem(exc), record.excerpt(entry.group(0)))


def _build(entry: re.Match[str], rcpts: list[Recipient], now: float) -> QueuedMessage:
    queue_id, flag, size, when, sender = entry.groups()
    arrival = _clock.yearless(when, "%a %b %d %H:%M:%S", now)
    if flag:
        queue = _QUEUE_BY_FLAG[flag]
    else:
        queue = "deferred" if any(r.delay_reason for r in rcpts) else "incoming"
    status = "expiring" if flag == "#" else None
    return QueuedMessage(MTA, queue_id, queue, arrival, record.count(size), sender or "", tuple(rcpts), None,
                         status)
