"""The one record every queue reader yields, whatever the MTA: a queued message and its recipients.

Records are immutable named tuples (cheap enough to build a million of them); a line or object a
reader cannot use becomes a ``Malformed`` item in the same stream, so nothing read is silently lost.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import NamedTuple


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
