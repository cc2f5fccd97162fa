"""Reader for Exchange ``Get-Message`` / ``Get-Queue`` exported with ``Export-Csv -NoTypeInformation``.

This is what Exchange 2010's PowerShell 2.0 can produce; quoted fields may span lines, and a
``#TYPE`` line (Export-Csv without -NoTypeInformation) is skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from mxdoctor.queues import _exchange, record
from mxdoctor.queues.record import Item, Malformed

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
    offset = 0

    def rows() -> Iterator[str]:
        nonlocal offset
        for line in lines:
            if line.startswith("#TYPE") and offset == 0:
                offset += 1
                continue
            yield line

    reader = csv.reader(rows())
    header: list[str] | None = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader starts afresh on the next line (e.g. after a field over csv's size limit).
            yield Malformed(reader.line_num + offset, f"CSV: {exc}", "")
            continue
        line = reader.line_num + offset
        joined = record.excerpt(",".join(row))
        if not row or not any(row):
            continue
        if header is None:
            header = row
            if "Identity" not in header:
                yield Malformed(line, "CSV header without an Identity column", joined)
                header = None
            continue
        if len(row) != len(header):
            yield Malformed(line, f"{len(row)} fields, header has {len(header)}", joined)
            continue
        yield _exchange.from_fields(dict(zip(header, row, strict=True)), line, ",".join(row))
