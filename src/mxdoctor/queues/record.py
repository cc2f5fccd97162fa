"""The one record every queue reader yields, whatever the MTA: a queued message and its recipients.

Records are immutable named tuples (cheap enough to build a million of them); a line or object a
reader cannot use becomes a ``Malformed`` item in the same stream, so nothing read is silently lost.
Also here: the bounds a record must keep (``check``) and the registry of reader modules (``reader``).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple


class Mta(enum.StrEnum):
    POSTFIX = "postfix"
    EXIM = "exim"
    SENDMAIL = "sendmail"
    OPENSMTPD = "opensmtpd"
    EXCHANGE = "exchange"


class Recipient(NamedTuple):
    """One recipient still queued; ``delay_reason`` is the MTA's last error text for it, if any."""

    address: str
    domain: str
    delay_reason: str | None = None


class QueuedMessage(NamedTuple):
    """One queued message as listed by its MTA.

    ``arrival`` is epoch seconds (UTC) or None when the listing does not say; ``messages`` is 1 except
    for queue-level summaries (Exchange ``Get-Queue``), where one record stands for a whole queue and
    ``arrival`` is the queue's first retry time, the best available bound on its oldest message.
    """

    mta: Mta
    queue_id: str
    queue_name: str
    arrival: float | None
    size: int | None
    sender: str
    recipients: tuple[Recipient, ...]
    retry_count: int | None = None
    status: str | None = None
    messages: int = 1

    @property
    def arrival_time(self) -> datetime | None:
        """The arrival as an aware UTC datetime."""
        return None if self.arrival is None else datetime.fromtimestamp(self.arrival, UTC)


class Malformed(NamedTuple):
    """A line (or JSON/CSV record starting at that line) that could not be read."""

    line: int
    problem: str
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}: {ascii(self.text)}"


Item = QueuedMessage | Malformed

EXCERPT = 80


def excerpt(text: str) -> str:
    """A printable prefix of a bad line, for error messages."""
    text = text.rstrip("\r\n")
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def domain_of(address: str) -> str:
    """The lower-case domain of an address (``<a@B.example>`` -> ``b.example``); "" when there is none."""
    at = address.rfind("@")
    if at < 0:
        return ""
    return address[at + 1 :].strip().strip(">").rstrip(".").lower()


def recipient(address: str, reason: str | None = None) -> Recipient:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return Recipient(address, domain_of(address), reason or None)


# Bounds of one record, checked where a reader builds it so that nothing downstream (shape, JSON,
# the classifier's patterns) sees a value it cannot handle: times between 1970 and 9999, sizes and
# counts that fit 63 bits, text fields that are text.
MAX_TIME = 253402300800.0  # 10000-01-01T00:00:00Z
MAX_COUNT = 2**63 - 1
# An address is at most 256 characters (RFC 5321 4.5.3.1.3); far longer is not an address.
MAX_ADDRESS = 1024
# MTA error texts are a few hundred characters; a longer one is cut, which bounds both the memory
# kept per distinct reason and the classifier's work on it.
MAX_REASON = 2048


def check(msg: QueuedMessage) -> QueuedMessage:
    """``msg`` within the bounds above, reasons cut to MAX_REASON; raises ValueError naming the field."""
    arrival = msg.arrival
    if arrival is not None and not (type(arrival) is float and 0.0 <= arrival < MAX_TIME):
        raise ValueError(f"arrival time out of range: {_short(arrival)}")
    for name, value in (("size", msg.size), ("retry count", msg.retry_count)):
        if value is not None and not (type(value) is int and 0 <= value <= MAX_COUNT):
            raise ValueError(f"{name} out of range: {_short(value)}")
    if not (type(msg.messages) is int and 0 <= msg.messages <= MAX_COUNT):
        raise ValueError(f"message count out of range: {_short(msg.messages)}")
    for name, text in (("queue id", msg.queue_id), ("queue name", msg.queue_name), ("sender", msg.sender)):
        if type(text) is not str:
            raise ValueError(f"{name} is not text: {_short(text)}")
    if msg.status is not None and type(msg.status) is not str:
        raise ValueError(f"status is not text: {_short(msg.status)}")
    if len(msg.sender) > MAX_ADDRESS:
        raise ValueError(f"sender longer than {MAX_ADDRESS} characters")
    cut = False
    for r in msg.recipients:
        if type(r.address) is not str or type(r.domain) is not str:
            raise ValueError(f"recipient address is not text: {_short(r.address)}")
        if len(r.address) > MAX_ADDRESS:
            raise ValueError(f"recipient address longer than {MAX_ADDRESS} characters")
        reason = r.delay_reason
        if reason is not None:
            if type(reason) is not str:
                raise ValueError(f"delay reason is not text: {_short(reason)}")
            cut = cut or len(reason) > MAX_REASON
    if cut:
        msg = msg._replace(recipients=tuple(
            r._replace(delay_reason=cut_reason(r.delay_reason)) if r.delay_reason else r for r in msg.recipients
        ))
    return msg


def cut_reason(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + "..."


def epoch(value: Any) -> float:
    """Epoch seconds from a number (or numeric text) of a listing; raises ValueError when out of range."""
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError("time out of range") from None
    if not 0.0 <= seconds < MAX_TIME:  # NaN fails both comparisons
        raise ValueError(f"time out of range: {_short(value)}")
    return seconds


def count(value: Any) -> int:
    """A non-negative count or size from an int, a float or numeric text; raises ValueError."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"not a finite number: {value}")
    number = int(value)
    if not 0 <= number <= MAX_COUNT:
        raise ValueError(f"number out of range: {_short(value)}")
    return number


def problem(exc: BaseException) -> str:
    """A reader's wording of an unexpected exception while building one record."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, OverflowError):
        return "number out of range"
    if isinstance(exc, ValueError | KeyError) and exc.args and isinstance(exc.args[0], str):
        text = exc.args[0] if isinstance(exc, ValueError) else f"no {exc.args[0]} member"
        return printable(text[:EXCERPT])
    return f"unusable record ({type(exc).__name__})"


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int beyond the digit limit of int -> str
        return "a number too large"
    return text if len(text) <= 40 else text[:40] + "..."


# Control characters (C0, DEL, C1) and the bidirectional overrides let a text drive a terminal or
# reorder what it shows; escaped, a hostile queue prints as plain characters.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters written as ``\\xNN`` / ``\\uNNNN`` (untrusted text for a terminal)."""
    return _CONTROL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


ReadFn = Callable[..., Iterator[Item]]


@dataclass(frozen=True)
class Format:
    """One listing format: its reader, how it is recognised, and what runs it.

    ``order`` is where its sniffer is tried (lower first: the stricter sniffers before the looser);
    ``mta_default`` marks the format ``--<mta>`` runs; ``line_records`` that each record is one
    line, so a big file can be cut at line boundaries (``--jobs``).
    """

    name: str
    mta: Mta
    command: tuple[str, ...]
    sniff: Callable[[list[str]], bool]
    read: ReadFn
    order: int
    mta_default: bool = False
    line_records: bool = False


REGISTERED: dict[str, Format] = {}


def reader(name: str, mta: Mta, *, sniff: Callable[[list[str]], bool], order: int,
           command: tuple[str, ...] = (), mta_default: bool = False,
           line_records: bool = False) -> Callable[[ReadFn], ReadFn]:
    """Register a reader function as the format ``name`` (the reader modules of mxdoctor.queues use it)."""

    def register(fn: ReadFn) -> ReadFn:
        if name in REGISTERED and REGISTERED[name].read is not fn:
            raise ValueError(f"queue format {name} registered twice")
        REGISTERED[name] = Format(name, mta, tuple(command), sniff, fn, order, mta_default, line_records)
        return fn

    return register
