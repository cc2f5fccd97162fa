"""Prometheus metrics of the watch: queue size and oldest age per queue and destination domain,
deferrals per category, alert state, and the diagnosis outcome per domain and MTA model.

A private registry, so tests and embedders can run several watchers; ``serve`` exposes it over HTTP.
Per-domain series are rebuilt on every poll, so a drained domain's series disappear.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import Metric

from mxdoctor.errors import ConfigError
from mxdoctor.queues.record import Item, QueuedMessage
from mxdoctor.queues.shape import UNKNOWN_DOMAIN, Shape


@dataclass
class QueueTally:
    """Messages and oldest arrival per (queue, domain), gathered while the shape reads the stream."""

    cells: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def wrap(self, items: Iterable[Item]) -> Iterator[Item]:
        cells = self.cells
        for item in items:
            if isinstance(item, QueuedMessage) and item.messages:
                seen = set()
                for rcpt in item.recipients or ():
                    key = (item.queue_name, rcpt.domain or UNKNOWN_DOMAIN)
                    if key in seen:
                        continue
                    seen.add(key)
                    cell = cells.get(key)
                    if cell is None:
                        cell = cells[key] = [0.0, float("inf")]
                    cell[0] += item.messages
                    if item.arrival is not None and item.arrival < cell[1]:
                        cell[1] = item.arrival
            yield item


def parse_address(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` or ``[v6]:PORT`` -> (addr, port); raises ConfigError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ConfigError(f"--metrics wants ADDR:PORT (port up to 65535), got {text!r}")
    return host.strip("[]"), int(port)


class WatchMetrics:
    def __init__(self, top: int = 100) -> None:
        self.top = top
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Gauge("mxdoctor_queue_messages", "Messages queued per queue and destination domain",
                              ["queue", "domain"], registry=r)
        self.oldest = Gauge("mxdoctor_queue_oldest_age_seconds",
                            "Age of the oldest message per queue and destination domain", ["queue", "domain"],
                            registry=r)
        self.total = Gauge("mxdoctor_queue_messages_total", "Messages in all queues read", registry=r)
        self.total_oldest = Gauge("mxdoctor_queue_oldest_message_age_seconds",
                                  "Age of the oldest message in all queues read", registry=r)
        self.deferrals = Gauge("mxdoctor_queue_deferred_recipients", "Deferred recipients per reason category",
                               ["category"], registry=r)
        self.malformed = Gauge("mxdoctor_queue_malformed_lines", "Lines of the last listing that could not be read",
                               registry=r)
        self.alerts = Gauge("mxdoctor_watch_alert_firing", "1 while a domain's delay alert is firing", ["domain"],
                            registry=r)
        self.verdict = Gauge("mxdoctor_diagnosis_verdict",
                             "Diagnosis outcome per domain and MTA model (1 for the current outcome)",
                             ["domain", "mta", "outcome"], registry=r)
        self.root_cause = Gauge("mxdoctor_diagnosis_root_cause", "1 for the root cause last diagnosed per domain",
                                ["domain", "root_cause"], registry=r)
        self.polls = Counter("mxdoctor_watch_polls", "Polls of the queue source", ["result"], registry=r)
        self.notifications = Counter("mxdoctor_watch_notifications", "Notifications attempted",
                                     ["notifier", "result"], registry=r)
        self.pending = Gauge("mxdoctor_watch_notifications_pending",
                             "Events waiting to be delivered per notifier (the outbox backlog)", ["notifier"],
                             registry=r)
        self.last_poll = Gauge("mxdoctor_watch_last_poll_timestamp_seconds", "When the last good poll ended",
                               registry=r)

    def update(self, shape: Shape, tally: QueueTally, firing: Iterable[str],
               diagnoses: dict[str, dict[str, Any]]) -> None:
        now = shape.now
        self.messages.clear()
        self.oldest.clear()
        biggest = sorted(tally.cells.items(), key=lambda kv: -kv[1][0])[: self.top or None]
        for (queue, domain), (count, oldest) in biggest:
            self.messages.labels(queue, domain).set(count)
            if oldest != float("inf"):
                self.oldest.labels(queue, domain).set(max(0.0, now - oldest))
        self.total.set(shape.total.messages)
        self.total_oldest.set(shape.total.oldest_age(now) or 0.0)
        self.deferrals.clear()
        for category, n in shape.total.categories().items():
            self.deferrals.labels(category.value).set(n)
        self.malformed.set(shape.malformed)
        self.alerts.clear()
        for domain in firing:
            self.alerts.labels(domain).set(1)
        self.verdict.clear()
        self.root_cause.clear()
        for domain, summary in diagnoses.items():
            for mta, outcome in (summary.get("verdicts") or {}).items():
                self.verdict.labels(domain, str(mta), str(outcome)).set(1)
            cause = summary.get("root_cause") or ("error" if summary.get("error") else "none")
            self.root_cause.labels(domain, str(cause)).set(1)
        self.last_poll.set(now)


class _Fleet:
    """The series of every watcher as one exposition, each labelled with its ``host`` ("" for the local
    queue), so one scrape sees the whole fleet."""

    def __init__(self, parts: dict[str, WatchMetrics]) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for host, part in self.parts.items():
            for family in part.registry.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(family.name, family.documentation, family.type)
                for sample in family.samples:
                    merged.add_sample(sample.name, {"host": host, **sample.labels}, sample.value, sample.timestamp)
        yield from families.values()


def fleet_registry(parts: dict[str, WatchMetrics]) -> CollectorRegistry:
    """One registry over the watchers' metrics, keyed by host name ("" for the local queue)."""
    registry = CollectorRegistry()
    registry.register(_Fleet(parts))
    return registry


def serve(metrics: WatchMetrics | CollectorRegistry, address: str | tuple[str, int]) -> Any:
    """Start the HTTP exporter on ``ADDR:PORT``; returns the server (``shutdown()`` stops it)."""
    host, port = parse_address(address) if isinstance(address, str) else address
    registry = metrics if isinstance(metrics, CollectorRegistry) else metrics.registry
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except (OSError, OverflowError) as exc:
        raise ConfigError(f"--metrics {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    return server
