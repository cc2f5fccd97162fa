"""The Board of a running watch: after each poll it turns the queue shape, the alert state and the
kept diagnoses into dashboard rows, records the history, and keeps each diagnosis's evidence so the
domain page can show the full report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from mxdoctor import analysis, evidence
from mxdoctor.diagnosis import Diagnosis
from mxdoctor.monitor.history import History, Sample
from mxdoctor.monitor.state import State
from mxdoctor.monitor.watch import PollResult
from mxdoctor.queues.shape import Shape
from mxdoctor.web.board import DomainRow, Point, QueueRow


class WatchBoard:
    def __init__(
        self,
        history: History,
        diagnose: Callable[[str], Diagnosis],
        views: Sequence[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.history_store = history
        self._diagnose = diagnose
        self._views = tuple(views)
        self.clock = clock
        self._lock = threading.Lock()
        self._queues: dict[str, QueueRow] = {}

    # -- fed by the watch loop -----------------------------------------------------------------
    def observe(self, name: str, result: PollResult, state: State) -> None:
        """Called after every poll of queue ``name``, in the watch's thread (it owns ``state``)."""
        now = self.clock()
        if not result.ok or result.shape is None:
            with self._lock:
                previous = self._queues.get(name)
                self._queues[name] = QueueRow(name, previous.messages if previous else 0,
                                              previous.oldest_age_s if previous else None,
                                              previous.domains if previous else (), now, result.error)
            return
        row = self._row(name, result.shape, state, now)
        with self._lock:
            self._queues[name] = row
        self.history_store.record(now, [Sample(name, d.domain, d.messages, d.oldest_age_s or 0.0)
                                        for d in row.domains])

    def _row(self, name: str, shape: Shape, state: State, now: float) -> QueueRow:
        firing = state.firing()
        rows = []
        for dom in sorted(shape.domains.values(), key=lambda d: -(d.oldest_age(now) or 0.0)):
            dominant = dom.dominant
            rows.append(DomainRow(
                domain=dom.domain,
                messages=dom.messages,
                oldest_age_s=dom.oldest_age(now),
                category=dominant.category.value if dominant else "",
                reason=dom.dominant_text or "",
                firing=dom.domain in firing,
                diagnosis=state.last_diagnosis(dom.domain),
            ))
        ages = [r.oldest_age_s for r in rows if r.oldest_age_s is not None]
        return QueueRow(name, sum(r.messages for r in rows), max(ages, default=None), tuple(rows), now)

    # -- the Board ---------------------------------------------------------------------------------
    def queues(self) -> Sequence[QueueRow]:
        with self._lock:
            return [self._queues[k] for k in sorted(self._queues)]

    def history(self, queue: str, domain: str) -> Sequence[Point]:
        return [Point(at, m, age) for at, m, age in self.history_store.points(queue, domain)]

    def report(self, domain: str) -> Diagnosis | None:
        text = self.history_store.report(domain)
        if text is None:
            return None
        return analysis.analyse(evidence.loads(text, source=f"kept diagnosis of {domain}"))

    def diagnose(self, domain: str) -> Diagnosis:
        d = self._diagnose(domain)
        self.history_store.store_report(d.domain, self.clock(), evidence.dumps(d.evidence, indent=None))
        return d

    def views(self) -> Sequence[str]:
        return self._views
