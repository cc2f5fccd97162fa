"""Reader for Exim ``exim -bp``: an age/size/id/sender line, then one indented line per recipient.

Exim prints the age, not the arrival time (``25m``, ``17h``, ``4d``), so arrival is ``now`` minus the
age, to the printed precision; recipients already delivered (``D``) are not queued and are left out.
The listing carries no error text: Exim keeps that in its retry database and logs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator

from mxdoctor.queues import record
from mxdoctor.queues.record import Item, Malformed, Mta, QueuedMessage, Recipient

NAME = "exim"
MTA = Mta.EXIM
COMMAND = ("exim", "-bp")

_ENTRY = re.compile(
    r"^\s*(\d+)([smhdw])\s+([\d.]+)([KMG]?)\s+([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4})"
    r"\s+<([^<>]*)>(?:\s+(\*\*\* frozen \*\*\*))?$"
)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = {"": 1, "K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024}


def sniff(head: list[str]) -> bool:
    return any(_ENTRY.match(line.rstrip()) for line in head[:3])


@record.reader(NAME, MTA, command=COMMAND, sniff=sniff, order=70, mta_default=True)
def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield one record per message; ``now`` is the time the listing was taken."""
    now = time.time() if now is None else now
    entry: tuple[re.Match[str], int] | None = None
    rcpts: list[Recipient] = []
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip()
        if not line:
            continue
        match = _ENTRY.match(line)
        if match is not None:
            if entry is not None:
                yield _message(entry, rcpts, now)
            entry, rcpts = (match, number), []
            continue
        text = line.strip()
        if entry is None or not line[0].isspace():
            yield Malformed(number, "not an exim -bp line", record.excerpt(line))
        elif text.startswith(("D ", "+D ")):
            continue
        elif len(text) > record.MAX_ADDRESS:
            yield Malformed(number, "recipient line too long for an address", record.excerpt(line))
        else:
            rcpts.append(record.recipient(text))
    if entry is not None:
        yield _message(entry, rcpts, now)


def _message(entry: tuple[re.Match[str], int], rcpts: list[Recipient], now: float) -> Item:
    match, line = entry
    try:
        return record.check(_build(match, rcpts, now))
    except Exception as exc:  # any record, however broken, is one malformed entry
        return Malformed(line, record.problem(exc), record.excerpt(match.group(0)))


def _build(match: re.Match[str], rcpts: list[Recipient], now: float) -> QueuedMessage:
    age, unit, size, mult, msgid, sender, frozen = match.groups()
    return QueuedMessage(
        MTA,
        msgid,
        "input",
        record.epoch(now - int(age) * _UNIT[unit]),
        record.count(float(size) * _SIZE[mult]),
        sender,
        tuple(rcpts),
        None,
        "frozen" if frozen else None,
    )
