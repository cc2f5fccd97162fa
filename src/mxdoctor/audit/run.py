"""The audit run: discover the zones and servers (diagnose's route over the authoritative view), then
send the probe set to every server address, at most ``per_server`` queries in flight per address.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from mxdoctor import evidence, probe, progress, route
from mxdoctor.audit import probes
from mxdoctor.dns import exchange, probeset, system, views
from mxdoctor.errors import ConfigError
from mxdoctor.evidence import AuditProbe, Evidence, Outcome, Server
from mxdoctor.route import fqdn

AUDIT_VIEW = "audit"  # the view name of every probe exchange


@dataclass(frozen=True)
class AuditOptions:
    root_hints: str | None = None
    trust_anchor: str | None = None  # the root's keys the route's DNSSEC check validates from (a lab's)
    dns_port: int = 53
    timeout: float = 2.0
    deadline: float = 60.0
    per_server: int = 2

    def check(self) -> None:
        """Raises ConfigError for values no audit can run with."""
        if self.per_server < 1:
            raise ConfigError(f"--per-server {self.per_server}: must be at least 1")
        self.probe_options().check()

    def probe_options(self) -> probe.ProbeOptions:
        return probe.ProbeOptions(
            use_system=False,
            authoritative=True,
            root_hints=self.root_hints,
            trust_anchor=self.trust_anchor,
            dns_port=self.dns_port,
            timeout=self.timeout,
            deadline=self.deadline,
            per_server_concurrency=self.per_server,
            keys_without_anchor=True,
        )


@dataclass(frozen=True)
class Target:
    """One zone to audit: its servers and the audited names it owns."""

    zone: str
    servers: tuple[Server, ...]
    names: tuple[str, ...]
    signed: bool = False  # the parent publishes a DS for it: the DNSSEC probes go to its servers too


def owner_zone(zones: tuple[evidence.Zone, ...], name: str) -> evidence.Zone | None:
    """The deepest zone met while iterating that contains ``name``."""
    inside = [z for z in zones if z.name == "." or name == z.name or name.endswith("." + z.name)]
    return max(inside, key=lambda z: 0 if z.name == "." else len(z.name), default=None)


def signed_zones(ev: Evidence) -> set[str]:
    """The zones whose parent answered the discovery's DS query with DS records."""
    return {
        fqdn(lk.qname).lower() for lk in ev.lookups
        if lk.view == evidence.DNSSEC_KEYS_VIEW and lk.qtype == "DS" and lk.outcome is Outcome.NOERROR and lk.records
    }  # fmt: skip


def targets(ev: Evidence, port: int) -> list[Target]:
    """The zones of the mail domain and of every MX host, with their servers' every address. A mail
    domain that does not exist is audited in the signed zone that denies it (its proof may be bogus)."""
    domain = fqdn(ev.domain)
    rt = route.route_for_view(ev, "authoritative")
    names = [domain]
    for x in rt.exchangers:
        # an MX host that is an alias is audited with its canonical name, which MTAs end up asking
        for name in (x.host, x.cname_target) if x.literal is None else ():
            if name and fqdn(name) not in names:
                names.append(fqdn(name))
    by_zone: dict[str, list[str]] = {}
    zones: dict[str, evidence.Zone] = {}
    signed = signed_zones(ev)
    for name in names:
        z = owner_zone(ev.zones, name)
        if z is None or z.name == ".":
            continue
        if rt.kind is route.RouteKind.NXDOMAIN and (z.name.count(".") < 2 or z.name.lower() not in signed):
            # the denial of a missing domain is audited only where it can be bogus, and never at a TLD:
            # a mistyped domain says nothing of the registry's servers
            continue
        zones[z.name] = z
        if name not in by_zone.setdefault(z.name, []):
            by_zone[z.name].append(name)
    out = []
    for zname, znames in by_zone.items():
        servers = tuple(
            Server(address, port, ns.name) for ns in zones[zname].nameservers for address in ns.addresses
        )
        out.append(Target(zname, servers, tuple(znames), zname.lower() in signed))
    return out


class _Scheduler:
    def __init__(self, recorder: exchange.Recorder, options: AuditOptions, counter: progress.Counter) -> None:
        self.recorder = recorder
        self.options = options
        self.counter = counter
        # the one engine of the run: the probes and the lookups of child-only servers share its
        # per-server limit, so no server ever has more than ``per_server`` queries in flight
        self.engine = exchange.Engine(recorder, timeout=options.timeout, per_server_concurrency=options.per_server)
        self.done: list[AuditProbe] = []

    async def one(self, target: Target, server: Server, spec: probeset.ProbeSpec, qname: str, qtype: str) -> None:
        answer = await self.engine.exchange(AUDIT_VIEW, server, qname, qtype, spec.shape, probe=spec.name)
        self.done.append(AuditProbe(spec.name, target.zone, qname, server, answer.exchanges))
        self.counter.advance()

    def first_phase(self, target: Target, server: Server) -> list[asyncio.Future[None]]:
        jobs = []
        for spec in probeset.PROBES:
            if spec.dnssec and not target.signed:
                continue
            if spec.scope is probeset.Scope.NAME:
                for name in target.names:
                    qname = probes.mixed_case(name) if spec.name == "case" else name
                    if spec.name == "case" and qname == name:
                        continue  # no letters to vary
                    jobs.append(self.one(target, server, spec, qname, spec.qtype))
            elif spec.name in ("nxdomain", "nxdomain-proof"):
                jobs.append(self.one(target, server, spec, probes.nonexistent(target.zone), spec.qtype))
            elif spec.name == "ent":
                for ent in probes.empty_nonterminals(target.zone, list(target.names))[:2]:
                    jobs.append(self.one(target, server, spec, ent, spec.qtype))
            elif spec.name != "do512":
                jobs.append(self.one(target, server, spec, target.zone, spec.qtype))
        self.counter.add(len(jobs))
        return [asyncio.ensure_future(j) for j in jobs]

    def large_type(self, target: Target) -> str:
        """The apex type with the largest reply seen so far: the one most likely to need TC at 512."""
        sizes: dict[str, int] = {}
        for x in self.recorder.exchanges:
            if x.probe in ("mx", "txt", "ns", "soa") and x.qname == target.zone and x.size and x.answer:
                sizes[x.qtype] = max(sizes.get(x.qtype, 0), x.size)
        return max(sizes, key=lambda t: sizes[t]) if sizes else "SOA"


def apex_ns(recorder: exchange.Recorder, zone: str) -> set[str]:
    """The NS names the zone's own servers gave to the ``ns`` probe."""
    names: set[str] = set()
    for x in recorder.exchanges:
        if x.probe == "ns" and x.qname == zone:
            for rr in x.answer:
                fields = rr.split()
                if len(fields) >= 5 and fields[3] == "NS" and fields[0].lower() == zone:
                    names.add(fields[4].lower())
    return names


async def _child_only(sched: _Scheduler, found: list[Target]) -> list[Target]:
    """The servers a zone's own NS set names but its parent does not delegate to: resolvers that
    learn the child's NS set ask them too, so they are audited alike (their addresses found by the
    same iteration from the root as every other name)."""
    options = sched.options
    wanted = {t.zone: sorted(apex_ns(sched.recorder, t.zone) - {s.name for s in t.servers}) for t in found}
    if not any(wanted.values()):
        return []
    view = views.AuthoritativeView(sched.engine, system.load_root_hints(options.root_hints), options.dns_port)
    extra: list[Target] = []
    for t in found:
        questions = [route.Question(name, qtype) for name in wanted[t.zone] for qtype in route.ADDRESS_TYPES]
        lookups = await asyncio.gather(*(view.lookup(q) for q in questions))
        servers = tuple(
            Server(address, options.dns_port, q.qname)
            for q, lk in zip(questions, lookups, strict=True)
            if lk.outcome is Outcome.NOERROR
            for address in lk.records
        )
        if servers:
            extra.append(Target(t.zone, servers, t.names, t.signed))
    return extra


async def _run_probes(sched: _Scheduler, found: list[Target]) -> None:
    first = [f for t in found for s in t.servers for f in sched.first_phase(t, s)]
    if first:
        await asyncio.gather(*first)
    extra = await _child_only(sched, found)
    more = [f for t in extra for s in t.servers for f in sched.first_phase(t, s)]
    if more:
        await asyncio.gather(*more)
    do512 = probeset.BY_NAME["do512"]
    sched.counter.add(sum(len(t.servers) for t in found + extra))
    second = [
        asyncio.ensure_future(sched.one(t, s, do512, t.zone, sched.large_type(t)))
        for t in found + extra
        for s in t.servers
    ]
    if second:
        await asyncio.gather(*second)


async def audit_domain(target: str, options: AuditOptions, *, on_progress: progress.Callback | None = None) -> Evidence:
    """Discover and probe; never raises for the network. Raises InvalidTarget or ConfigError.
    ``on_progress`` is told the discovery's lookups, then the probes sent and answered."""
    options.check()
    loop = asyncio.get_running_loop()
    started = loop.time()
    ev = await probe.probe_domain(target, options.probe_options(), on_progress=on_progress)
    recorder = exchange.Recorder()
    # the event loop's clock is time.monotonic(), the clock a Progress deadline is read on
    counter = progress.Counter(
        on_progress, f"audit {ev.domain}", progress.Unit.PROBES, deadline=started + options.deadline
    )
    sched = _Scheduler(recorder, options, counter)
    found = targets(ev, options.dns_port)
    audited = {t.zone for t in found}
    task = asyncio.ensure_future(_run_probes(sched, found))
    deadline_hit = ev.deadline_hit
    try:
        # one deadline for the whole audit: discovery and probes together
        await asyncio.wait_for(task, timeout=max(0.0, options.deadline - (loop.time() - started)))
    except TimeoutError:
        deadline_hit = True
    finally:
        await sched.engine.close()
        counter.finish()
    # continue the discovery's clock and exchange ids, so the evidence reads as one run
    id_base = max((x.id for x in ev.exchanges), default=0)
    t_base = max((x.started + x.duration for x in ev.exchanges), default=0.0)
    mine = [
        dataclasses.replace(x, id=x.id + id_base, started=round(x.started + t_base, 6))
        for x in sorted(recorder.exchanges, key=lambda x: x.id)
    ]
    lookups = [dataclasses.replace(lk, exchanges=tuple(i + id_base for i in lk.exchanges)) for lk in recorder.lookups]
    zones = tuple(
        dataclasses.replace(z, apex_ns=tuple(sorted(apex_ns(recorder, z.name)))) if z.name in audited else z
        for z in ev.zones
    )
    audit = sorted(
        (dataclasses.replace(p, exchanges=tuple(i + id_base for i in p.exchanges)) for p in sched.done),
        key=lambda p: (p.zone, p.server.address, probeset.ORDER.get(p.name, 99), p.qname.lower()),
    )
    return dataclasses.replace(
        ev,
        command="audit",
        exchanges=ev.exchanges + tuple(mine),
        lookups=ev.lookups + tuple(lookups),
        zones=zones,
        audit=tuple(audit),
        deadline_hit=deadline_hit,
        options={**ev.options, "per_server": str(options.per_server)},
    )


def collect(target: str, options: AuditOptions, *, on_progress: progress.Callback | None = None) -> Evidence:
    """``audit_domain`` for synchronous callers (the CLI)."""
    return asyncio.run(audit_domain(target, options, on_progress=on_progress))
