"""The Board of a running watch: after each poll it turns the queue shape, the alert state and the
kept diagnoses into dashboard rows, records the history, and keeps each diagnosis's evidence so the
domain page can show the full report.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence

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
    def observe(self, name: str, result: PollResult, state: State, *, age_from: Mapping[str, str] | None = None,
                silent_for: float | None = None) -> None:
        """Called after every poll of queue ``name``, in the watch's thread (it owns ``state``).

        ``age_from`` says how a domain's age was found when not from its oldest message (pushed
        Exchange 2010 snapshots); ``silent_for`` is a pushed host's overdue silence."""
        now = self.clock()
        if not result.ok or result.shape is None:
            with self._lock:
                previous = self._queues.get(name)
                self._queues[name] = QueueRow(name, previous.messages if previous else 0,
                                              previous.oldest_age_s if previous else None,
                                              previous.domains if previous else (), now, result.error, silent_for)
            return
        row = self._row(name, result.shape, state, now, age_from or {})
        with self._lock:
            self._queues[name] = row
        self.history_store.record(now, [Sample(name, d.domain, d.messages, d.oldest_age_s or 0.0)
                                        for d in row.domains])

    def _row(self, name: str, shape: Shape, state: State, now: float, age_from: Mapping[str, str]) -> QueueRow:
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
                age_from=age_from.get(dom.domain, ""),
            ))
        ages = [r.oldest_age_s for r in rows if r.oldest_age_s is not None]
        return QueueRow(name, sum(r.messages for r in rows), max(ages, default=None), tuple(rows), now)

    # -- the Board ---------------------------------------------------------------------------------
    def queues(self) -> Sequence[QueueRow]:
        with self._lock:
            return [self._queues[k] for k in sorted(self._queues)]

    def history(self, queue: str, domain: str) -> Sequence[Point]:
        return [Point(at, m, age) for at, m, age in self.history_store.points(queue, domain)]

    def report(self, domain: str, queue: str = "") -> Diagnosis | None:
        # The watch keeps its diagnoses per queue; a diagnosis asked from the form is kept by domain.
        text = self.history_store.report(report_key(domain, queue)) if queue else None
        text = text or self.history_store.report(domain)
        if text is None:
            return None
        knobs: dict[str, tuple[str, ...]] | None = None
        kept = _kept(text)
        if kept is not None:  # evidence kept with the knobs its diagnosis ran with (a pushed host's)
            text, knobs = kept
        return analysis.analyse(evidence.loads(text, source=f"kept diagnosis of {domain}"), knobs=knobs)

    def keep(self, d: Diagnosis, queue: str = "", knobs: Mapping[str, Sequence[str]] | None = None) -> None:
        """Keep a diagnosis's evidence (and the knobs it ran with) as the domain's latest report."""
        text = evidence.dumps(d.evidence, indent=None)
        if knobs:
            text = json.dumps({KEPT: 1, "knobs": {k: list(v) for k, v in knobs.items()}, "evidence": text})
        self.history_store.store_report(report_key(d.domain, queue), self.clock(), text)

    def diagnose(self, domain: str) -> Diagnosis:
        d = self._diagnose(domain)
        self.keep(d)
        return d

    def views(self) -> Sequence[str]:
        return self._views


KEPT = "mxdoctor-kept-diagnosis"


def report_key(domain: str, queue: str = "") -> str:
    """A queue's reports are kept as ``queue/domain`` (no domain has '/'), the form's by domain."""
    return f"{queue}/{domain}" if queue else domain


def _kept(text: str) -> tuple[str, dict[str, tuple[str, ...]]] | None:
    if not text.startswith("{\"" + KEPT):
        return None
    try:
        doc = json.loads(text)
        return str(doc["evidence"]), {str(k): tuple(map(str, v)) for k, v in doc["knobs"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
