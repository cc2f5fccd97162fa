"""Recursive views against the authoritative truth: a resolver that fails, or answers otherwise."""

from __future__ import annotations

from collections.abc import Iterable

from mxdoctor.checks import dnssec
from mxdoctor.checks._common import outcome_text, records_key
from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import Role, check, finding
from mxdoctor.diagnosis import Finding, Seen, Severity
from mxdoctor.evidence import Outcome, ViewKind

RESOLVER_UNREACHABLE = finding(
    "RESOLVER_UNREACHABLE",
    Severity.ERROR,
    Role.UNTESTED,
    "Resolver does not answer",
    "The resolver of view {view} ({servers}) answered no question at all.",
    "An MTA that uses this resolver can resolve nothing: every domain defers. mxdoctor cannot say what "
    "that MTA would do (verdict unknown) until the resolver answers.",
    sender="Check that the resolver runs and is reachable from this host (firewall, address, port): "
    "dig @<resolver> . SOA",
    receiver="Nothing to change on the receiving side.",
    rfcs=("RFC 1035 §7",),
)
AUTHORITATIVE_UNREACHABLE = finding(
    "AUTHORITATIVE_UNREACHABLE",
    Severity.NOTICE,
    Role.UNTESTED,
    "The authoritative servers could not be tested from this host",
    "No root server answered from this host ({servers}), so the authoritative servers of {domain} could "
    "not be asked; the diagnosis rests on the resolver views.",
    "A host whose firewall lets only its own resolver out (the usual Exchange server) cannot reach the "
    "root or any authoritative server. That is not a fault of the receiver, and not of the mail: it only "
    "means the receiver's side was not tested from here.",
    sender="To test the receiver's servers, run mxdoctor diagnose {domain} (or mxdoctor audit {domain}) "
    "from a host with outbound DNS (UDP and TCP port 53); here, --no-authoritative skips this view at once.",
    receiver="Nothing: the receiving side could not be tested from this host.",
    rfcs=("RFC 1034 §5.3.3",),
)
RESOLVER_FAILS = finding(
    "RESOLVER_FAILS",
    Severity.ERROR,
    Role.RESOLVER_FAULT,
    "Resolver fails where the authoritative servers answer",
    "Resolver {view} fails {count} question(s) that the authoritative servers answer: {detail}.",
    "The fault is on the sending side: the authoritative servers answer correctly, but the resolver "
    "the MTA uses (or its forwarder) returns errors. Other senders deliver; yours defers.",
    sender="Fix the resolver {view}: check its forwarders (a dead forwarder makes it fail everything), "
    "flush its cache, or point the MTA at a working resolver (Exchange: Set-TransportServer / "
    "Set-TransportService -ExternalDNSAdapterEnabled $false -ExternalDNSServers <ip>, and "
    "Set-SendConnector -UseExternalDNSServersEnabled $true; Postfix/Exim/Sendmail/OpenSMTPD: "
    "/etc/resolv.conf).",
    receiver="Nothing to change on the receiving side.",
    rfcs=("RFC 1035 §7", "RFC 2308 §7.1"),
)
RESOLVER_DISAGREES = finding(
    "RESOLVER_DISAGREES",
    Severity.WARNING,
    Role.RESOLVER_FAULT,
    "Resolver answers differently from the authoritative servers",
    "Resolver {view} answers {qname} {qtype} with {records}, the authoritative servers with {expected}.",
    "The resolver serves an answer the zone no longer (or never) had: a stale cache, a local override, "
    "or a forwarder with another view. The MTA follows the resolver, not the truth.",
    sender="Flush the resolver's cache for the name (Unbound: unbound-control flush {qname}; BIND: "
    "rndc flushname {qname}; Windows DNS: Clear-DnsServerCache; Exchange: Restart-Service "
    "MSExchangeTransport to drop its own cache), and remove local overrides.",
    receiver="Nothing to change on the receiving side (lower TTLs before changing records).",
    rfcs=("RFC 1034 §4.3.4", "RFC 2308 §5"),
)


def _describe(lk_records: tuple[str, ...], outcome: str) -> str:
    return f"{outcome} {' '.join(lk_records)}".strip()


@check(AUTHORITATIVE_UNREACHABLE)
def authoritative_unreachable(ctx: Context) -> Iterable[Finding]:
    for v in ctx.evidence.views:
        if v.kind is ViewKind.AUTHORITATIVE and not v.reachable:
            servers = ", ".join(s.address for s in v.servers[:3]) + (" ..." if len(v.servers) > 3 else "")
            yield AUTHORITATIVE_UNREACHABLE.emit(
                v.name, seen=[Seen(v.name)], servers=servers or "no root hints", domain=ctx.domain
            )


@check(RESOLVER_UNREACHABLE, RESOLVER_FAILS, RESOLVER_DISAGREES)
def resolver_vs_truth(ctx: Context) -> Iterable[Finding]:
    for v in ctx.evidence.views:
        if v.kind is ViewKind.AUTHORITATIVE:
            continue
        servers = ", ".join(str(s) for s in v.servers) or "system"
        if not v.reachable:
            yield RESOLVER_UNREACHABLE.emit(v.name, seen=[Seen(v.name)], view=v.name, servers=servers)
            continue
        if ctx.authoritative is None:
            continue
        failed = []
        # A validating resolver's SERVFAIL for data that does not validate is no fault of the resolver.
        bogus = dnssec.bogus_questions(ctx)
        for q in ctx.questions():
            if q in bogus:
                continue
            mine = ctx.summary(v.name, q)
            truth = ctx.summary(ctx.authoritative, q)
            if mine is None or truth is None or not truth.outcome.is_answer:
                continue
            if truth.outcome is Outcome.NXDOMAIN and not truth.authoritative and mine.outcome is Outcome.SERVFAIL:
                continue  # a resolver may reject an NXDOMAIN without AA (Knot Resolver); AAAA_NXDOMAIN says so
            if mine.outcome.is_failure:
                failed.append((q, mine))
            elif records_key(mine) != records_key(truth):
                yield RESOLVER_DISAGREES.emit(
                    f"{q.qname} {q.qtype}",
                    seen=[Seen(v.name, None, outcome_text(mine))],
                    exchanges=mine.exchanges,
                    view=v.name,
                    qname=q.qname,
                    qtype=q.qtype,
                    records=_describe(mine.records, mine.outcome.value),
                    expected=_describe(truth.records, truth.outcome.value),
                )
        if failed:
            detail = ", ".join(f"{q.qname} {q.qtype} {outcome_text(lk)}" for q, lk in failed[:6])
            if len(failed) > 6:
                detail += f" and {len(failed) - 6} more"
            first = v.servers[0] if v.servers else None
            yield RESOLVER_FAILS.emit(
                v.name,
                seen=[Seen(v.name, str(first) if first else None)],
                reproduce=[
                    f"{ctx.dig(first, q, rd=True)}   # -> {outcome_text(lk)}" for q, lk in failed[:3] if first
                ],
                exchanges=[i for _, lk in failed for i in lk.exchanges],
                view=v.name,
                count=str(len(failed)),
                detail=detail,
            )
