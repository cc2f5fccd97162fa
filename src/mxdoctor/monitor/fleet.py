"""Queues pushed by other hosts (the Exchange collector, or ``postqueue -j | curl``): each host's
token, the checks on what it sends, its latest snapshot kept on disk as that host's queue source,
its DNS settings for the diagnosis, how long it has been silent, and the watcher of each host.

A snapshot is taken only when it is readable as a whole (some record, any format ``mxdoctor queue``
reads); it is written beside the old one and renamed over it, so a poll never reads half of one.
"""

from __future__ import annotations

import csv
import hmac
import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mxdoctor.errors import ConfigError
from mxdoctor.monitor import watch
from mxdoctor.monitor.metrics import WatchMetrics
from mxdoctor.monitor.notify import Notifier
from mxdoctor.monitor.state import State
from mxdoctor.queues import exchange_snapshot, formats
from mxdoctor.queues.exchange_snapshot import DnsSettings
from mxdoctor.queues.record import Malformed
from mxdoctor.queues.shape import DomainShape
from mxdoctor.queues.status import format_age

MAX_BODY = 32 * 1024 * 1024
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Host:
    """One ``[hosts.NAME]`` table: its token (or a file holding it) and when its silence alerts."""

    name: str
    token: str = field(repr=False)  # a secret: never in a repr, so never in a log line
    silent_after: float = 20 * 60.0

    @staticmethod
    def make(name: str, *, token: str | None = None, token_file: str | None = None,
             silent_after: float = 20 * 60.0) -> Host:
        if not HOST_NAME.match(name):
            raise ConfigError(f"hosts.{name}: a host name is letters, digits, '.', '-' and '_'")
        if token and token_file:
            raise ConfigError(f"hosts.{name}: give token or token_file, not both")
        if token_file:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"hosts.{name}.token_file: cannot read it ({type(exc).__name__})") from None
        if not token or len(token) < 16:
            raise ConfigError(f"hosts.{name}: a token (token or token_file) of at least 16 characters is required")
        if not silent_after > 0:
            raise ConfigError(f"hosts.{name}.silent_after: must be a positive duration")
        return Host(name, token, silent_after)


@dataclass(frozen=True)
class Push:
    """The answer to one push: an HTTP status and a one-line reason."""

    status: int
    message: str
    details: dict[str, object] = field(default_factory=dict)


class Fleet:
    def __init__(self, directory: str | Path, hosts: Mapping[str, Host], *, max_body: int = MAX_BODY,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hosts = dict(hosts)
        self.max_body = max_body
        self.clock = clock
        self._lock = threading.Lock()

    def snapshot_path(self, host: str) -> Path:
        return self.directory / f"{host}.snapshot"

    def _meta_path(self, host: str) -> Path:
        return self.directory / f"{host}.json"

    def source(self, host: str) -> formats.Source:
        return formats.Source(path=str(self.snapshot_path(host)))

    def accept(self, host: str, authorization: str | None, body: bytes) -> Push:
        """Check and keep one pushed snapshot; never raises for what a client sends."""
        known = self.hosts.get(host)
        if not authorization or not authorization.startswith("Bearer "):
            return Push(401, "a bearer token is required (Authorization: Bearer ...)")
        if known is None or not hmac.compare_digest(authorization[7:].strip(), known.token):
            return Push(403, "this token is not valid for this host")
        if len(body) > self.max_body:
            return Push(413, f"snapshot larger than {self.max_body} bytes")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            return Push(400, "the body is not UTF-8 text")
        lines = text.splitlines(keepends=True)
        fmt = formats.detect(lines[: formats.SNIFF_LINES])
        if fmt is None:
            return Push(400, "not a queue listing mxdoctor reads (Get-Queue/Get-Message CSV or JSON, "
                             "postqueue -j, exim -bp, mailq, smtpctl show queue, or a collector snapshot)")
        records = malformed = 0
        first_problem = ""
        for item in itertools.islice(fmt.read(iter(lines), now=self.clock()), 10_000_000):
            if isinstance(item, Malformed):
                malformed += 1
                first_problem = first_problem or str(item)
            else:
                records += 1
        if records == 0 and malformed:
            return Push(400, f"nothing readable in the {fmt.name} body: {first_problem[:200]}")
        snapshot = fmt.name == exchange_snapshot.NAME
        dns = exchange_snapshot.parse(lines)[0].dns if snapshot else None
        meta = {"received_at": self.clock(), "format": fmt.name, "records": records, "malformed": malformed,
                "dns": None if dns is None else _dns_dict(dns), "age_from": age_sources(lines) if snapshot else {}}
        with self._lock:
            _replace(self.snapshot_path(host), text)
            _replace(self._meta_path(host), json.dumps(meta))
        return Push(202, f"taken: {records} record(s) in {fmt.name}", {"host": host, **meta})

    def _meta(self, host: str) -> dict[str, object] | None:
        try:
            value = json.loads(self._meta_path(host).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def last_push(self, host: str) -> float | None:
        meta = self._meta(host)
        at = meta.get("received_at") if meta else None
        return float(at) if isinstance(at, int | float) else None

    def silent(self, host: str, now: float | None = None) -> float | None:
        """Seconds since the host's last snapshot when that is longer than its ``silent_after``."""
        now = self.clock() if now is None else now
        last = self.last_push(host)
        since = now - last if last is not None else None
        if since is None:
            return None  # never pushed: nothing to watch yet (the dashboard shows it as waiting)
        return since if since >= self.hosts[host].silent_after else None

    def age_from(self, host: str) -> dict[str, str]:
        """How each held domain's age was found, for the domains aged from Get-Queue rows alone."""
        meta = self._meta(host)
        raw = meta.get("age_from") if meta else None
        return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def dns(self, host: str) -> DnsSettings | None:
        meta = self._meta(host)
        raw = meta.get("dns") if meta else None
        if not isinstance(raw, dict):
            return None
        return DnsSettings(
            internal_adapter=bool(raw.get("internal_adapter", True)),
            internal_servers=tuple(str(s) for s in raw.get("internal_servers", ())),
            external_adapter=bool(raw.get("external_adapter", True)),
            external_servers=tuple(str(s) for s in raw.get("external_servers", ())),
            adapter_servers=tuple(str(s) for s in raw.get("adapter_servers", ())),
            connectors=tuple(exchange_snapshot.Connector(**c) for c in raw.get("connectors", ())),
        )


def _dns_dict(dns: DnsSettings) -> dict[str, object]:
    return {
        "internal_adapter": dns.internal_adapter, "internal_servers": list(dns.internal_servers),
        "external_adapter": dns.external_adapter, "external_servers": list(dns.external_servers),
        "adapter_servers": list(dns.adapter_servers),
        "connectors": [c.__dict__ for c in dns.connectors],
    }


def _section(lines: list[str], name: str) -> list[dict[str, str]]:
    rows: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("#section "):
            inside = line.strip() == f"#section {name}"
        elif inside:
            rows.append(line)
    try:
        return [dict(r) for r in csv.DictReader(rows)]
    except csv.Error:
        return []


def age_sources(lines: list[str]) -> dict[str, str]:
    """The held domains of a collector snapshot whose age comes from a Get-Queue row (no Get-Message
    row came for their queue): from FirstRetryTime, or on Exchange 2010 (which has none) from
    LastRetryTime, a lower bound. The snapshot reader ages them so; this says which."""
    with_messages = {row.get("Queue", "") for row in _section(lines, "get-message")}
    out: dict[str, str] = {}
    for row in _section(lines, "get-queue"):
        domain = (row.get("NextHopDomain") or "").strip().lower()
        if not domain or row.get("Identity", "") in with_messages or row.get("MessageCount", "0") in ("", "0"):
            continue
        if (row.get("FirstRetryTime") or "").strip():
            out[domain] = "FirstRetryTime of its Get-Queue row (no Get-Message rows came with the snapshot)"
        elif (row.get("LastRetryTime") or "").strip():
            out[domain] = ("LastRetryTime of its Get-Queue row, a lower bound (Exchange 2010 has no "
                           "FirstRetryTime, and no Get-Message rows came with the snapshot)")
    return out


SILENCE = "(silent)"  # the alert key of a host's silence: no domain has parentheses in it


class HostWatcher(watch.Watcher):
    """The watcher of one pushed host: its latest snapshot is its queue, polled every interval once it
    has pushed; a silence longer than the host's ``silent_after`` raises its own alert (the domains'
    alerts stay as they were: a silent host is not a drained one) and clears with the next push."""

    def __init__(self, fleet: Fleet, host: str, options: watch.WatchOptions, state: State,
                 notifiers: Sequence[Notifier], diagnoser: watch.Diagnoser | None = None,
                 metrics: WatchMetrics | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(options, state, notifiers, diagnoser, metrics, clock)
        self.fleet = fleet
        self.host = host

    def poll(self) -> watch.PollResult:
        now = self.clock()
        last = self.fleet.last_push(self.host)
        if last is None:
            result = watch.PollResult(ok=False, error=f"waiting for the first snapshot from {self.host}")
            self.deliver(result)
            return result
        silent = self.fleet.silent(self.host, now)
        common = {"host": self.host, "kind": "silence", "source": self.options.source.label,
                  "last_snapshot_at": datetime.fromtimestamp(last, UTC).isoformat()}
        if silent is not None:
            result = watch.PollResult(ok=False, error=f"no snapshot from {self.host} for {format_age(silent)}")
            payload = {**common, "silent_for": format_age(silent), "silent_for_s": round(silent),
                       "silent_after": format_age(self.fleet.hosts[self.host].silent_after),
                       "raised_at": datetime.fromtimestamp(now, UTC).isoformat()}
            if self.state.raise_alert(SILENCE, payload, now) is not None:
                result.raised.append(SILENCE)
                watch.log.info("alert raised: no snapshot from %s", self.host)
            self.deliver(result)
            return result
        cleared = self.state.clear_alert(SILENCE, {**common, "cleared_at": datetime.fromtimestamp(now, UTC)
                                                   .isoformat()}, now) is not None
        result = super().poll()
        if cleared:
            result.cleared.insert(0, SILENCE)
            self.deliver(result)
        return result

    def _alert_payload(self, dom: DomainShape, diagnosis: dict[str, Any] | None, now: float) -> dict[str, Any]:
        payload = super()._alert_payload(dom, diagnosis, now)
        how = self.fleet.age_from(self.host).get(dom.domain)
        if how:
            payload["age_from"] = how
        return payload


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
