"""Shared field conversion for Exchange ``Get-Message`` and ``Get-Queue`` exports (CSV and JSON).

Both cmdlets' objects arrive as a mapping of property name to value; values are strings in CSV and
strings, numbers, lists or nested objects in JSON. Queues carry ``MessageCount``; messages do not.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from mxdoctor.queues import record
from mxdoctor.queues.record import Item, Malformed, Mta, QueuedMessage, Recipient

MTA = Mta.EXCHANGE

_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")
_BYTES = re.compile(r"\(([\d,.\s\u00a0']+) bytes\)")
_BRACED = re.compile(r"\{([^{}]*)\}")
# Export-Csv writes DateTime in the exporting session's culture; the common ones, en-US first.
_DATE_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
)


def parse_date(value: Any) -> float | None:
    """Epoch seconds from ``/Date(ms)/``, ISO 8601, or a culture-formatted local time; None if empty.

    Raises ValueError for text that is none of these.
    """
    if value is None or value == "":
        return None
    if isinstance(value, Mapping):
        # PowerShell 3-5 sometimes wraps DateTime as {"value": "/Date(..)/", "DateTime": "..."}.
        return parse_date(value.get("value", value.get("DateTime")))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return record.epoch(value)
    if not isinstance(value, str):
        raise ValueError(f"date not understood: {type(value).__name__}")
    text = value.strip()
    match = _MS_DATE.fullmatch(text)
    if match:
        # The epoch part is UTC; the offset only says which zone the value was displayed in.
        digits = match.group(1)
        if len(digits.lstrip("-")) > 16:
            raise ValueError("date out of range")
        return record.epoch(int(digits) / 1000.0)
    try:
        return record.epoch(datetime.fromisoformat(text).timestamp())
    except (ValueError, OverflowError, OSError):
        pass
    for fmt in _DATE_FORMATS:
        try:
            return record.epoch(datetime.strptime(text, fmt).timestamp())
        except (ValueError, OverflowError, OSError):
            continue
    raise ValueError(f"date not understood: {record.printable(record.excerpt(text))!r}")


def parse_size(value: Any) -> int | None:
    """Bytes from an int or a ByteQuantifiedSize text such as ``4.5 KB (4,608 bytes)``."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return record.count(value)
    if isinstance(value, Mapping):
        return parse_size(value.get("Value") or value.get("value"))
    if not isinstance(value, str):
        raise ValueError(f"size not understood: {type(value).__name__}")
    match = _BYTES.search(value)
    digits = re.sub(r"\D", "", match.group(1) if match else value)
    if len(digits) > 19:
        raise ValueError("size out of range")
    return record.count(digits) if digits else None


def parse_recipients(value: Any, last_error: str | None) -> tuple[Recipient, ...]:
    """Recipients from RecipientInfo text (``{a@b;2;2;<error>;16;<connector>;0}``), plain lists, or objects.

    A recipient's own error wins; the message's LastError is used when it has none.
    """
    if value is None or value == "":
        return ()
    if isinstance(value, Mapping):
        address = str(value.get("Address") or value.get("address") or "")
        err = value.get("LastError") or value.get("lastError") or last_error
        return (record.recipient(address, str(err) if err else None),)
    if isinstance(value, list):
        out: list[Recipient] = []
        for item in value:
            out.extend(parse_recipients(item, last_error))
        return tuple(out)
    text = str(value)
    braced = _BRACED.findall(text)
    if braced:
        return tuple(_recipient_info(inner, last_error) for inner in braced)
    return tuple(record.recipient(a, last_error) for a in re.split(r"[;,\s]+", text) if "@" in a)


def _recipient_info(inner: str, last_error: str | None) -> Recipient:
    # Fields: address;status;type;last error;...;connector;...  The error may itself hold ';', so
    # it is whatever lies between the three leading and the three trailing fields.
    parts = inner.split(";")
    err = ";".join(parts[3:-3]).strip() if len(parts) >= 7 else ""
    return record.recipient(parts[0], err or last_error)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, float | bool):
        raise ValueError(f"not a count: {value!r}")
    if isinstance(value, str):
        value = value.replace(",", "")
        if len(value) > 19:
            raise ValueError("count out of range")
    return record.count(value)


def from_fields(fields: Mapping[str, Any], line: int, text: str) -> Item:
    """One Get-Message or Get-Queue object as a record, or Malformed when required fields are unusable."""
    try:
        identity = str(fields.get("Identity") or "")
        last_error = str(fields.get("LastError") or "").strip() or None
        status = str(fields.get("Status") or "") or None
        if "MessageCount" in fields:
            domain = str(fields.get("NextHopDomain") or "").lower()
            return record.check(QueuedMessage(
                MTA,
                identity,
                identity,
                parse_date(fields.get("FirstRetryTime")),
                None,
                "",
                (Recipient("", domain, last_error),),
                _int(fields.get("RetryCount")),
                status,
                _int(fields.get("MessageCount")) or 0,
            ))
        if not identity and "DateReceived" not in fields:
            return Malformed(line, "neither a Get-Message nor a Get-Queue object", record.excerpt(text))
        queue = str(fields.get("Queue") or identity.rpartition("\\")[0])
        return record.check(QueuedMessage(
            MTA,
            identity,
            queue,
            parse_date(fields.get("DateReceived")),
            parse_size(fields.get("Size")),
            str(fields.get("FromAddress") or ""),
            parse_recipients(fields.get("Recipients"), last_error),
            _int(fields.get("RetryCount")),
            status,
        ))
    except Exception as exc:  # any object, however broken, is one malformed record
        return Malformed(line, record.problem(exc), record.excerpt(text))


def read_csv(lines: Iterable[str]) -> Iterator[Item]:
    """Records of a Get-Message / Get-Queue CSV (Export-Csv or ConvertTo-Csv), one per row; a
    ``#TYPE`` first line is skipped. Shared by the CSV reader and the collector snapshot's sections."""
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
        yield from_fields(dict(zip(header, row, strict=True)), line, ",".join(row))
