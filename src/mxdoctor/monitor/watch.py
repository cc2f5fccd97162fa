"""The watch loop: poll a queue source, diagnose DNS-class deferrals, raise and clear per-domain alerts
through the persistent state, and update metrics; one courier per notifier delivers the outbox.

A poll that cannot read the queue changes no alert (an unreadable queue is not a drained one); it
is logged and counted, and the next poll tries again. As a daemon, the couriers send from their own
threads, in order, retrying with exponential backoff for as long as it takes, so a slow or dead
receiver never holds the poll loop; polls and diagnoses run off the main thread, which only waits
for them or for SIGTERM/SIGINT, so a signal ends the watch within a second or two at any moment.
"""

from __future__ import annotations

import logging
import queue
import signal
import sqlite3
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
    diagnose_wait: float = 60.0  # a poll waits this long for its diagnoses, then goes on without them
    retry_initial: float = 1.0  # first wait after a failed send; doubles with each failure
    retry_max: float = 300.0  # longest wait between two attempts of one notifier
    retention: float = 30 * 86400.0  # events and diagnoses older than this are forgotten
    host: str | None = None  # a pushed host's queue: every alert and its payload name the host


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


class Courier:
    """Delivers one notifier's outbox: always its oldest event first, so events keep their order per
    notifier (and so per domain); a failure keeps the event at the head and backs off exponentially,
    from ``retry_initial`` up to ``retry_max``, for as long as it takes."""

    def __init__(self, notifier: Notifier, state: State, options: WatchOptions, clock: Callable[[], float],
                 metrics: WatchMetrics | None = None) -> None:
        self.notifier = notifier
        self.name = notifier.name
        self.state = state
        self.options = options
        self.clock = clock
        self.metrics = metrics
        self.wake = threading.Event()
        self._logged_backlog = 0
        self._last_error: str | None = None

    def backoff(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt of one event."""
        return min(self.options.retry_max, self.options.retry_initial * 2.0 ** min(max(attempts - 1, 0), 40))

    def step(self) -> tuple[str, float | None]:
        """Try the head event if it is due: ("sent" | "failed" | "waiting" | "idle", seconds until due)."""
        head = self.state.head(self.name)
        if head is None:
            self._report(0)
            return "idle", None
        now = self.clock()
        if head.next_at is not None and head.next_at > now:
            self._report(self.state.backlog(self.name))
            return "waiting", head.next_at - now
        event = head.event
        self.state.attempt(event.id, self.name)
        try:
            self.notifier.send(event.payload)
        except Exception as exc:  # noqa: BLE001 - whatever a notifier raises, the event stays and is retried
            if not isinstance(exc, NotifyError):
                exc = NotifyError(f"{type(exc).__name__}: {exc}")
            delay = self.backoff(head.attempts + 1)
            self._last_error = str(exc)
            self.state.mark_failed(event.id, self.name, str(exc), self.clock() + delay)
            log.info("%s: sending %s failed (attempt %d, next in %.3gs): %s", self.name, event.id,
                     head.attempts + 1, delay, exc)
            if self.metrics is not None:
                self.metrics.notifications.labels(self.name, "error").inc()
            self._report(self.state.backlog(self.name))
            return "failed", delay
        self.state.mark_sent(event.id, self.name, self.clock())
        self._last_error = None
        if self.metrics is not None:
            self.metrics.notifications.labels(self.name, "sent").inc()
        self._report(self.state.backlog(self.name))
        return "sent", 0.0

    def _report(self, backlog: int) -> None:
        """Keep the backlog metric, and log when the backlog grows and when it has drained."""
        if self.metrics is not None:
            self.metrics.pending.labels(self.name).set(backlog)
        if backlog > self._logged_backlog and self._last_error is not None:
            log.warning("%s: %d event(s) waiting to be delivered, retrying with backoff (last error: %s)",
                        self.name, backlog, self._last_error)
            self._logged_backlog = backlog
        elif backlog == 0 and self._logged_backlog:
            log.warning("%s: backlog drained, every waiting event delivered", self.name)
            self._logged_backlog = 0

    def drain(self, result: PollResult) -> None:
        """Send what is due, in order, until the outbox is empty or a send fails (the caller's thread)."""
        while True:
            outcome, _ = self.step()
            if outcome == "sent":
                result.sent += 1
                continue
            if outcome == "failed":
                result.failed += 1
            return

    def loop(self, stop: threading.Event) -> None:
        """The courier thread: deliver, sleep until the head is due or a poll brings news, repeat."""
        while not stop.is_set():
            self.wake.clear()  # before the step: news arriving during it cuts the next wait short
            try:
                outcome, wait = self.step()
            except Exception as exc:  # noqa: BLE001 - a courier must outlive a bad moment of its state file
                log.warning("%s: delivery stopped for a moment: %s", self.name, exc)
                outcome, wait = "failed", 5.0
            if outcome == "sent":
                continue
            self.wake.wait(60.0 if wait is None else min(wait, 60.0))


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
        state.set_notifiers(n.name for n in self.notifiers)
        self.couriers = [Courier(n, state, options, clock, metrics) for n in self.notifiers]
        self._background = False  # True while courier threads deliver (run() as a daemon)
        self._threads: list[threading.Thread] = []
        self._busy: threading.Thread | None = None  # a poll cut off by a signal, still running
        self._diagnosed: queue.SimpleQueue[tuple[str, dict[str, Any]]] = queue.SimpleQueue()
        self._in_flight: set[str] = set()  # domains being diagnosed, maybe past an earlier poll's wait
        self._diagnosis_lock = threading.Lock()
        # Called with each poll's result in the run loop (the dashboard's board observes here).
        self.observers: list[Callable[[PollResult], None]] = []

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
                **self._host(),
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
            **self._host(),
        }

    def _host(self) -> dict[str, str]:
        return {"host": self.options.host} if self.options.host else {}

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
        while True:  # results that came in after an earlier poll stopped waiting for them
            try:
                domain, summary = self._diagnosed.get_nowait()
            except queue.Empty:
                break
            self._store_diagnosis(domain, summary, now, result)
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
        for domain, summary in self._run_diagnoses(todo):
            self._store_diagnosis(domain, summary, now, result)
            out[domain] = summary
        return out

    def _store_diagnosis(self, domain: str, summary: dict[str, Any], now: float, result: PollResult) -> None:
        summary.setdefault("diagnosed_at", datetime.fromtimestamp(now, UTC).isoformat())
        self.state.store_diagnosis(domain, summary, now)
        result.diagnosed.append(domain)

    def _run_diagnoses(self, todo: list[str]) -> list[tuple[str, dict[str, Any]]]:
        """Run the diagnoser on daemon threads; wait at most ``diagnose_wait`` (or until a signal).

        Daemon threads, not an executor: a diagnosis that runs on must not keep the process from exiting.
        One that outlives the wait is not started again while it runs; its result, when it comes, is
        taken by a later poll.
        """
        out: list[tuple[str, dict[str, Any]]] = []
        if self.diagnoser is None:
            return out
        diagnoser = self.diagnoser
        with self._diagnosis_lock:
            room = max(0, 4 * max(1, self.options.diagnose_workers) - len(self._in_flight))
            todo = [d for d in todo if d not in self._in_flight][:room]
            self._in_flight.update(todo)
        work: queue.SimpleQueue[str] = queue.SimpleQueue()
        for domain in todo:
            work.put(domain)

        def worker() -> None:
            while True:
                try:
                    domain = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    summary = dict(diagnoser(domain))
                except Exception as exc:  # noqa: BLE001 - a failed diagnosis is reported, never fatal
                    summary = {"domain": domain, "error": f"{type(exc).__name__}: {exc}"}
                with self._diagnosis_lock:
                    self._in_flight.discard(domain)
                self._diagnosed.put((domain, summary))

        for i in range(min(len(todo), max(1, self.options.diagnose_workers))):
            threading.Thread(target=worker, name=f"watch-diagnosis-{i}", daemon=True).start()
        deadline = time.monotonic() + self.options.diagnose_wait
        waiting = set(todo)
        while waiting and not self.stop_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("diagnosis of %s still running after %gs; this poll goes on without it",
                            ", ".join(sorted(waiting)), self.options.diagnose_wait)
                break
            try:
                domain, summary = self._diagnosed.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            waiting.discard(domain)
            out.append((domain, summary))
        return out

    # -- delivery -------------------------------------------------------------------------------
    def deliver(self, result: PollResult) -> None:
        """Hand new events to the couriers: wake their threads, or (no threads) send here and now."""
        for courier in self.couriers:
            if self._background:
                courier.wake.set()
            else:
                courier.drain(result)

    def backlog(self) -> dict[str, int]:
        """Events waiting per notifier."""
        return {c.name: self.state.backlog(c.name) for c in self.couriers}

    # -- the daemon -----------------------------------------------------------------------------
    def run(self, *, max_polls: int | None = None) -> PollResult | None:
        """Poll every interval until SIGTERM/SIGINT (or ``max_polls``); returns the last poll's result.

        With ``max_polls`` (``--once``, from cron) each poll delivers before it returns; otherwise the
        couriers deliver from their own threads.
        """
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stop())
        if max_polls is None:
            self._start_couriers()
        polls = 0
        last: PollResult | None = None
        while not self.stop_event.is_set():
            started = time.monotonic()
            result = self._poll_in_thread()
            if result is None:
                break  # stopped in the middle of the poll
            last = result
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            self.stop_event.wait(max(0.0, self.options.interval - (time.monotonic() - started)))
        self.stop_event.set()
        for courier in self.couriers:
            courier.wake.set()
        return last

    def stop(self) -> None:
        """End ``run()`` soon, from any thread (what SIGTERM does)."""
        self._stop()

    def _stop(self) -> None:
        self.stop_event.set()
        for courier in self.couriers:
            courier.wake.set()

    def _start_couriers(self) -> None:
        self._background = True
        for courier in self.couriers:
            thread = threading.Thread(target=courier.loop, args=(self.stop_event,), name=f"watch-{courier.name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _poll_in_thread(self) -> PollResult | None:
        """One poll on a daemon thread, so that a signal is answered while it reads, diagnoses or sends."""
        box: list[PollResult] = []
        failure: list[BaseException] = []

        def target() -> None:
            try:
                box.append(self.poll())
                self._observe(box[0])
            except sqlite3.Error as exc:  # a full disk, a file changed under us: the next poll tries again
                log.warning("poll failed: state file %s: %s", self.state.path, exc)
                box.append(PollResult(ok=False, error=f"state file {self.state.path}: {exc}"))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
                failure.append(exc)

        thread = threading.Thread(target=target, name="watch-poll", daemon=True)
        thread.start()
        while thread.is_alive() and not self.stop_event.is_set():
            thread.join(0.2)
        if thread.is_alive():
            self._busy = thread
            return None
        if failure:
            raise failure[0]
        return box[0] if box else None

    def _observe(self, result: PollResult) -> None:
        for observe in self.observers:
            try:
                observe(result)
            except Exception as exc:  # noqa: BLE001 - a dashboard's trouble never stops the watch
                log.warning("after the poll of %s: %s: %s", self.options.source.label, type(exc).__name__, exc)

    def close(self, grace: float = 1.0) -> None:
        """Stop the couriers (a send in flight gets ``grace`` seconds) and close the state file.

        A send cut off here is resent after the restart, with the same event id.
        """
        self._stop()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        busy = [t for t in [*self._threads, self._busy] if t is not None and t.is_alive()]
        if not busy:
            self.state.close()  # else the process exits with the file open, which SQLite survives
