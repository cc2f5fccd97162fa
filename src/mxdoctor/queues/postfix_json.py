"""Reader for Postfix ``postqueue -j`` (Postfix 3.1+): one JSON object per line.

Members not listed in postqueue(1) are ignored, as that page asks; a line that is not a JSON object
with a queue id becomes a ``Malformed`` item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mxdoctor.queues import record
from mxdoctor.queues.record import Item, Malformed, Mta, QueuedMessage, Recipient

NAME = "postfix-json"
MTA = Mta.POSTFIX
COMMAND = ("postqueue", "-j")


_MAX_TIME = record.MAX_TIME
_MAX_COUNT = record.MAX_COUNT
_MAX_ADDRESS = record.MAX_ADDRESS
_MAX_REASON = record.MAX_REASON


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def sniff(head: list[str]) -> bool:
    first = head[0].lstrip() if head else ""
    return first.startswith("{") and '"queue_id"' in first


@record.reader(NAME, MTA, command=COMMAND, sniff=sniff, order=10, mta_default=True, line_records=True)
def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield one record per message line (``now`` is unused: the listing carries epoch times)."""
    # The hot path of bench/queue.py: the decoder's C scanner called directly costs about half of
    # json.loads per line, and records are built with tuple.__new__ rather than the named-tuple
    # constructor (json.loads still words the error of a bad line). The bounds of record.check are
    # kept inline, for the same reason. NaN and Infinity are not JSON: the scanner rejects them.
    decoder = json.JSONDecoder(parse_constant=_constant)
    scan: Callable[[str, int], tuple[Any, int]] = getattr(decoder, "scan_once")  # noqa: B009
    new = tuple.__new__
    # Builtins and bounds as locals: this loop runs a million times.
    _type, _str, _int, _float, _len = type, str, int, float, len
    max_time, max_count, max_address, max_reason = int(_MAX_TIME), _MAX_COUNT, _MAX_ADDRESS, _MAX_REASON
    for number, line in enumerate(lines, 1):
        if line[:1] in (" ", "\t"):
            line = line.lstrip()
        try:
            obj, end = scan(line, 0)
            if end != _len(line) and line[end:].strip():
                raise ValueError("text after the JSON object")
            rcpts = []
            for r in obj.get("recipients") or ():
                address = r["address"]
                reason = r.get("delay_reason") or None
                if _type(address) is not _str or _len(address) > max_address:
                    raise ValueError("recipient address is not an address")
                if reason is not None and (_type(reason) is not _str or _len(reason) > max_reason):
                    if _type(reason) is not _str:
                        raise ValueError("delay_reason is not text")
                    reason = record.cut_reason(reason)
                at = address.rfind("@")
                domain = address[at + 1 :].rstrip(".").lower() if at >= 0 else ""
                rcpts.append(new(Recipient, (address, domain, reason)))
            arrival = obj.get("arrival_time")
            if arrival is not None:
                kind = _type(arrival)
                if (kind is not _int and kind is not _float) or not 0 <= arrival < max_time:
                    raise ValueError("arrival_time out of range")
                arrival = _float(arrival)
            size = obj.get("message_size")
            if size is not None:
                kind = _type(size)
                if (kind is not _int and kind is not _float) or not 0 <= size <= max_count:
                    raise ValueError("message_size out of range")
                if kind is _float:
                    size = _int(size)
            queue_id = obj["queue_id"]
            if _type(queue_id) is not _str:
                if _type(queue_id) is not _int:
                    raise ValueError("queue_id is not text")
                queue_id = _str(queue_id)
            queue_name = obj.get("queue_name") or ""
            sender = obj.get("sender") or ""
            if _type(queue_name) is not _str or _type(sender) is not _str or _len(sender) > max_address:
                raise ValueError("queue_name or sender is not text")
            yield new(QueuedMessage, (
                MTA,
                queue_id,
                queue_name,
                arrival,
                size,
                sender,
                tuple(rcpts),
                None,
                "expiring" if obj.get("forced_expire") else None,
                1,
            ))
        except Exception as exc:  # any record, however broken, is one malformed line
            if not line.strip():
                continue
            yield Malformed(number, _problem(exc, line), record.excerpt(line))


def _problem(exc: Exception, line: str) -> str:
    if isinstance(exc, KeyError):
        return f"no {record.printable(str(exc.args[0]))[:40]} member"
    if isinstance(exc, RecursionError):
        return "not JSON (nested too deeply)"
    if isinstance(exc, ValueError) and exc.args and str(exc.args[0]).endswith((" out of range", " not text",
                                                                              " not a JSON number",
                                                                              " not an address")):
        return str(exc.args[0])
    try:
        json.loads(line, parse_constant=_constant)
    except json.JSONDecodeError as err:
        return f"not JSON ({err.msg} at column {err.colno})"
    except Exception as err:  # noqa: BLE001 - a huge integer, nesting: worded by record.problem
        return f"not JSON ({record.problem(err)})"
    if isinstance(exc, ValueError) and str(exc) == "text after the JSON object":
        return str(exc)
    return "not a postqueue -j message object"
