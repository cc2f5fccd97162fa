"""Reader for Exchange ``Get-Message`` / ``Get-Queue | ConvertTo-Json`` (Exchange 2013 and later).

ConvertTo-Json writes one array (or one bare object) spread over many lines; objects are cut out
one at a time by a small scanner, so memory stays bounded by the largest object, not the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from mxdoctor.queues import _exchange, record
from mxdoctor.queues.record import Item, Malformed

NAME = "exchange-json"
MTA = _exchange.MTA
COMMAND = (
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    "Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn -ErrorAction SilentlyContinue; "
    "Get-Message -ResultSize Unlimited | "
    "Select-Object Identity,FromAddress,Status,Size,DateReceived,LastError,RetryCount,Queue,"
    "@{n='Recipients';e={@($_.Recipients | ForEach-Object { [string]$_ })}} | ConvertTo-Json -Depth 3",
)

_STRUCT = re.compile(r'[{}\[\]"\\]')
_FILLER = re.compile(r"[\s\[\],\ufeff]*")
# ConvertTo-Json -Depth 3 of one message is a few KiB; far more is not one message.
MAX_OBJECT = 4 << 20
_KEYS = ('"Identity"', '"DateReceived"', '"MessageCount"', '"NextHopDomain"', '"FromAddress"')


def sniff(head: list[str]) -> bool:
    text = "".join(head[:12]).lstrip("\ufeff \t\r\n")
    return text[:1] in "[{" and any(key in text for key in _KEYS)


def objects(lines: Iterable[str]) -> Iterator[tuple[int, str, str | None]]:
    """Cut top-level JSON objects out of a stream: (first line, text, problem or None)."""
    depth = 0
    in_string = False
    parts: list[str] = []
    size = 0  # characters kept in parts; past MAX_OBJECT the object is only scanned to its end
    start_line = 0
    number = 0
    for number, line in enumerate(lines, 1):
        pos = 0  # where this line's text outside of objects resumes
        skip = -1
        for match in _STRUCT.finditer(line):
            i = match.start()
            if i == skip:
                continue
            char = line[i]
            if in_string:
                if char == "\\":
                    skip = i + 1
                elif char == '"':
                    in_string = False
                continue
            if char == '"':
                in_string = True
                if depth == 0:
                    # A string at top level is not inside any object: not an export we know.
                    in_string = False
                continue
            if char in "{[":
                if depth == 0:
                    if char == "[":
                        continue
                    if not _FILLER.fullmatch(line, pos, i):
                        yield number, line[pos:i], "text outside JSON objects"
                    start_line, parts, pos, size = number, [], i, 0
                depth += 1
            elif depth > 0:
                depth -= 1
                if depth == 0:
                    if size > MAX_OBJECT:
                        yield start_line, "".join(parts), f"JSON object longer than {MAX_OBJECT >> 20} Mi characters"
                    else:
                        parts.append(line[pos : i + 1])
                        yield start_line, "".join(parts), None
                    parts, pos = [], i + 1
        if depth > 0:
            size += len(line) - pos
            if size <= MAX_OBJECT:
                parts.append(line[pos:])
            elif len(parts) > 1 or (parts and len(parts[0]) > record.EXCERPT):
                parts = [parts[0][: record.EXCERPT]]
        elif not _FILLER.fullmatch(line, pos):
            yield number, line[pos:], "text outside JSON objects"
    if depth > 0:
        yield start_line, "".join(parts), "truncated JSON object"


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@record.reader(NAME, MTA, command=COMMAND, sniff=sniff, order=20, mta_default=True)
def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield one record per exported object; ``now`` is unused (objects carry dates)."""
    for line, text, problem in objects(lines):
        if problem is not None:
            yield Malformed(line, problem, record.excerpt(text))
            continue
        try:
            fields = json.loads(text, parse_constant=_constant)
        except json.JSONDecodeError as exc:
            yield Malformed(line, f"not JSON ({exc.msg})", record.excerpt(text))
            continue
        except Exception as exc:  # nesting, a huge integer, NaN or Infinity
            yield Malformed(line, f"not JSON ({record.problem(exc)})", record.excerpt(text))
            continue
        if not isinstance(fields, dict):
            yield Malformed(line, "not a JSON object", record.excerpt(text))
            continue
        yield _exchange.from_fields(fields, line, text)
