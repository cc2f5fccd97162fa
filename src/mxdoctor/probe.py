"""The diagnose probe: resolve a mail domain's route through every view at once, under one deadline,
and return everything seen as Evidence. The only network-facing entry point of ``diagnose``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from dataclasses import dataclass

from mxdoctor import __version__, evidence, progress, route
from mxdoctor.dns import system, views
from mxdoctor.dns.exchange import Engine, Recorder
from mxdoctor.errors import ConfigError
from mxdoctor.evidence import Lookup, Outcome, ViewKind


@dataclass(frozen=True)
class ProbeOptions:
    """How to probe. Servers are ``ADDR[:PORT]`` (IPv6 as ``[ADDR]:PORT``); a server without a port
    uses ``dns_port``, as do the root hints, glue and every address learnt while iterating.
    ``use_system`` None means: the system view unless resolvers are given."""

    resolvers: tuple[str, ...] = ()
    externals: tuple[str, ...] = ()
    use_system: bool | None = None
    authoritative: bool = True
    root_hints: str | None = None
    dns_port: int = 53
    timeout: float = 2.0
    deadline: float = 30.0
    per_server_concurrency: int = 8
    resolv_conf: str = system.RESOLV_CONF
    # the MTA's view (first resolver, else the system view) waits for one answer as long as this
    # host's stub resolver does: resolv.conf's timeout x attempts (glibc: 5 s x 2)
    stub_timer: bool = True

    @property
    def system_enabled(self) -> bool:
        return not self.resolvers if self.use_system is None else self.use_system

    def check(self) -> None:
        """Raises ConfigError for values no probe can run with."""
        if not 0 < self.dns_port < 65536:
            raise ConfigError(f"--dns-port {self.dns_port}: must be from 1 to 65535")
        if self.timeout <= 0 or self.deadline <= 0:
            raise ConfigError("timeout and deadline must be positive")
        if self.per_server_concurrency < 1:
            raise ConfigError("per-server concurrency must be at least 1")

    def as_record(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = ",".join(value) if isinstance(value, tuple) else str(value)
        out["use_system"] = str(self.system_enabled)
        # the stub resolver's timer: how long the MTA on this host waits for one DNS answer
        timer = system.resolv_conf_timer(self.resolv_conf)
        out["stub_timeout"], out["stub_attempts"] = f"{timer.timeout:g}", str(timer.attempts)
        return out


def probe_time(deadline: float) -> float:
    """The part of a run's deadline the probe may use. The rest is kept for cancelling what is in
    flight, the analysis and the rendering, so that the whole command ends by its deadline."""
    reserve = min(2.0, max(0.5, deadline * 0.1))
    return max(deadline - reserve, deadline / 2)


def build_views(options: ProbeOptions, engine: Engine) -> list[views.View]:
    """The views of a run in report order: system, internal resolvers, external ones, authoritative.
    The MTA's view (the first resolver, else the system view) waits as the stub resolver does."""
    port = options.dns_port
    built: list[views.View] = []
    patience = system.resolv_conf_timer(options.resolv_conf).wait if options.stub_timer else None
    if options.system_enabled:
        servers = system.system_servers(options.resolv_conf, port)
        mine = patience if not options.resolvers else None
        built.append(views.RecursiveView("system", ViewKind.SYSTEM, servers, engine, mine))
    for i, text in enumerate(options.resolvers):
        name = "internal" if i == 0 else f"internal#{i + 1}"
        servers = (system.parse_server(text, port),)
        built.append(views.RecursiveView(name, ViewKind.RESOLVER, servers, engine, patience if i == 0 else None))
    for text in options.externals:
        server = system.parse_server(text, port)
        # named as the user wrote it, so a report line matches the command line
        built.append(views.RecursiveView(f"external {text.strip()}", ViewKind.EXTERNAL, (server,), engine))
    if options.authoritative:
        hints = system.load_root_hints(options.root_hints)
        built.append(views.AuthoritativeView(engine, hints, port))
    return built


class _RouteRun:
    """The thin loop around one view's RouteMachine; ``pending`` is what was asked and not answered."""

    def __init__(self, view: views.View, domain: str, counter: progress.Counter, *, in_order: bool = False) -> None:
        self.view = view
        self.machine = route.RouteMachine(domain)
        self.pending: list[route.Question] = []
        self.counter = counter
        # the MTA's view asks a host's AAAA, then its A, one after the other, as Exchange, Exim,
        # Sendmail and OpenSMTPD do: some resolvers answer the second from what the first left cached
        self.in_order = in_order

    async def _ask_host(self, questions: list[route.Question]) -> list[Lookup]:
        return [await self._lookup(q) for q in questions]

    async def _ask(self, questions: list[route.Question]) -> list[Lookup]:
        if not self.in_order:
            return list(await asyncio.gather(*(self._lookup(q) for q in questions)))
        hosts: dict[str, list[route.Question]] = {}
        for q in sorted(questions, key=lambda q: (q.qtype != "AAAA", q.qtype)):
            hosts.setdefault(q.qname, []).append(q)
        answered = await asyncio.gather(*(self._ask_host(qs) for qs in hosts.values()))
        got = {q: lk for qs, lks in zip(hosts.values(), answered, strict=True) for q, lk in zip(qs, lks, strict=True)}
        return [got[q] for q in questions]

    async def _lookup(self, q: route.Question) -> Lookup:
        lookup = await self.view.lookup(q)
        # answered: no longer pending, even while the other questions of its round are still out
        self.pending.remove(q)
        self.counter.advance()
        return lookup

    async def run(self) -> None:
        asked: set[route.Question] = set()
        while not self.machine.done:
            questions = [q for q in self.machine.wanted() if q not in asked]
            if not questions:
                break
            asked.update(questions)
            self.pending.extend(questions)
            self.counter.add(len(questions))
            answers = await self._ask(questions)
            for q, lookup in zip(questions, answers, strict=True):
                self.machine.give(q, lookup)


async def probe_domain(
    target: str,
    options: ProbeOptions,
    *,
    started: float | None = None,
    on_progress: progress.Callback | None = None,
) -> evidence.Evidence:
    """Resolve ``target``'s mail route through every view concurrently; never raises for the network.

    The probe ends by ``probe_time(options.deadline)`` after ``started`` (a ``time.monotonic()``
    value; now by default): what is still running is cancelled and recorded as unfinished.
    ``on_progress`` is told the route lookups asked and answered, and the run's deadline.
    Raises InvalidTarget for a target that is no mail domain and ConfigError for bad options.
    """
    started = time.monotonic() if started is None else started
    domain = route.normalise_target(target)
    options.check()
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    recorder = Recorder()
    engine = Engine(recorder, timeout=options.timeout, per_server_concurrency=options.per_server_concurrency)
    view_list = build_views(options, engine)
    counter = progress.Counter(
        on_progress, f"diagnose {domain.rstrip('.')}", progress.Unit.LOOKUPS, deadline=started + options.deadline
    )
    mta_view = next((v for v in view_list if v.kind is ViewKind.RESOLVER), None) or next(
        (v for v in view_list if v.kind is ViewKind.SYSTEM), None
    )
    runs = [_RouteRun(v, domain, counter, in_order=v is mta_view) for v in view_list]
    tasks = [asyncio.create_task(r.run()) for r in runs]
    try:
        left = max(0.0, probe_time(options.deadline) - (time.monotonic() - started))
        _, unfinished = await asyncio.wait(tasks, timeout=left)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
    finally:
        for v in view_list:
            if isinstance(v, views.AuthoritativeView):
                v.cancel()
        await engine.close()
        counter.finish()
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # a bug, not a network fault
    pending = [(r.view.name, q) for r in runs for q in r.pending]
    if unfinished:
        shown = ", ".join(f"{q.qname} {q.qtype} ({view})" for view, q in pending[:4])
        more = f" and {len(pending) - 4} more" if len(pending) > 4 else ""
        what = f"{len(pending)} lookups unfinished: {shown}{more}" if pending else "the probe was still running"
        recorder.reach("deadline", what)
    for r in runs:
        for q in r.pending:
            recorder.add_lookup(
                Lookup(
                    r.view.name,
                    None,
                    q.qname,
                    q.qtype,
                    Outcome.TIMEOUT,
                    detail=f"the run's deadline of {options.deadline:g} s ended the lookup",
                    unfinished=True,
                )  # fmt: skip
            )
    zones: tuple[evidence.Zone, ...] = ()
    for v in view_list:
        if isinstance(v, views.AuthoritativeView):
            zones = v.zones()
    return evidence.Evidence(
        target=target,
        domain=domain.rstrip("."),
        tool=f"mxdoctor {__version__}",
        created=created,
        command="diagnose",
        views=tuple(_described(v, recorder, cut=bool(unfinished)) for v in view_list),
        zones=zones,
        exchanges=tuple(sorted(recorder.exchanges, key=lambda x: x.id)),
        lookups=tuple(recorder.lookups),
        deadline_hit=bool(unfinished),
        options=options.as_record(),
        limits_reached=tuple(recorder.limits.values()),
    )


def _described(view: views.View, recorder: Recorder, *, cut: bool) -> evidence.View:
    """The view as recorded; one whose every query the deadline cut short was not waited for, which
    says nothing of whether its servers answer."""
    described = view.describe()
    if cut and not described.reachable and not any(x.view == described.name for x in recorder.exchanges):
        return dataclasses.replace(described, reachable=True)
    return described


def collect(
    target: str,
    options: ProbeOptions,
    *,
    started: float | None = None,
    on_progress: progress.Callback | None = None,
) -> evidence.Evidence:
    """``probe_domain`` for synchronous callers (the CLI)."""
    return asyncio.run(probe_domain(target, options, started=started, on_progress=on_progress))
