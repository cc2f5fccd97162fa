"""Reader for Sendmail ``mailq`` (``sendmail -bp``): entry line, optional ``(status)`` line, recipients.

The status line (``(Deferred: ...)``, possibly after flags such as ``8BITMIME``) applies to the
whole message; the queue directory header (``/var/spool/mqueue (2 requests)``) names the queue.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator

from mxdoctor.queues import _clock, record
from mxdoctor.queues.record import Item, Malformed, Mta, QueuedMessage

NAME = "sendmail"
MTA = Mta.SENDMAIL
COMMAND = ("mailq",)

_ENTRY = re.compile(r"^(\S+?)([*X-]?)\s+(\d+)\s+(\w{3} \w{3} [ \d]\d \d\d:\d\d)(?:\s+(\S+))?\s*$")
_STATUS = re.compile(r"^(?:[A-Z0-9]+\s+)*\((.*)\)$")
_QUEUE_DIR = re.compile(r"^(/\S+) (?:\(\d+ requests?\)|is empty)$")
_NOISE = ("-----Q-ID-----", "Total requests:", "MSP Queue status", "MTA Queue status", "Mail queue is empty")


def sniff(head: list[str]) -> bool:
    return any(line.strip().startswith(("-----Q-ID-----", "MSP Queue status")) for line in head[:4]) or bool(
        head and _QUEUE_DIR.match(head[0].strip())
    )


@record.reader(NAME, MTA, command=COMMAND, sniff=sniff, order=60, mta_default=True)
def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield one record per queue entry; ``now`` fixes the year of the yearless queue times."""
    now = time.time() if now is None else now
    queue = "mqueue"
    entry: tuple[re.Match[str], int, str] | None = None
    addresses: list[str] = []
    reason: str | None = None
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith(_NOISE):
            continue
        header = _QUEUE_DIR.match(text)
        match = _ENTRY.match(text) if header is None else None
        if header is not None or match is not None:
            if entry is not None:
                yield _message(entry, addresses, reason, now)
                entry, addresses, reason = None, [], None
            if header is not None:
                queue = header.group(1).rsplit("/", 1)[-1]
            else:
                assert match is not None
                entry = (match, number, queue)
            continue
        status = _STATUS.match(text)
        if entry is None:
            yield Malformed(number, "not a mailq line", record.excerpt(raw))
        elif status is not None:
            reason = status.group(1)
        elif text.endswith(":") or text.startswith(("QUARANTINE:", "REQUEUE:")):
            continue
        elif not raw[:1].isspace():
            yield Malformed(number, "not a mailq line", record.excerpt(raw))
        else:
            addresses.append(text)
    if entry is not None:
        yield _message(entry, addresses, reason, now)


def _message(
    entry: tuple[re.Match[str], int, str], addresses: list[str], reason: str | None, now: float
) -> Item:
    match, line, _queue = entry
    try:
        return record.check(_build(entry, addresses, reason, now))
    except _clock.NotUnderstood:
        return Malformed(line, "queue time not understood", match.group(4))
    except Exception as exc:  # any record, however broken, is one malformed entry
        return Malformed(line, record.problem(exc), record.excerpt(match.group(0)))


def _build(
    entry: tuple[re.Match[str], int, str], addresses: list[str], reason: str | None, now: float
) -> QueuedMessage:
    match, _line, queue = entry
    queue_id, flag, size, when, sender = match.groups()
    arrival = _clock.yearless(when, "%a %b %d %H:%M", now)
    if sender is None and addresses:
        # A long sender is printed on its own line after the entry.
        sender, addresses = addresses[0], addresses[1:]
    rcpts = tuple(record.recipient(a, reason) for a in addresses)
    status = {"*": "locked", "X": "load", "-": "too young"}.get(flag)
    sender = (sender or "").strip("<>")
    return QueuedMessage(MTA, queue_id, queue, arrival, record.count(size), sender, rcpts, None, status)
