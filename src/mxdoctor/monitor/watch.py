"""The watch loop: poll a queue source, diagnose DNS-class deferrals, raise and clear per-domain alerts
through the persistent state, deliver pending notifications, and update metrics.

A poll that cannot read the queue changes no alert (an unreadable queue is not a drained one); it
is logged and counted, and the next poll tries again.
"""

from __future__ import annotations

import concurrent.futures
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mxdoctor.errors import MxdoctorError
from mxdoctor.monitor.metrics import QueueTally, WatchMetrics
from mxdoctor.monitor.notify import Notifier, NotifyError
from mxdoctor.monitor.state import State
from mxdoctor.queues import formats, shape
from mxdoctor.queues.shape import DomainShape, Shape
from mxdoctor.queues.status import format_age

log = logging.getLogger("mxdoctor.watch")

Diagnoser = Callable[[str], dict[str, Any]]


@dataclass(frozen=True)
class WatchOptions:
    source: formats.Source
    interval: float = 60.0
    alert_age: float = 30 * 60.0
    diagnose: bool = True
    diagnose_every: float | None = None  # default: the interval
    max_diagnoses: int = 10
    diagnose_workers: int = 4
    queues: tuple[str, ...] = ()
    max_attempts: int = 20
    retention: float = 30 * 86400.0  # events and diagnoses older than this are forgotten


@dataclass
class PollResult:
    ok: bool
    error: str | None = None
    shape: Shape | None = None
    raised: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    diagnosed: list[str] = field(default_factory=list)
    sent: int = 0
    failed: int = 0


class Watcher:
    """One source, one state file, some notifiers; ``poll()`` once or ``run()`` until stopped."""

    def __init__(
        self,
        options: WatchOptions,
        state: State,
        notifiers: Sequence[Notifier],
        diagnoser: Diagnoser | None = None,
        metrics: WatchMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.state = state
        self.notifiers = list(notifiers)
        self.diagnoser = diagnoser if options.diagnose else None
        self.metrics = metrics
        self.clock = clock
        self.stop_event = threading.Event()

    # -- one poll -------------------------------------------------------------------------------
    def poll(self) -> PollResult:
        now = self.clock()
        tally = QueueTally()
        try:
            items = formats.read(self.options.source, now=now)
            result_shape = shape.build(tally.wrap(items), now=now, queues=self.options.queues or None)
        except (MxdoctorError, OSError) as exc:
            return self._failed(str(exc))
        if not result_shape.readable:
            first = result_shape.malformed_examples[0] if result_shape.malformed_examples else ""
            return self._failed(f"nothing readable: {result_shape.malformed} malformed line(s) {first}")
        result = PollResult(ok=True, shape=result_shape)

        diagnoses = self._diagnose(result_shape, result)
        threshold = self.options.alert_age
        over = {
            d.domain: d for d in result_shape.domains.values()
            if (d.oldest_age(now) or 0.0) >= threshold
        }
        for domain, dom in sorted(over.items()):
            event = self.state.raise_alert(domain, self._alert_payload(dom, diagnoses.get(domain), now), now)
            if event is not None:
                result.raised.append(domain)
        for domain in sorted(self.state.firing() - set(over)):
            remaining = result_shape.domains.get(domain)
            payload = {
                "domain": domain,
                "threshold": format_age(threshold),
                "messages": remaining.messages if remaining else 0,
                "source": self.options.source.label,
                "cleared_at": datetime.fromtimestamp(now, UTC).isoformat(),
            }
            if self.state.clear_alert(domain, payload, now) is not None:
                result.cleared.append(domain)
        self.deliver(result)
        self.state.prune(now - self.options.retention)
        if self.metrics is not None:
            self.metrics.update(result_shape, tally, self.state.firing(), diagnoses)
            self.metrics.polls.labels("ok").inc()
        for domain in result.raised:
            log.info("alert raised for %s", domain)
        for domain in result.cleared:
            log.info("alert cleared for %s", domain)
        return result

    def _failed(self, error: str) -> PollResult:
        log.warning("poll of %s failed: %s", self.options.source.label, error)
        if self.metrics is not None:
            self.metrics.polls.labels("error").inc()
        result = PollResult(ok=False, error=error)
        self.deliver(result)  # earlier events may still be waiting for a notifier
        return result

    def _alert_payload(self, dom: DomainShape, diagnosis: dict[str, Any] | None, now: float) -> dict[str, Any]:
        age = dom.oldest_age(now)
        return {
            "domain": dom.domain,
            "messages": dom.messages,
            "oldest_age": format_age(age),
            "oldest_age_s": round(age or 0.0),
            "oldest_queue_id": dom.oldest_id,
            "threshold": format_age(self.options.alert_age),
            "reason": dom.dominant_dict(),
            "categories": {c.value: n for c, n in dom.categories().items()},
            "mtas": sorted(m.value for m in dom.mtas),
            "source": self.options.source.label,
            "diagnosis": diagnosis,
            "raised_at": datetime.fromtimestamp(now, UTC).isoformat(),
        }

    # -- diagnosis ------------------------------------------------------------------------------
    def _diagnose(self, result_shape: Shape, result: PollResult) -> dict[str, dict[str, Any]]:
        """Diagnoses of the domains whose dominant deferral is DNS-class: cached, at most one per interval."""
        now = result_shape.now
        dns_domains = [
            d for d in result_shape.domains.values() if d.dominant is not None and d.dominant.category.is_dns
        ]
        dns_domains.sort(key=lambda d: -(d.oldest_age(now) or 0.0))
        out: dict[str, dict[str, Any]] = {}
        if self.diagnoser is None:
            return out
        every = self.options.diagnose_every or self.options.interval
        todo: list[str] = []
        for d in dns_domains:
            cached = self.state.cached_diagnosis(d.domain, every, now)
            if cached is not None:
                out[d.domain] = cached
            elif len(todo) < self.options.max_diagnoses:
                todo.append(d.domain)
            else:
                previous = self.state.last_diagnosis(d.domain)
                if previous is not None:
                    out[d.domain] = previous
        if not todo:
            return out
        diagnoser = self.diagnoser
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.options.diagnose_workers)) as pool:
            futures = {pool.submit(diagnoser, domain): domain for domain in todo}
            for future in concurrent.futures.as_completed(futures):
                domain = futures[future]
                try:
                    summary = dict(future.result())
                except Exception as exc:  # noqa: BLE001 - a failed diagnosis is reported, never fatal
                    summary = {"domain": domain, "error": f"{type(exc).__name__}: {exc}"}
                summary.setdefault("diagnosed_at", datetime.fromtimestamp(now, UTC).isoformat())
                self.state.store_diagnosis(domain, summary, now)
                out[domain] = summary
                result.diagnosed.append(domain)
        return out

    # -- delivery -------------------------------------------------------------------------------
    def deliver(self, result: PollResult) -> None:
        for notifier in self.notifiers:
            for event in self.state.pending(notifier.name, max_attempts=self.options.max_attempts):
                self.state.attempt(event.id, notifier.name)
                try:
                    notifier.send(event.payload)
                except NotifyError as exc:
                    self.state.mark_failed(event.id, notifier.name, str(exc))
                    log.warning("%s notification %s failed: %s", notifier.name, event.id, exc)
                    result.failed += 1
                    if self.metrics is not None:
                        self.metrics.notifications.labels(notifier.name, "error").inc()
                    break  # keep order: later events wait until this one goes through
                self.state.mark_sent(event.id, notifier.name, self.clock())
                result.sent += 1
                if self.metrics is not None:
                    self.metrics.notifications.labels(notifier.name, "sent").inc()

    # -- the daemon -----------------------------------------------------------------------------
    def run(self, *, max_polls: int | None = None) -> PollResult | None:
        """Poll every interval until SIGTERM/SIGINT (or ``max_polls``); returns the last poll's result."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop_event.set())
        polls = 0
        last: PollResult | None = None
        while not self.stop_event.is_set():
            started = time.monotonic()
            last = self.poll()
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            self.stop_event.wait(max(0.0, self.options.interval - (time.monotonic() - started)))
        return last
