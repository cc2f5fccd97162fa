"""Helpers shared by the DNS check families: which places show a failure, and how to say it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from mxdoctor.checks._context import Context
from mxdoctor.diagnosis import Seen
from mxdoctor.evidence import Lookup, Outcome
from mxdoctor.route import Question


def outcome_text(lk: Lookup) -> str:
    if lk.outcome in (Outcome.OTHER_RCODE,) and lk.rcode:
        return lk.rcode
    return lk.outcome.value


def records_key(lk: Lookup) -> tuple[str, tuple[str, ...]]:
    return (lk.outcome.value, tuple(sorted(r.lower() for r in lk.records)))


def view_reachable(ctx: Context, view: str) -> bool:
    v = ctx.evidence.view(view)
    return v is not None and v.reachable


def server_lookups(ctx: Context) -> dict[str, list[Lookup]]:
    by_server: dict[str, list[Lookup]] = defaultdict(list)
    if ctx.authoritative is None:
        return by_server
    for (view, _), lks in ctx.per_server.items():
        if view == ctx.authoritative:
            for lk in lks:
                if lk.server is not None:
                    by_server[lk.server.address].append(lk)
    return by_server


def lame_servers(ctx: Context) -> set[str]:
    """Authoritative servers that answered no question of the run but with REFUSED or a lame answer."""
    lame = set()
    for addr, lks in server_lookups(ctx).items():
        if lks and all(lk.outcome in (Outcome.LAME, Outcome.REFUSED) for lk in lks):
            lame.add(addr)
    return lame


def failing_places(ctx: Context, q: Question) -> Iterator[tuple[Lookup, Seen, str]]:
    """Every (lookup, place, dig command) where question ``q`` failed, with the rule of attribution:

    a recursive view's failure counts only when the authoritative servers fail too (or were not
    asked); otherwise it is the resolver's own fault and RESOLVER_FAILS says so.
    """
    auth = ctx.authoritative
    auth_summary = ctx.summary(auth, q) if auth else None
    if auth is not None:
        lame = lame_servers(ctx)  # one finding says it: LAME_DELEGATION
        for lk in ctx.servers(auth, q):
            if (
                lk.outcome.is_failure and lk.outcome is not Outcome.LAME and lk.server is not None
                and lk.server.address not in lame
            ):
                yield lk, Seen(auth, str(lk.server), outcome_text(lk)), ctx.dig(lk.server, q)
    for view in ctx.recursive_views():
        lk_v = ctx.summary(view, q)
        if lk_v is None or not lk_v.outcome.is_failure or not view_reachable(ctx, view):
            continue
        if auth_summary is not None and auth_summary.outcome.is_answer:
            continue
        server = ctx.evidence.view(view)
        first = server.servers[0] if server and server.servers else None
        dig = ctx.dig(first, q, rd=True) if first else f"dig {q.qname} {q.qtype}"
        yield lk_v, Seen(view, None, outcome_text(lk_v)), dig


def with_result(dig: str, lk: Lookup) -> str:
    return f"{dig}   # -> {outcome_text(lk)}"
