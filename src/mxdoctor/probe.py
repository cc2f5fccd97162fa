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
from mxdoctor.dns import anchor, system, views
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
    # DNSSEC: DO to the authoritative servers, AD to resolvers, DNSKEY and DS of every zone on the path.
    dnssec: bool = True
    # A file of the root's DS/DNSKEY records; None: the IANA root keys, unless root_hints name another root.
    trust_anchor: str | None = None
    # Ask the DNSKEY and DS sets even without a trust anchor: audit checks each zone's keys against its
    # parent's DS per server, which needs no anchor above them.
    keys_without_anchor: bool = False

    def anchor_lines(self) -> tuple[str, ...]:
        """The trust anchor the checks validate from; raises ConfigError for a file that is no anchor."""
        if not self.dnssec:
            return ()
        if self.trust_anchor is not None:
            try:
                with open(self.trust_anchor, encoding="utf-8", errors="replace") as f:
                    text = f.read(anchor.MAX_BYTES + 1)
            except OSError as exc:
                raise ConfigError(f"--trust-anchor {self.trust_anchor}: {exc.strerror or exc}") from None
            return anchor.parse(text, f"--trust-anchor {self.trust_anchor}")
        # Another root (a lab, a test bed) is signed, if at all, by keys IANA's anchor cannot vouch for.
        return anchor.IANA_ROOT if self.root_hints is None else ()

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
    trust_anchor = options.anchor_lines()
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    recorder = Recorder()
    engine = Engine(recorder, timeout=options.timeout, per_server_concurrency=options.per_server_concurrency)
    engine.dnssec = options.dnssec
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
        left = max(0.0, probe_time(options.deadline) - (time.monotonic() - started))
        auth = next((v for v in view_list if isinstance(v, views.AuthoritativeView)), None)
        # Only where the authoritative servers answered at all: a silent root would only cost time-outs; and
        # only with a trust anchor (without one, e.g. --root-hints alone, nothing is validated from them),
        # unless the caller checks keys against the parents' DS without one (audit).
        keys_wanted = options.dnssec and (bool(trust_anchor) or options.keys_without_anchor)
        if keys_wanted and auth is not None and not unfinished and left > 0 and auth.describe().reachable:
            tlsa = (_tlsa(r, engine, auth) for r in runs)
            keys = asyncio.ensure_future(asyncio.gather(_zone_keys(engine, auth), *tlsa))
            done, _ = await asyncio.wait([keys], timeout=left)
            if not done:
                keys.cancel()
                await asyncio.gather(keys, return_exceptions=True)
                recorder.reach("deadline", "the DNSKEY and DS lookups of the zones on the path were unfinished")
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
        trust_anchor=trust_anchor,
    )


DANE_PORT = 25
MAX_TLSA_HOSTS = 8


async def _tlsa(run: _RouteRun, engine: Engine, auth: views.AuthoritativeView) -> None:
    """TLSA at _25._tcp.<exchanger> (RFC 7672 §2.2) for the exchangers of one view's route: what a
    DANE-enabled MTA asks before it connects. Through a resolver view as the MTA asks it; for the
    authoritative view, of the exchanger's zone's servers directly (lookups of the dnssec view, so the
    route's own checks do not count them)."""
    hosts = [x.host for x in run.machine.result().exchangers if x.literal is None][:MAX_TLSA_HOSTS]
    names = [n for n in (f"_{DANE_PORT}._tcp.{h}" for h in hosts) if _is_name(n)]
    if run.view is not auth:
        await asyncio.gather(*(run.view.lookup(route.Question(n, "TLSA")) for n in names))
        return
    zones = auth.zones()
    asks = []
    for name in names:
        owner = _owning(zones, name)
        if owner is not None:
            asks.append(_raced(engine, _key_servers(owner, auth.port), name, "TLSA", KEYS_GRACE))
    await asyncio.gather(*asks)


def _is_name(text: str) -> bool:
    """A TLSA owner that fits in a name (a 250-byte exchanger name does not take the prefix)."""
    import dns.exception
    import dns.name

    try:
        dns.name.from_text(text)
    except dns.exception.DNSException:
        return False
    return True


def _owning(zones: tuple[evidence.Zone, ...], name: str) -> evidence.Zone | None:
    labels = name.lower().rstrip(".").split(".")
    best: evidence.Zone | None = None
    for zone in zones:
        z = zone.name.lower().rstrip(".")
        inside = z == "" or labels[-len(z.split(".")):] == z.split(".")
        if inside and (best is None or len(zone.name) > len(best.name)):
            best = zone
    return best


MAX_KEY_SERVERS = 4  # addresses asked for each zone's DNSKEY set and for its DS at the parent


def _key_servers(zone: evidence.Zone, port: int) -> list[evidence.Server]:
    pairs = [(ns.name, a) for ns in zone.nameservers for a in (ns.addresses or ns.glue)]
    return [evidence.Server(a, port, ns) for ns, a in pairs[:MAX_KEY_SERVERS]]


async def _raced(
    engine: Engine, servers: list[evidence.Server], qname: str, qtype: str, grace: float = 0.0
) -> None:
    """Ask the servers at once; the first definite answer ends the wait (as for the route), after ``grace``
    seconds more for the others."""
    pending = {asyncio.ensure_future(engine.ask(evidence.DNSSEC_KEYS_VIEW, s, qname, qtype, rd=False))
               for s in servers}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            answers = [t.result() for t in done]
            for answer in answers:
                engine.recorder.add_lookup(answer.to_lookup(evidence.DNSSEC_KEYS_VIEW))
            if any(a.outcome.is_answer for a in answers):
                break
        if pending and grace > 0:
            done, pending = await asyncio.wait(pending, timeout=grace)
            for t in done:
                engine.recorder.add_lookup(t.result().to_lookup(evidence.DNSSEC_KEYS_VIEW))
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# How long the other servers of a zone may take to give their DNSKEY set (or TLSA records) once one has: a
# finding then names every server that serves the bad data, and a dead server costs no more than this.
KEYS_GRACE = 0.3


async def _zone_keys(engine: Engine, auth: views.AuthoritativeView) -> None:
    """DNSKEY of every zone on the path from its own servers, and its DS from the parent's servers."""
    zones = {z.name: z for z in auth.zones()}
    asks = []
    for zone in zones.values():
        asks.append(_raced(engine, _key_servers(zone, auth.port), zone.name, "DNSKEY", KEYS_GRACE))
        parent = zones.get(zone.parent) if zone.parent else None
        if parent is not None:
            asks.append(_raced(engine, _key_servers(parent, auth.port), zone.name, "DS"))
    await asyncio.gather(*asks)


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
