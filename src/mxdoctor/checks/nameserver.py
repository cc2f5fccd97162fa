"""The authoritative servers themselves: lame delegations, disagreement, EDNS and TCP (RFC 6891, 7766)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from mxdoctor.checks._common import lame_servers, outcome_text, records_key, server_lookups
from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import Role, check, finding
from mxdoctor.diagnosis import Finding, Seen, Severity
from mxdoctor.evidence import Exchange, Lookup, Outcome, Transport
from mxdoctor.route import Question, fqdn

LAME_DELEGATION = finding(
    "LAME_DELEGATION",
    Severity.ERROR,
    Role.DNS_FAULT,
    "Lame delegation: a delegated server does not serve the zone",
    "{ns_name} ({ns_ip}) is delegated for the zone but answers {rcode} instead of authoritative answers.",
    "Resolvers that pick this server get no usable answer, retry elsewhere, and may answer SERVFAIL "
    "when every attempt lands on lame servers; answers look random from one query to the next.",
    sender="Nothing to change on the sending side.",
    receiver="Configure {ns_name} to serve the zone authoritatively (AA bit set), or remove it from the "
    "zone's NS records at the parent and in the zone.",
    rfcs=("RFC 1034 §4.2.2", "RFC 4074 §4.5"),
)
NS_DISAGREE = finding(
    "NS_DISAGREE",
    Severity.WARNING,
    Role.INCONSISTENT,
    "Authoritative servers disagree",
    "The authoritative servers give different answers to {qname} {qtype}: {detail}.",
    "Every server of a zone must give the same answer. Which one a resolver asks is chance, so some "
    "deliveries fail and others succeed, and retries hide the fault.",
    sender="Nothing to change on the sending side; retries may get through.",
    receiver="Bring every server of the zone to the same data and behaviour; fix or remove the odd one out.",
    rfcs=("RFC 1034 §4.3.5", "RFC 4074"),
)
EDNS_INTOLERANT = finding(
    "EDNS_INTOLERANT",
    Severity.WARNING,
    Role.DNS_FAULT,
    "Server does not handle EDNS",
    "{ns_name} ({ns_ip}) answers {rcode} to queries with EDNS and answers only without it.",
    "RFC 6891 §7: a server without EDNS answers FORMERR without an OPT record, and resolvers (BIND, "
    "Unbound, Knot Resolver, PowerDNS Recursor) then retry without EDNS, so lookups still work, but "
    "without EDNS: no large UDP answers, no DNSSEC.",
    sender="Nothing to change on the sending side.",
    receiver="Upgrade the server or the firewall in front of it so that queries with an OPT record get "
    "normal answers: dig @{ns_ip} <zone> SOA +edns=0",
    rfcs=("RFC 6891 §6.2.2", "RFC 6891 §7"),
)
EDNS_DROPPED = finding(
    "EDNS_DROPPED",
    Severity.CRITICAL,
    Role.DNS_FAULT,
    "Server drops queries with EDNS",
    "{ns_name} ({ns_ip}) never answers queries that carry EDNS but answers the same query without it "
    "({qname} {qtype}: {detail}). Every current resolver (BIND, Unbound, Knot Resolver, PowerDNS "
    "Recursor; dnsmasq and stubs through them) sends EDNS and does not retry without it after a time-out, "
    "so to every one of them this server is dead.",
    "Since DNS Flag Day 2019 resolvers treat silence as loss, not as a sign to drop EDNS (RFC 6891 §7 "
    "asks a server without EDNS to answer FORMERR). A firewall or load balancer that drops DNS packets "
    "with an OPT record, or an old server, makes every lookup in the zone fail or time out.",
    sender="Nothing reliable on the sending side: no current resolver works around it. Until the receiver "
    "fixes it, a resolver can be told to query this server without EDNS (BIND: server {ns_ip} "
    "{{ edns no; }};).",
    receiver="Let DNS queries with an OPT record (EDNS, RFC 6891) through the firewall or load balancer in "
    "front of {ns_ip}, or upgrade the server: dig @{ns_ip} {qname} {qtype} +norecurse must answer as "
    "dig @{ns_ip} {qname} {qtype} +norecurse +noedns does.",
    rfcs=("RFC 6891 §7", "RFC 6891 §6.2.2"),
)
TCP_FAILS = finding(
    "TCP_FAILS",
    Severity.ERROR,
    Role.DNS_FAULT,
    "DNS over TCP fails",
    "{ns_name} ({ns_ip}) truncates an answer over UDP but refuses or drops TCP ({rcode}).",
    "RFC 7766 §5: authoritative servers MUST support TCP; an answer too large for UDP can then never "
    "be read, and resolvers answer SERVFAIL.",
    sender="Nothing reliable on the sending side.",
    receiver="Allow TCP port 53 to {ns_ip} and make the server answer over TCP: dig @{ns_ip} +tcp <name>",
    rfcs=("RFC 7766 §5", "RFC 1035 §4.2.2"),
)


IPV6_TRANSPORT_UNAVAILABLE = finding(
    "IPV6_TRANSPORT_UNAVAILABLE",
    Severity.NOTICE,
    Role.UNTESTED,
    "This host has no IPv6 path to the name servers",
    "No IPv6 address of any name server could be reached from this host ({count} lookups); those servers "
    "were judged over IPv4 only.",
    "A host without IPv6 connectivity cannot tell a broken IPv6 name server from its own missing route, so "
    "mxdoctor leaves those lookups out rather than blame the servers. An MTA on this host does the same.",
    sender="Nothing to change unless the MTA should use IPv6; then give this host an IPv6 route.",
    receiver="Nothing: run the audit from a host with IPv6 to test the servers' IPv6 addresses.",
    rfcs=("RFC 3901",),
)


@check(IPV6_TRANSPORT_UNAVAILABLE)
def ipv6_transport(ctx: Context) -> Iterable[Finding]:
    if ctx.ipv6_unavailable:
        v6 = [lk for lk in ctx.evidence.lookups if lk.server is not None and ":" in lk.server.address]
        yield IPV6_TRANSPORT_UNAVAILABLE.emit("IPv6", seen=[Seen(v6[0].view)], count=str(len(v6)))


@check(LAME_DELEGATION)
def lame(ctx: Context) -> Iterable[Finding]:
    by_server = server_lookups(ctx)
    for addr in sorted(lame_servers(ctx)):
        lk = by_server[addr][0]
        assert lk.server is not None and ctx.authoritative is not None
        yield LAME_DELEGATION.emit(
            f"{lk.server.name or addr} {addr}",
            seen=[Seen(ctx.authoritative, str(lk.server), outcome_text(lk))],
            reproduce=[ctx.dig(lk.server, _q(lk))],
            exchanges=[i for x in by_server[addr] for i in x.exchanges],
            ns_name=lk.server.name or addr,
            ns_ip=addr,
            rcode=lk.detail or outcome_text(lk),
        )


def _q(lk: Lookup) -> Question:
    return Question(fqdn(lk.qname), lk.qtype)


@check(NS_DISAGREE)
def disagreement(ctx: Context) -> Iterable[Finding]:
    if ctx.authoritative is None:
        return
    lame = lame_servers(ctx)
    for (view, q), lks in sorted(ctx.per_server.items(), key=lambda kv: (kv[0][1].qname, kv[0][1].qtype)):
        if view != ctx.authoritative:
            continue
        live = [lk for lk in lks if lk.server is not None and lk.server.address not in lame]
        kinds: dict[tuple[str, tuple[str, ...]], list[Lookup]] = defaultdict(list)
        for lk in live:
            kinds[records_key(lk)].append(lk)
        if len(kinds) < 2:
            continue
        parts = [
            f"{'/'.join(str(lk.server.name or lk.server.address) for lk in group if lk.server)}: "
            f"{key[0]}{(' ' + ' '.join(key[1])) if key[1] else ''}"
            for key, group in kinds.items()
        ]
        yield NS_DISAGREE.emit(
            f"{q.qname} {q.qtype}",
            seen=[Seen(view, str(lk.server), outcome_text(lk)) for lk in live],
            reproduce=[f"{ctx.dig(lk.server, q)}   # -> {outcome_text(lk)}" for lk in live if lk.server],
            qname=q.qname,
            qtype=q.qtype,
            detail="; ".join(parts),
        )


@check(EDNS_DROPPED)
def edns_dropped(ctx: Context) -> Iterable[Finding]:
    """A query that timed out with EDNS while the diagnostic query without EDNS was answered."""
    dropped: dict[str, list[Exchange]] = defaultdict(list)
    for x in ctx.evidence.exchanges:
        # "DiagnosticWithoutEdns": the engine's plain query beside the retry of a timed-out EDNS query
        if x.probe is None and x.workaround == "DiagnosticWithoutEdns" and x.outcome.is_answer:
            dropped[x.server.address].append(x)
    for addr, xs in sorted(dropped.items()):
        first = xs[0]
        q = Question(fqdn(first.qname), first.qtype)
        asked = {(x.qname, x.qtype) for x in xs}
        yield EDNS_DROPPED.emit(
            f"{first.server.name or addr} {addr}",
            seen=[Seen(x.view, str(x.server), f"{x.qname} {x.qtype}: no reply with EDNS, "
                       f"{x.outcome.value} without") for x in xs],
            reproduce=[f"{ctx.dig(first.server, q)}   # -> no reply",
                       f"{ctx.dig(first.server, q, extra='+noedns')}   # -> {first.outcome.value}"],
            exchanges=[
                y.id for y in ctx.evidence.exchanges
                if y.probe is None and y.server.address == addr and (y.qname, y.qtype) in asked
            ],
            ns_name=first.server.name or addr,
            ns_ip=addr,
            qname=q.qname,
            qtype=q.qtype,
            detail=f"{first.outcome.value} without EDNS",
        )


@check(EDNS_INTOLERANT, TCP_FAILS)
def transport(ctx: Context) -> Iterable[Finding]:
    edns_bad: dict[str, list[int]] = defaultdict(list)
    tcp_bad: dict[str, list[int]] = defaultdict(list)
    names: dict[str, object] = {}
    reasons: dict[str, str] = {}
    # a server whose audit `edns` probe (EDNS without DO) is answered rejects only the DO bit the
    # route's queries carried: the audit says so (DNSSEC_SERVER_DO_MISHANDLED), not EDNS_INTOLERANT
    edns_fine = {x.server.address for x in ctx.evidence.exchanges
                 if x.probe == "edns" and x.outcome is Outcome.NOERROR and x.reply_edns == 0}
    for x in ctx.evidence.exchanges:
        if x.probe is not None:
            continue  # audit probes have their own findings
        names[x.server.address] = x.server
        if x.workaround and x.workaround.startswith("RetryWithoutEdns") and x.outcome.is_answer \
                and x.server.address not in edns_fine:
            edns_bad[x.server.address].append(x.id)
            reasons[x.server.address] = x.workaround.removeprefix("RetryWithoutEdnsOn").upper()
        if x.transport is Transport.TCP and x.workaround == "TcpOnTruncation" and x.outcome.is_failure:
            tcp_bad[x.server.address].append(x.id)
            reasons["tcp " + x.server.address] = x.outcome.value
    for addr, ids in sorted(edns_bad.items()):
        srv = ctx.exchanges[ids[0]].server
        yield EDNS_INTOLERANT.emit(
            f"{srv.name or addr} {addr}",
            seen=[Seen(ctx.exchanges[ids[0]].view, str(srv))],
            exchanges=ids,
            ns_name=srv.name or addr,
            ns_ip=addr,
            rcode=reasons[addr],
        )
    for addr, ids in sorted(tcp_bad.items()):
        srv = ctx.exchanges[ids[0]].server
        yield TCP_FAILS.emit(
            f"{srv.name or addr} {addr}",
            seen=[Seen(ctx.exchanges[ids[0]].view, str(srv))],
            exchanges=ids,
            ns_name=srv.name or addr,
            ns_ip=addr,
            rcode=reasons["tcp " + addr],
        )
