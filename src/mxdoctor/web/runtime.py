"""The running watch with its dashboard: the local queue's watcher and one watcher per pushed host,
the dashboard and push API on one listener, the metrics of them all; built from the Settings,
started together, and stopped together within seconds of SIGTERM/SIGINT.

Each pushed host is its own Watcher over its latest snapshot with its own state file, so its alerts,
outbox and event ids are its own (one host's domain never clears another's alert) and a restart
resumes every host where it stood. A host's diagnoses run from its own vantage: the DNS servers its
snapshot names (see ``vantage``).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mxdoctor import analysis, api
from mxdoctor.checks import resolver
from mxdoctor.diagnosis import Diagnosis
from mxdoctor.dns import system
from mxdoctor.errors import MxdoctorError
from mxdoctor.evidence import Evidence, View, ViewKind
from mxdoctor.monitor import config, fleet, history, metrics, state, watch
from mxdoctor.mta.models import MODELS
from mxdoctor.queues import formats
from mxdoctor.queues.exchange_snapshot import DnsSettings
from mxdoctor.queues.status import format_age
from mxdoctor.web import app as web_app
from mxdoctor.web.server import WebServer
from mxdoctor.web.watchboard import WatchBoard

log = logging.getLogger("mxdoctor.watch")

EXTERNAL_KNOB = "UseExternalDNSServersEnabled"
EXCHANGE_MODELS = tuple(name for name, m in MODELS.items() if m.knob(EXTERNAL_KNOB) is not None)


# -- the vantage of a diagnosis ---------------------------------------------------------------------
@dataclass(frozen=True)
class Vantage:
    """How to diagnose for one queue: the probe's options, the knobs the models run with, and who
    named each resolver (server text -> label) so the alert can say whose view it was."""

    options: api.DiagnoseOptions
    knobs: dict[str, tuple[str, ...]]
    labels: dict[str, str]


def vantage(base: api.DiagnoseOptions, host: str | None = None, dns: DnsSettings | None = None) -> Vantage:
    """The views for a queue: the watch's own, or for a pushed Exchange host the servers its snapshot
    names, first (its internal DNS as the MTA's resolver view; its external list, when its send
    connector uses it, as the view the Exchange models' UseExternalDNSServersEnabled applies to),
    then the watch's own resolvers, which take over when the host's own do not answer from here."""
    labels = {_key(s, base.dns_port): "the watch's resolver" for s in base.resolvers}
    labels.update({_key(s, base.dns_port): "the watch's external resolver" for s in base.externals})
    if dns is None or host is None:
        return Vantage(base, {}, labels)
    internal = tuple(dns.internal)
    external = tuple(dns.external) if dns.uses_external else ()
    labels.update({_key(s, base.dns_port): f"{host}'s internal DNS" for s in internal})
    labels.update({_key(s, base.dns_port): f"{host}'s external DNS, for its send connector" for s in external})
    port = base.dns_port
    options = dataclasses.replace(
        base, resolvers=_unique(internal + base.resolvers, port), externals=_unique(external + base.externals, port),
    )
    knobs: dict[str, tuple[str, ...]] = {m: (EXTERNAL_KNOB,) for m in EXCHANGE_MODELS} if external else {}
    return Vantage(options, knobs, labels)


def _key(text: str, port: int) -> str:
    try:
        return str(system.parse_server(text, port))
    except MxdoctorError:  # a name that is no address: the diagnosis reports it as its error
        return text


def _unique(items: Sequence[str], port: int) -> tuple[str, ...]:
    """The servers once each, however written (``127.0.0.3`` and ``127.0.0.3:53`` are one)."""
    seen: dict[str, str] = {}
    for s in items:
        seen.setdefault(_key(s, port), s)
    return tuple(seen.values())


def reachable_first(ev: Evidence) -> Evidence:
    """The evidence with resolver views that answered before those that did not, so that the first
    one, the MTA's reference view, is one that answers; the silent ones stay in the evidence
    (RESOLVER_UNREACHABLE)."""
    order = sorted(range(len(ev.views)), key=lambda i: (ev.views[i].kind is ViewKind.RESOLVER
                                                        and not ev.views[i].reachable, i))
    if order == list(range(len(ev.views))):
        return ev
    return dataclasses.replace(ev, views=tuple(ev.views[i] for i in order))


def _label(v: View, labels: dict[str, str]) -> str:
    servers = ", ".join(str(s) for s in v.servers)
    whose = next((labels[str(s)] for s in v.servers if str(s) in labels), "")
    named = any(str(s.address) in v.name for s in v.servers)  # "external 192.0.2.53" names its server
    text = v.name if not servers or named else f"{v.name} {servers}"
    return f"{text} ({whose})" if whose else text


def summary(d: Diagnosis, seen: Vantage, host: str | None = None) -> dict[str, Any]:
    """The alert's summary of a diagnosis, with the views it used and those that did not answer."""
    out = api.summarise(d)
    used = [_label(v, seen.labels) for v in d.evidence.views if v.reachable]
    silent = [f"{_label(v, seen.labels)}: {resolver.RESOLVER_UNREACHABLE.code}"
              for v in d.evidence.views if not v.reachable]
    out.update(views_used=used, views_unreachable=silent, knobs=sorted({k for ks in seen.knobs.values() for k in ks}))
    if host:
        out["host"] = host
    return out


def _diagnose(seen: Vantage, domain: str) -> Diagnosis:
    ev = reachable_first(api.collect(domain, seen.options))
    return analysis.analyse(ev, knobs=seen.knobs or None)


# -- the running watch --------------------------------------------------------------------------------
class Runtime:
    """The watchers (the local one first), the web server and the metrics exporter of one watch."""

    def __init__(self, watchers: Sequence[tuple[str, watch.Watcher]], *, web: WebServer | None = None,
                 metrics_server: Any = None, closers: Sequence[Callable[[], None]] = ()) -> None:
        self.watchers = list(watchers)
        self.web = web
        self.metrics_server = metrics_server
        self.closers = list(closers)
        self.stop_event = threading.Event()

    def run(self, *, max_polls: int | None = None) -> watch.PollResult | None:
        """Run every watcher until SIGTERM/SIGINT (or ``max_polls`` each); the local one's last result."""
        if len(self.watchers) == 1 and self.web is None:
            return self.watchers[0][1].run(max_polls=max_polls)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        results: dict[str, watch.PollResult | None] = {}

        def one(name: str, watcher: watch.Watcher) -> None:
            try:
                results[name] = watcher.run(max_polls=max_polls)
            except Exception as exc:  # noqa: BLE001 - one queue's failure is logged; the others go on
                log.warning("the watch of %s stopped: %s: %s", name, type(exc).__name__, exc)

        threads = [threading.Thread(target=one, args=(n, w), name=f"watch-{n}", daemon=True)
                   for n, w in self.watchers]
        for t in threads:
            t.start()
        while not self.stop_event.is_set() and any(t.is_alive() for t in threads):
            self.stop_event.wait(0.2)
        self.stop()
        for t in threads:
            t.join(2.0)
        return results.get(self.watchers[0][0]) if self.watchers else None

    def stop(self) -> None:
        self.stop_event.set()
        for _, watcher in self.watchers:
            watcher.stop()

    def close(self) -> None:
        """Stop and close everything; a send in flight gets a second (it is resent after a restart)."""
        self.stop()
        for _, watcher in self.watchers:
            watcher.close()
        if self.web is not None:
            self.web.stop()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
        for close in self.closers:
            close()


def _views(options: api.DiagnoseOptions) -> list[str]:
    out = [f"internal {r}" for r in options.resolvers] or ["system (the resolvers of this host)"]
    out += [f"external {e}" for e in options.externals]
    if options.authoritative:
        out.append("authoritative (from the root)")
    return out


def build(opts: config.Settings, source: formats.Source | None, options: watch.WatchOptions | None,
          base: api.DiagnoseOptions, custom: watch.Diagnoser | None = None, *,
          template: watch.WatchOptions | None = None) -> Runtime:
    """The runtime of checked settings: ``source``/``options`` for the local queue (None: pushed hosts
    only), ``base`` the watch's own views, ``custom`` a --diagnoser that replaces mxdoctor's."""
    main_path = Path(opts.state) if opts.state else state.default_path()
    hosts_dir = main_path.with_name(main_path.stem + ".hosts")
    wanted = opts.diagnose
    parts: dict[str, metrics.WatchMetrics] = {}
    watchers: list[tuple[str, watch.Watcher]] = []
    closers: list[Callable[[], None]] = []
    board: WatchBoard | None = None
    try:
        if opts.web is not None:
            store = history.History(str(main_path))
            closers.append(store.close)
            board = WatchBoard(store, lambda d: api.diagnose(d, base), _views(base))
        notifiers = config.notifiers(opts)
        if options is not None:
            name = source.label if source is not None else "local"
            m = metrics.WatchMetrics(top=opts.metrics_top) if opts.metrics else None
            if m is not None:
                parts[""] = m
            diagnoser = custom if custom is not None or not wanted else _local_diagnoser(base, board, name)
            w = watch.Watcher(options, state.State(main_path), notifiers, diagnoser, m)
            watchers.append((name, w))
            if board is not None:
                _observe(w, name, board, None)
        the_fleet = None
        if opts.hosts:
            hosts_dir.mkdir(parents=True, exist_ok=True)
            the_fleet = fleet.Fleet(hosts_dir, {h.name: h for h in opts.hosts})
            template = template or options or watch.WatchOptions(source=formats.Source(path=""))
            for host in opts.hosts:
                m = metrics.WatchMetrics(top=opts.metrics_top) if opts.metrics else None
                if m is not None:
                    parts[host.name] = m
                # The local queue's filter (queues = ["deferred"]) names Postfix queues: not a host's.
                host_options = dataclasses.replace(template, source=the_fleet.source(host.name), host=host.name,
                                                   queues=())
                diagnoser = custom if custom is not None or not wanted else _host_diagnoser(base, board, the_fleet,
                                                                                         host.name)
                hw = fleet.HostWatcher(the_fleet, host.name, host_options,
                                       state.State(hosts_dir / f"{host.name}.sqlite"), notifiers, diagnoser, m)
                watchers.append((host.name, hw))
                if board is not None:
                    _observe(hw, host.name, board, the_fleet)
        web = None
        if opts.web is not None and board is not None:
            web_options = web_app.WebOptions(host=opts.web.host, port=opts.web.port, token=opts.web.token,
                                             refresh=opts.web.refresh, threshold=format_age(opts.alert_age))
            web = WebServer(web_app.Dashboard(board, web_options, the_fleet).app, opts.web.host, opts.web.port)
            web.start()
            closers.insert(0, web.stop)
        server = None
        if opts.metrics and parts:
            registry = parts[""].registry if list(parts) == [""] else metrics.fleet_registry(parts)
            server = metrics.serve(registry, opts.metrics)
        if web is not None:
            closers.remove(web.stop)
        return Runtime(watchers, web=web, metrics_server=server, closers=closers)
    except BaseException:
        for _, w in watchers:
            w.state.close()
        for close in closers:
            close()
        raise


def _observe(w: watch.Watcher, name: str, board: WatchBoard, the_fleet: fleet.Fleet | None) -> None:
    def observe(result: watch.PollResult) -> None:
        if the_fleet is None:
            board.observe(name, result, w.state)
        else:
            board.observe(name, result, w.state, age_from=the_fleet.age_from(name), silent_for=the_fleet.silent(name))
        board.history_store.prune(time.time() - w.options.retention)

    w.observers.append(observe)


def _local_diagnoser(base: api.DiagnoseOptions, board: WatchBoard | None, queue: str) -> watch.Diagnoser:
    seen = vantage(base)

    def diagnose(domain: str) -> dict[str, Any]:
        d = _diagnose(seen, domain)
        if board is not None:
            board.keep(d, queue)
        return summary(d, seen)

    return diagnose


def _host_diagnoser(base: api.DiagnoseOptions, board: WatchBoard | None, the_fleet: fleet.Fleet,
                    host: str) -> watch.Diagnoser:
    def diagnose(domain: str) -> dict[str, Any]:
        seen = vantage(base, host, the_fleet.dns(host))  # read at each diagnosis: a push may change it
        d = _diagnose(seen, domain)
        if board is not None:
            board.keep(d, host, seen.knobs)
        return summary(d, seen, host)

    return diagnose
