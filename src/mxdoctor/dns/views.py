"""The views a run resolves through: recursive ones (system, internal resolvers, external resolvers)
and the authoritative one (iteration from the root, every server of the owner zone asked directly).
Each records its per-server Lookups and answers a question with one view-level Lookup (server=None).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Protocol

from mxdoctor import evidence, route
from mxdoctor.dns import iterate
from mxdoctor.dns.exchange import MAX_CNAME_CHAIN, Engine
from mxdoctor.evidence import Lookup, Outcome, ViewKind

AUTHORITATIVE = "authoritative"


class View(Protocol):
    name: str
    kind: ViewKind

    async def lookup(self, question: route.Question) -> Lookup: ...

    def describe(self) -> evidence.View: ...


def _reachable(engine: Engine, view: str) -> bool:
    return any(
        x.view == view and x.outcome not in (Outcome.TIMEOUT, Outcome.NETWORK_ERROR) for x in engine.recorder.exchanges
    )


class RecursiveView:
    """A recursive resolver, or the list of them a stub tries in order (RD=1); answers taken as is:
    a SERVFAIL stays a SERVFAIL. The next server is tried only after a failure, as the stub does."""

    def __init__(
        self, name: str, kind: ViewKind, servers: tuple[evidence.Server, ...], engine: Engine,
        patience: float | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.servers = servers
        self.engine = engine
        # how long one question may take in all (the MTA's stub resolver); None: the engine's timer.
        # The engine tries twice, the second wait double the first, and a late reply to the first
        # still counts: a first wait of a third makes the whole wait ``patience``.
        self.first_wait = None if patience is None else patience / 3

    async def lookup(self, question: route.Question) -> Lookup:
        lookups: list[Lookup] = []
        for server in self.servers:
            answer = await self.engine.ask(
                self.name, server, question.qname, question.qtype, rd=True, timeout=self.first_wait
            )
            lk = answer.to_lookup(self.name)
            self.engine.recorder.add_lookup(lk)
            lookups.append(lk)
            if lk.outcome.is_answer:
                break
        if lookups and all(lk.outcome is Outcome.TIMEOUT for lk in lookups) and not _reachable(self.engine, self.name):
            # silence to one question is not a dead resolver: the stub times out and the MTA defers;
            # only a resolver that answers nothing at all (not even the root's NS) is unreachable
            for server in self.servers:
                await self.engine.ask(self.name, server, ".", "NS", rd=True)
        if not lookups:
            summary = Lookup(
                self.name, None, question.qname, question.qtype, Outcome.NETWORK_ERROR,
                detail="no name server configured",
            )  # fmt: skip
        else:
            final = lookups[-1]
            summary = replace(final, server=None, exchanges=tuple(x for lk in lookups for x in lk.exchanges))
        self.engine.recorder.add_lookup(summary)
        return summary

    def describe(self) -> evidence.View:
        return evidence.View(self.name, self.kind, self.servers, _reachable(self.engine, self.name))


ROOT_PROBES = 6  # root addresses asked at once whether this host reaches them at all
ROOTS_SILENT = (
    "no root server answered from this host: the authoritative servers could not be tested (a firewall "
    "that lets only the resolver out?)"
)


def _cname_failure(qname: str, chain: list[str]) -> tuple[str, tuple[str, ...]]:
    """The detail and the chain to record for a chain that never reaches data: the loop, or the
    names up to the limit."""
    loop = evidence.cname_loop(qname, chain)
    if loop:
        names = [qname.lower(), *chain]
        return "CNAME loop: " + " -> ".join(loop), tuple(names[1 : names.index(loop[0]) + len(loop)])
    return f"CNAME chain longer than {MAX_CNAME_CHAIN} names", tuple(chain[: MAX_CNAME_CHAIN + 1])


class AuthoritativeView:
    """Iterate from the root hints; ask the question of every address of every server of the zone
    that owns the name, and conclude as a good resolver would (``iterate.summarise``)."""

    kind = ViewKind.AUTHORITATIVE

    def __init__(self, engine: Engine, hints: dict[str, tuple[str, ...]], port: int, name: str = AUTHORITATIVE) -> None:
        self.name = name
        self.engine = engine
        self.port = port
        root = iterate.Cut(".", None, list(hints), {n: a for n, a in hints.items()})
        self.table = iterate.ZoneTable(root)
        self.budget = iterate.NsBudget(engine.limits.ns_names, engine.limits.ns_depth)
        # one fan-out per name and type, whether the route asks it or a CNAME chain leads to it
        self._fan_outs: dict[tuple[str, str], asyncio.Task[Lookup]] = {}
        self._roots: asyncio.Task[bool] | None = None

    def _server(self, ns: str, address: str) -> evidence.Server:
        return evidence.Server(address, self.port, ns)

    async def lookup(self, question: route.Question) -> Lookup:
        if self._roots is None:
            self._roots = asyncio.ensure_future(self._roots_answer())
        # the walk starts at once; the root check only cuts it short when no root answers at all
        walking = asyncio.ensure_future(self._lookup(question))
        done, _ = await asyncio.wait({walking, self._roots}, return_when=asyncio.FIRST_COMPLETED)
        if walking in done or self._roots.result():
            return await walking
        walking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await walking
        silent = Lookup(self.name, None, question.qname, question.qtype, Outcome.TIMEOUT, detail=ROOTS_SILENT)
        self.engine.recorder.add_lookup(silent)
        return silent

    async def _lookup(self, question: route.Question) -> Lookup:
        qname, qtype = question.qname, question.qtype
        chain: list[str] = []
        exchanges: list[int] = []
        summary: Lookup | None = None
        following = False
        for _ in range(MAX_CNAME_CHAIN):
            summary = await self._ask_owner_zone(qname, qtype)
            exchanges.extend(summary.exchanges)
            chain.extend(summary.cnames)
            following = bool(
                qtype != "CNAME"
                and summary.outcome in (Outcome.NODATA, Outcome.NOERROR)
                and not summary.records
                and summary.cnames
            )
            if not following or summary.cnames[-1] in (question.qname, *chain[:-1]) or len(chain) > MAX_CNAME_CHAIN:
                break
            qname = summary.cnames[-1]
        assert summary is not None
        result = replace(summary, qname=question.qname, cnames=tuple(chain), exchanges=tuple(dict.fromkeys(exchanges)))
        if following:
            # a chain that loops or never ends: every resolver gives up with SERVFAIL, so MTAs defer
            detail, names = _cname_failure(question.qname, chain)
            result = replace(result, outcome=Outcome.SERVFAIL, records=(), cnames=names, detail=detail)
        self.engine.recorder.add_lookup(result)
        return result

    async def _roots_answer(self) -> bool:
        """Whether any of a few root addresses answers within one time-out: a host whose firewall lets
        only its own resolver out (the usual Exchange server) cannot test the authoritative servers,
        and should say so at once instead of walking every root address to the deadline."""
        addresses = self.table.cuts["."].addresses()[:ROOT_PROBES]
        if not addresses:
            return True  # no hints: the walk reports that itself
        tasks = {
            asyncio.ensure_future(self.engine.ask(self.name, self._server(ns, a), ".", "NS", rd=False))
            for ns, a in addresses
        }
        deadline = asyncio.get_running_loop().time() + self.engine.timeout + 0.25  # the first try, and a margin
        try:
            while tasks:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    return False
                done, tasks = await asyncio.wait(tasks, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if any(t.result().replied for t in done):
                    return True
            return False
        finally:
            for task in tasks:
                task.cancel()  # only this waiter: the engine's task goes on into the evidence

    async def _ask_owner_zone(self, qname: str, qtype: str) -> Lookup:
        task = self._fan_outs.get((qname, qtype))
        if task is None:
            task = self._fan_outs[(qname, qtype)] = asyncio.ensure_future(self._fan_out(qname, qtype))
        return await asyncio.shield(task)

    async def _fan_out(self, qname: str, qtype: str) -> Lookup:
        step = await self._walk(qname, qtype, depth=0)
        if isinstance(step, iterate.Failed):
            return Lookup(self.name, None, qname, qtype, Outcome.SERVFAIL, detail=step.reason)
        cut = self.table.cuts[step.zone]
        await self._resolve_all(cut, depth=0)
        pairs = cut.addresses()
        answers = await asyncio.gather(
            *(self.engine.ask(self.name, self._server(ns, a), qname, qtype, rd=False) for ns, a in pairs)
        )
        lookups = [iterate.judge(self.name, cut.name, answer) for answer in answers]
        for lk in lookups:
            self.engine.recorder.add_lookup(lk)
        return iterate.summarise(self.name, qname, qtype, lookups)

    async def _walk(self, qname: str, qtype: str, depth: int) -> iterate.Found | iterate.Failed:
        walk = iterate.Walk(self.table, qname, qtype)
        while True:
            step = walk.step()
            if isinstance(step, iterate.Found | iterate.Failed):
                return step
            if isinstance(step, iterate.AskServers):
                await self._race(walk, step, qname, qtype)
            else:
                results = await asyncio.gather(*(self._addresses(ns, depth + 1) for ns in step.names))
                for ns, addresses in zip(step.names, results, strict=True):
                    walk.learn_addresses(ns, addresses)

    async def _race(self, walk: iterate.Walk, step: iterate.AskServers, qname: str, qtype: str) -> None:
        """Give the walk each answer as it comes, until one moves it on; the rest keep running into
        the engine's cache, where the owner zone's fan-out finds them."""
        tasks = {
            asyncio.ensure_future(self.engine.ask(self.name, self._server(ns, a), qname, qtype, rd=False))
            for ns, a in step.servers
        }
        mark = walk.moves
        try:
            while tasks and walk.moves == mark:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    walk.give(step.zone, task.result())
        finally:
            for task in tasks:
                task.cancel()  # only this waiter: the engine's own task is shielded and goes on

    async def _resolve_all(self, cut: iterate.Cut, depth: int) -> None:
        names = cut.unresolved()
        results = await asyncio.gather(*(self._addresses(ns, depth + 1) for ns in names))
        for ns, addresses in zip(names, results, strict=True):
            cut.resolved[ns] = addresses

    async def _addresses(self, host: str, depth: int) -> tuple[str, ...]:
        """A and AAAA of an NS name without glue, through the same iteration (one server's answer);
        none when the run's NS budget refuses it (recorded, so the diagnosis says so)."""
        if not self.budget.admit(depth):
            b = self.budget
            if depth > b.depth:
                self.engine.recorder.reach("ns-depth", f"glueless NS names deeper than {b.depth} levels not resolved")
            else:
                self.engine.recorder.reach("ns-names", f"glueless NS names past {b.names} in the run not resolved")
            return ()
        found = await asyncio.gather(*(self._walk(host, t, depth) for t in ("A", "AAAA")))
        addresses: list[str] = []
        for step in found:
            if isinstance(step, iterate.Found) and step.answer is not None:
                addresses.extend(step.answer.records)
        return tuple(dict.fromkeys(addresses))

    def cancel(self) -> None:
        """Stop every fan-out still running (the run's deadline has come)."""
        for task in self._fan_outs.values():
            task.cancel()

    def zones(self) -> tuple[evidence.Zone, ...]:
        return self.table.zones()

    def describe(self) -> evidence.View:
        servers = tuple(self._server(ns, a) for ns, a in self.table.cuts["."].addresses())
        return evidence.View(self.name, self.kind, servers, _reachable(self.engine, self.name))
