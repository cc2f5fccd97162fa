"""Reader for Exchange ``Get-Message`` / ``Get-Queue`` exported with ``Export-Csv -NoTypeInformation``.

This is what Exchange 2010's PowerShell 2.0 can produce; quoted fields may span lines, and a
``#TYPE`` line (Export-Csv without -NoTypeInformation) is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from mxdoctor.queues import _exchange, record
from mxdoctor.queues.record import Item

NAME = "exchange-csv"
MTA = _exchange.MTA
COMMAND: tuple[str, ...] = ()

_KNOWN = ('"DateReceived"', '"FromAddress"', '"MessageCount"', '"NextHopDomain"')


def sniff(head: list[str]) -> bool:
    lines = [line for line in head if not line.startswith("#TYPE")]
    first = lines[0] if lines else ""
    return '"Identity"' in first and any(key in first for key in _KNOWN)


@record.reader(NAME, MTA, sniff=sniff, order=30)
def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield one record per CSV row; ``now`` is unused (rows carry dates)."""
    yield from _exchange.read_csv(lines)
