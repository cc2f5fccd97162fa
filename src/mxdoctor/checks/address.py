"""Address lookups of the mail exchangers: how each A and AAAA question was answered (RFC 4074).

An MX host with only an A record must get NOERROR with no data for AAAA; anything else is a fault
that some MTAs turn into deferred mail.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from mxdoctor.checks._common import failing_places, outcome_text, with_result
from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import FindingSpec, Role, check, finding
from mxdoctor.diagnosis import Finding, Seen, Severity
from mxdoctor.evidence import Lookup, Outcome
from mxdoctor.route import Question, fqdn

_RECEIVER_AAAA = (
    "Make every authoritative server of the zone of {qname} answer the AAAA query with NOERROR and an "
    "empty answer (NODATA, with the SOA in the authority section) when the name has no IPv6 address, "
    "as RFC 4074 §3 expects; or publish an AAAA record. Check it with: dig @<each server> {qname} AAAA "
    "+norecurse"
)
_SENDER_AAAA = (
    "Until the receiver fixes its DNS: Exchange 2010 — Set-SendConnector '<internet connector>' "
    "-UseExternalDNSServersEnabled $true, then Restart-Service MSExchangeTransport and Retry-Queue; "
    "Sendmail — O ResolverOptions=+WorkAroundBrokenAAAA; or route the domain through a smart host. "
    "Postfix, Exim, OpenSMTPD and Exchange 2013+ already fall back to the A record."
)

AAAA_SERVFAIL = finding(
    "AAAA_SERVFAIL",
    Severity.ERROR,
    Role.DNS_FAULT,
    "AAAA query answered SERVFAIL",
    "The AAAA query for {qname} is answered SERVFAIL instead of NOERROR/no data.",
    "A server failure is a temporary error: a resolver passes it on and does not cache it for long, "
    "and an MTA that asks AAAA before A (Exchange 2007/2010, Sendmail) treats it as 'try again later' "
    "and defers the whole domain, while nslookup of the A record and telnet to port 25 both work. "
    "RFC 4074 §4.3 describes exactly this failure.",
    sender=_SENDER_AAAA,
    receiver=_RECEIVER_AAAA,
    rfcs=("RFC 4074 §4.3", "RFC 2308 §2.2", "RFC 5321 §5.1"),
)
AAAA_NXDOMAIN = finding(
    "AAAA_NXDOMAIN",
    Severity.ERROR,
    Role.DNS_FAULT,
    "AAAA query answered NXDOMAIN for a name that exists",
    "The AAAA query for {qname} is answered NXDOMAIN although the name has other records.{detail}",
    "NXDOMAIN says the name does not exist at all; resolvers cache it for the whole name and below "
    "(RFC 8020), so a later A query can get the same negative answer, and Exchange treats the host as "
    "having no address.",
    sender="Nothing reliable on the sending side; send through a resolver that has not cached the NXDOMAIN, "
    "or a smart host, until the receiver fixes its DNS.",
    receiver=_RECEIVER_AAAA,
    rfcs=("RFC 4074 §4.2", "RFC 8020 §2"),
)
AAAA_TIMEOUT = finding(
    "AAAA_TIMEOUT",
    Severity.ERROR,
    Role.DNS_FAULT,
    "AAAA query gets no answer",
    "The AAAA query for {qname} gets no answer (the server ignores it).",
    "A server that drops AAAA queries makes every resolver wait and retry; the resolver finally "
    "answers SERVFAIL, and MTAs that ask AAAA first defer or time out the whole delivery.",
    sender=_SENDER_AAAA,
    receiver=_RECEIVER_AAAA + " Also check firewalls and load balancers that drop AAAA or large queries.",
    rfcs=("RFC 4074 §4.1",),
)
AAAA_UNEXPECTED_RCODE = finding(
    "AAAA_UNEXPECTED_RCODE",
    Severity.ERROR,
    Role.DNS_FAULT,
    "AAAA query answered with an error code",
    "The AAAA query for {qname} is answered {rcode} instead of NOERROR/no data.",
    "REFUSED, NOTIMP or FORMERR for a query type the server does not hold is an error answer; "
    "resolvers treat the server as broken for the name and many answer SERVFAIL to the MTA.",
    sender=_SENDER_AAAA,
    receiver=_RECEIVER_AAAA,
    rfcs=("RFC 4074 §4.3", "RFC 3597 §3"),
)
AAAA_BROKEN_RESPONSE = finding(
    "AAAA_BROKEN_RESPONSE",
    Severity.ERROR,
    Role.DNS_FAULT,
    "AAAA query gets a broken answer",
    "The AAAA query for {qname} gets a broken answer: {detail}.",
    "An AAAA record must carry 16 bytes of address, and the answer must be of the type asked; "
    "resolvers reject anything else as a format error and answer SERVFAIL.",
    sender=_SENDER_AAAA,
    receiver=_RECEIVER_AAAA,
    rfcs=("RFC 4074 §4.4", "RFC 3596 §2.2"),
)
A_LOOKUP_FAILED = finding(
    "A_LOOKUP_FAILED",
    Severity.ERROR,
    Role.DNS_FAULT,
    "A query of a mail exchanger fails",
    "The A query for {qname} fails with {rcode}.",
    "Without its A record the exchanger has no IPv4 address; if no other address is found the MTA "
    "defers the mail (a temporary failure) and retries.",
    sender="Nothing to change on the sending side if another exchanger works; otherwise wait for the "
    "receiver's fix or route through a smart host.",
    receiver="Make every authoritative server of the zone of {qname} answer its A query; check with "
    "dig @<each server> {qname} A +norecurse",
    rfcs=("RFC 5321 §5.1", "RFC 1035"),
)

_AAAA_CODES: dict[Outcome, FindingSpec] = {
    Outcome.SERVFAIL: AAAA_SERVFAIL,
    Outcome.TIMEOUT: AAAA_TIMEOUT,
    Outcome.NETWORK_ERROR: AAAA_TIMEOUT,
    Outcome.REFUSED: AAAA_UNEXPECTED_RCODE,
    Outcome.FORMERR: AAAA_UNEXPECTED_RCODE,
    Outcome.NOTIMP: AAAA_UNEXPECTED_RCODE,
    Outcome.OTHER_RCODE: AAAA_UNEXPECTED_RCODE,
    Outcome.BROKEN: AAAA_BROKEN_RESPONSE,
    Outcome.MALFORMED: AAAA_BROKEN_RESPONSE,
}


def exchanger_hosts(ctx: Context) -> list[str]:
    hosts: list[str] = []
    for r in ctx.routes.values():
        for x in r.exchangers:
            if x.host not in hosts:
                hosts.append(x.host)
    return hosts


def _chain(ctx: Context, q: Question) -> list[Question]:
    """The question and, when the host is an alias, the same question for each name of its CNAME chain:
    the servers that fail are those of the canonical name's zone (another provider, often)."""
    out = [q]
    summary = ctx.summary(ctx.authoritative, q) if ctx.authoritative else None
    for name in summary.cnames if summary is not None else ():
        out.append(Question(fqdn(name), q.qtype))
    return out


def _name_exists(ctx: Context, view: str, server: str | None, host: str) -> bool:
    q = Question(host, "A")
    if server is None:
        a = ctx.summary(view, q)
        return a is not None and a.outcome in (Outcome.NOERROR, Outcome.NODATA)
    return any(
        str(lk.server) == server and lk.outcome in (Outcome.NOERROR, Outcome.NODATA)
        for lk in ctx.servers(view, q)
    )


@check(AAAA_SERVFAIL, AAAA_NXDOMAIN, AAAA_TIMEOUT, AAAA_UNEXPECTED_RCODE, AAAA_BROKEN_RESPONSE)
def aaaa_answers(ctx: Context) -> Iterable[Finding]:
    for host in exchanger_hosts(ctx):
        q = Question(host, "AAAA")
        items = [i for n in _chain(ctx, q) for i in failing_places(ctx, n) if i[0].outcome in _AAAA_CODES]
        at_servers = [i for i in items if i[1].server is not None]
        through_views = [i for i in items if i[1].server is None]
        groups: dict[FindingSpec, list[tuple[Lookup, Seen, str]]] = defaultdict(list)
        for item in at_servers or through_views:
            groups[_AAAA_CODES[item[0].outcome]].append(item)
        if at_servers:
            # A resolver passes the authoritative fault on (as SERVFAIL): one fact, seen there too.
            main = max(groups, key=lambda s: len(groups[s]))
            groups[main].extend(through_views)
        for spec, group in groups.items():
            first = group[0][0]
            yield spec.emit(
                f"{host} AAAA",
                seen=[s for _, s, _ in group],
                reproduce=[with_result(d, lk) for lk, _, d in group],
                exchanges=[i for lk, _, _ in group for i in lk.exchanges],
                qname=host,
                rcode=outcome_text(first),
                detail=first.detail or outcome_text(first),
            )
        # NXDOMAIN for AAAA is a fault only where the name exists (the A query found it).
        nx = [
            (lk, seen, dig)
            for lk, seen, dig in _nxdomain_places(ctx, q)
            if _name_exists(ctx, seen.view, seen.server, host)
        ]
        if nx:
            non_aa = [lk for lk, _, _ in nx if lk.server is not None and not lk.authoritative]
            yield AAAA_NXDOMAIN.emit(
                f"{host} AAAA",
                seen=[s for _, s, _ in nx] + _rejecting_views(ctx, q, bool(non_aa)),
                reproduce=[with_result(d, lk) for lk, _, d in nx],
                exchanges=[i for lk, _, _ in nx for i in lk.exchanges],
                qname=host,
                detail=_NON_AA_NOTE.format(servers=", ".join(str(lk.server) for lk in non_aa)) if non_aa else "",
            )


_NON_AA_NOTE = (
    " The NXDOMAIN from {servers} lacks the AA bit (what load balancers and dnsdist synthesise): Knot "
    "Resolver turns such an answer into SERVFAIL; Unbound, BIND, PowerDNS Recursor and dnsmasq pass the "
    "NXDOMAIN on."
)


def _rejecting_views(ctx: Context, q: Question, non_aa: bool) -> list[Seen]:
    """Resolver views that answered SERVFAIL where the servers gave an NXDOMAIN without AA."""
    if not non_aa:
        return []
    out = []
    for view in ctx.recursive_views():
        lk = ctx.summary(view, q)
        if lk is not None and lk.outcome is Outcome.SERVFAIL:
            said = "SERVFAIL: this resolver rejects an NXDOMAIN without AA, as Knot Resolver does"
            out.append(Seen(view, None, said))
    return out


def _nxdomain_places(ctx: Context, q: Question) -> list[tuple[Lookup, Seen, str]]:
    out: list[tuple[Lookup, Seen, str]] = []
    if ctx.authoritative:
        for lk in ctx.servers(ctx.authoritative, q):
            if lk.outcome is Outcome.NXDOMAIN and lk.server is not None:
                said = "NXDOMAIN" if lk.authoritative else (lk.detail or "NXDOMAIN without the AA bit")
                out.append((lk, Seen(ctx.authoritative, str(lk.server), said), ctx.dig(lk.server, q)))
    for view in ctx.recursive_views():
        lk_v = ctx.summary(view, q)
        if lk_v is not None and lk_v.outcome is Outcome.NXDOMAIN:
            v = ctx.evidence.view(view)
            first = v.servers[0] if v and v.servers else None
            dig = ctx.dig(first, q, rd=True) if first else f"dig {q.qname} AAAA"
            out.append((lk_v, Seen(view, None, "NXDOMAIN"), dig))
    return out


@check(A_LOOKUP_FAILED)
def a_answers(ctx: Context) -> Iterable[Finding]:
    for host in exchanger_hosts(ctx):
        q = Question(host, "A")
        items = [i for n in _chain(ctx, q) for i in failing_places(ctx, n)]
        if items:
            first = items[0][0]
            yield A_LOOKUP_FAILED.emit(
                f"{host} A",
                seen=[s for _, s, _ in items],
                reproduce=[with_result(d, lk) for lk, _, d in items],
                exchanges=[i for lk, _, _ in items for i in lk.exchanges],
                qname=host,
                rcode=outcome_text(first),
            )
