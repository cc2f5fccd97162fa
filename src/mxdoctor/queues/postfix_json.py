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


def sniff(head: list[str]) -> bool:
    first = head[0].lstrip() if head else ""
    return first.startswith("{") and '"queue_id"' in first


def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield one record per message line (``now`` is unused: the listing carries epoch times)."""
    # The hot path of bench/queue.py: the decoder's C scanner called directly costs about half of
    # json.loads per line, and records are built with tuple.__new__ rather than the named-tuple
    # constructor (json.loads still words the error of a bad line).
    scan: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009
    new = tuple.__new__
    for number, line in enumerate(lines, 1):
        if line[:1] in (" ", "\t"):
            line = line.lstrip()
        try:
            obj, end = scan(line, 0)
            if end != len(line) and line[end:].strip():
                raise ValueError("text after the JSON object")
            rcpts = []
            for r in obj.get("recipients") or ():
                address = r["address"]
                at = address.rfind("@")
                domain = address[at + 1 :].rstrip(".").lower() if at >= 0 else ""
                rcpts.append(new(Recipient, (address, domain, r.get("delay_reason") or None)))
            arrival = obj.get("arrival_time")
            size = obj.get("message_size")
            queue_id = obj["queue_id"]
            yield new(QueuedMessage, (
                MTA,
                queue_id if type(queue_id) is str else str(queue_id),
                obj.get("queue_name") or "",
                float(arrival) if arrival is not None else None,
                int(size) if size is not None else None,
                obj.get("sender") or "",
                tuple(rcpts),
                None,
                "expiring" if obj.get("forced_expire") else None,
                1,
            ))
        except (ValueError, TypeError, KeyError, AttributeError, StopIteration, IndexError) as exc:
            if not line.strip():
                continue
            yield Malformed(number, _problem(exc, line), record.excerpt(line))


def _problem(exc: Exception, line: str) -> str:
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]} member"
    try:
        json.loads(line)
    except json.JSONDecodeError as err:
        return f"not JSON ({err.msg} at column {err.colno})"
    if isinstance(exc, ValueError) and str(exc) == "text after the JSON object":
        return str(exc)
    return "not a postqueue -j message object"
