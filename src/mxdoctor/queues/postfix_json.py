"""Reader for Postfix ``postqueue -j`` (Postfix 3.1+): one JSON object per line.

Members not listed in postqueue(1) are ignored, as that page asks; a line that is not a JSON object
with a queue id becomes a ``Malformed`` item.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from mxdoctor.queues import record
from mxdoctor.queues.record import Item, Malformed, Mta, QueuedMessage, Recipient

NAME = "postfix-json"
MTA = Mta.POSTFIX
COMMAND = ("postqueue", "-j")


def sniff(head: list[str]) -> bool:
    first = head[0].lstrip() if head else ""
    return first.startswith("{") and '"queue_id"' in first


def _recipients(raw: Any) -> tuple[Recipient, ...]:
    out = []
    for r in raw:
        address = r.get("address") or ""
        at = address.rfind("@")
        domain = address[at + 1 :].rstrip(".").lower() if at >= 0 else ""
        out.append(Recipient(address, domain, r.get("delay_reason") or None))
    return tuple(out)


def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield one record per message line (``now`` is unused: the listing carries epoch times)."""
    loads = json.loads
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = loads(line)
            rcpts = _recipients(obj.get("recipients") or ())
            arrival = obj.get("arrival_time")
            size = obj.get("message_size")
            yield QueuedMessage(
                MTA,
                str(obj["queue_id"]),
                str(obj.get("queue_name") or ""),
                float(arrival) if arrival is not None else None,
                int(size) if size is not None else None,
                str(obj.get("sender") or ""),
                rcpts,
                None,
                "expiring" if obj.get("forced_expire") else None,
            )
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            yield Malformed(number, _problem(exc), record.excerpt(line))


def _problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at column {exc.colno})"
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]} member"
    return "not a postqueue -j message object"
