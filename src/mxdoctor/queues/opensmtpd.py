"""Reader for OpenSMTPD ``smtpctl show queue`` (also its ``mailq``): one ``|``-separated line per envelope.

smtpctl.c prints ``evpid|src|agent|flags|sender|rcpt|dest|creation|expire|lasttry|retry|runstate|
errorline`` where runstate itself holds a ``|`` (``pending|<s>``, ``inflight|<s>``, ``offline|``), so
a line has 14 fields (checked on OpenSMTPD 6.8 output and in 7.x's smtpctl.c); the error line is
last and may hold ``|`` too. Times are epoch seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from mxdoctor.queues import record
from mxdoctor.queues.record import Item, Malformed, Mta, QueuedMessage

NAME = "opensmtpd"
MTA = Mta.OPENSMTPD
COMMAND = ("smtpctl", "show", "queue")
FIELDS = 14

_EVPID = re.compile(r"^[0-9a-f]{16}$")


def sniff(head: list[str]) -> bool:
    first = head[0] if head else ""
    return first.count("|") >= FIELDS - 1 and bool(_EVPID.match(first.split("|", 1)[0]))


@record.reader(NAME, MTA, command=COMMAND, sniff=sniff, order=40, mta_default=True,
               line_records=True)
def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield one record per envelope (one recipient each); ``now`` is unused."""
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("|", FIELDS - 1)
        if len(fields) != FIELDS or not _EVPID.match(fields[0]):
            yield Malformed(number, f"not {FIELDS} |-separated smtpctl fields", record.excerpt(line))
            continue
        try:
            yield record.check(_message(fields))
        except _NotNumbers:
            yield Malformed(number, "creation time or retry count is not a number", record.excerpt(line))
        except Exception as exc:  # any record, however broken, is one malformed line
            yield Malformed(number, record.problem(exc), record.excerpt(line))


class _NotNumbers(ValueError):
    pass


def _message(fields: list[str]) -> QueuedMessage:
    evpid, _src, agent, flags, sender, rcpt, dest, creation, _exp, _last, retry, state, _arg, err = fields
    try:
        arrival, retries = float(creation), int(retry)
    except ValueError:
        raise _NotNumbers from None
    arrival, retries = record.epoch(arrival), record.count(retries)
    # The envelope's destination is where it is being sent (after aliasing); rcpt is as given.
    address = dest if dest != "@" else rcpt
    status = ",".join(s for s in (state, flags) if s)
    return QueuedMessage(
        MTA,
        evpid,
        agent,
        arrival,
        None,
        "" if sender == "@" else sender,
        (record.recipient(address, err or None),),
        retries,
        status or None,
    )
