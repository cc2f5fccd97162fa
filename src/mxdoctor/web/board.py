"""What the dashboard shows, as plain frozen data, and the one interface it reads it through.

The watch fills a Board (its queues, their held domains with alert state and diagnosis, the history
of each domain, the latest diagnosis); the web layer renders it and never touches the watch itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mxdoctor.diagnosis import Diagnosis


@dataclass(frozen=True)
class DomainRow:
    """One held destination domain of one queue."""

    domain: str
    messages: int
    oldest_age_s: float | None
    category: str  # the dominant deferral's category: dns-temp, connect, ...
    reason: str  # the dominant deferral's text, as the MTA logged it
    firing: bool  # an alert is raised for it
    diagnosis: dict[str, Any] | None = None  # root_cause, message, verdicts, deferring (watch's summary)
    age_from: str = ""  # how the age was found when it is not the oldest message's arrival


@dataclass(frozen=True)
class QueueRow:
    """One watched queue: the local one, or one pushed by a host."""

    name: str
    messages: int
    oldest_age_s: float | None
    domains: tuple[DomainRow, ...] = ()
    polled_at: float | None = None
    error: str | None = None  # the last poll or push could not be read
    silent_for_s: float | None = None  # pushed hosts: time since the last snapshot, when overdue


@dataclass(frozen=True)
class Point:
    at: float
    messages: int
    oldest_age_s: float


class Board(Protocol):
    """The dashboard's only view of the watch."""

    def queues(self) -> Sequence[QueueRow]: ...

    def history(self, queue: str, domain: str) -> Sequence[Point]: ...

    def report(self, domain: str, queue: str = "") -> Diagnosis | None: ...

    def diagnose(self, domain: str) -> Diagnosis: ...

    def views(self) -> Sequence[str]: ...
