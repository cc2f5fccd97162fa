"""What every check reads: the Evidence, the route through each view, and lookup indexes.

Built once per analysis by ``Context.build``; pure data, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mxdoctor import route as route_mod
from mxdoctor.evidence import Evidence, Exchange, Lookup, Outcome, Server, ViewKind
from mxdoctor.route import Question, Route


@dataclass(frozen=True)
class Context:
    evidence: Evidence
    routes: dict[str, Route]  # view name -> route through it
    reference: str | None  # the view the sending MTA uses (first resolver view, else system)
    authoritative: str | None  # the authoritative view's name, when probed
    per_server: dict[tuple[str, Question], tuple[Lookup, ...]] = field(default_factory=dict)
    summaries: dict[tuple[str, Question], Lookup] = field(default_factory=dict)
    exchanges: dict[int, Exchange] = field(default_factory=dict)
    ipv6_unavailable: bool = False  # this host reached no IPv6 server at all: those lookups say nothing

    @classmethod
    def build(cls, ev: Evidence) -> Context:
        per: dict[tuple[str, Question], list[Lookup]] = defaultdict(list)
        summaries: dict[tuple[str, Question], Lookup] = {}
        v6 = [lk for lk in ev.lookups if lk.server is not None and ":" in lk.server.address]
        no_v6 = bool(v6) and all(lk.outcome is Outcome.NETWORK_ERROR for lk in v6)
        for lk in ev.lookups:
            if no_v6 and lk.server is not None and ":" in lk.server.address:
                continue
            if lk.unfinished:
                continue  # not waited for: it tells nothing of the server (DEADLINE_REACHED says so)
            q = Question(route_mod.fqdn(lk.qname), lk.qtype)
            if lk.server is None:
                summaries[(lk.view, q)] = lk
            else:
                per[(lk.view, q)].append(lk)
        routes = {v.name: route_mod.route_for_view(ev, v.name) for v in ev.views}
        reference = next((v.name for v in ev.views if v.kind is ViewKind.RESOLVER), None)
        if reference is None:
            reference = next((v.name for v in ev.views if v.kind is ViewKind.SYSTEM), None)
        # an authoritative view that reached no server tested nothing: the checks go without it
        auth = next((v.name for v in ev.views if v.kind is ViewKind.AUTHORITATIVE and v.reachable), None)
        return cls(
            evidence=ev,
            routes=routes,
            reference=reference,
            authoritative=auth,
            per_server={k: tuple(v) for k, v in per.items()},
            summaries=summaries,
            exchanges={x.id: x for x in ev.exchanges},
            ipv6_unavailable=no_v6,
        )

    @property
    def domain(self) -> str:
        return route_mod.fqdn(self.evidence.domain)

    def view_kind(self, name: str) -> ViewKind | None:
        v = self.evidence.view(name)
        return v.kind if v else None

    def recursive_views(self) -> list[str]:
        return [v.name for v in self.evidence.views if v.kind is not ViewKind.AUTHORITATIVE]

    def summary(self, view: str, q: Question) -> Lookup | None:
        return self.summaries.get((view, q))

    def servers(self, view: str, q: Question) -> tuple[Lookup, ...]:
        return self.per_server.get((view, q), ())

    def questions(self) -> list[Question]:
        """Every question asked in any view, in a stable order."""
        return sorted({q for (_, q) in self.summaries})

    def dig(self, server: Server, q: Question, *, rd: bool = False, extra: str = "") -> str:
        host = server.address
        port = f" -p {server.port}" if server.port != 53 else ""
        flags = " +norecurse" if not rd else ""
        return f"dig @{host}{port} {q.qname} {q.qtype}{flags}{(' ' + extra) if extra else ''}"

    def reference_route(self) -> Route | None:
        if self.reference is not None:
            return self.routes.get(self.reference)
        if self.authoritative is not None:
            return self.routes.get(self.authoritative)
        return None
