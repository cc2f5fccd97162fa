"""Progress events of long work (a diagnosis's lookups, an audit's probes, a queue's records): the
plain value the probing and reading layers hand to an optional callback; rendering is the CLI's.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Unit(enum.Enum):
    """What ``done`` and ``total`` count."""

    LOOKUPS = "lookups"
    PROBES = "probes"
    BYTES = "bytes"
    RECORDS = "records"


@dataclass(frozen=True)
class Progress:
    """How far one piece of work is: ``done`` of ``total`` (None: not known, e.g. a pipe) ``unit``,
    and when its deadline falls (a ``time.monotonic()`` value) where it has one."""

    task: str  # what is being done, e.g. "diagnose example.com"
    done: int
    total: int | None
    unit: Unit
    deadline: float | None = None
    finished: bool = False


Callback = Callable[[Progress], None]


class Counter:
    """Counts work as it is added and done, and tells ``callback`` (if any) after each change."""

    def __init__(self, callback: Callback | None, task: str, unit: Unit, *, deadline: float | None = None) -> None:
        self.callback = callback
        self.task = task
        self.unit = unit
        self.deadline = deadline
        self.done = 0
        self.total = 0

    def add(self, n: int = 1) -> None:
        self.total += n
        self._tell()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._tell()

    def finish(self) -> None:
        self._tell(finished=True)

    def _tell(self, *, finished: bool = False) -> None:
        if self.callback is not None:
            self.callback(Progress(self.task, self.done, self.total, self.unit, self.deadline, finished))
