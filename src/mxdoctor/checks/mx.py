"""The MX RRset of the mail domain and what it points at (RFC 5321 §5.1, RFC 7505, RFC 2181 §10.3)."""

from __future__ import annotations

from collections.abc import Iterable

from mxdoctor.checks import _audit_dnssec, dnssec
from mxdoctor.checks._common import failing_places, outcome_text, with_result
from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import Role, check, finding
from mxdoctor.diagnosis import Finding, Seen, Severity
from mxdoctor.evidence import CNAME_CHAIN_LIMIT, Outcome, cname_loop
from mxdoctor.route import Question, RouteKind

MX_LOOKUP_FAILED = finding(
    "MX_LOOKUP_FAILED",
    Severity.CRITICAL,
    Role.DNS_FAULT,
    "MX lookup fails",
    "The MX query for {domain} fails with {rcode}.",
    "RFC 5321 §5.1: if a temporary error is returned, the message MUST be queued and retried later. "
    "No MTA delivers while the MX lookup fails.",
    sender="Nothing to change on the sending side if every view fails the same way; it is the "
    "receiver's DNS. If only your resolver fails, see RESOLVER_FAILS.",
    receiver="Make every authoritative server of {domain} answer the MX query (NOERROR with the MX "
    "records, or NOERROR/no data): dig @<each server> {domain} MX +norecurse",
    rfcs=("RFC 5321 §5.1",),
)
DOMAIN_NXDOMAIN = finding(
    "DOMAIN_NXDOMAIN",
    Severity.CRITICAL,
    Role.DOMAIN_PERMANENT,
    "The mail domain does not exist",
    "{domain} does not exist in the DNS (NXDOMAIN).",
    "RFC 5321 §5.1: a non-existent domain MUST be reported as an error: every MTA bounces the mail.",
    sender="Check the recipient address for a typo.",
    receiver="Register or delegate {domain}, or publish its records in its parent zone's servers.",
    rfcs=("RFC 5321 §5.1",),
)
NULL_MX = finding(
    "NULL_MX",
    Severity.CRITICAL,
    Role.DOMAIN_PERMANENT,
    "The domain publishes a null MX: it accepts no mail",
    "{domain} publishes 'MX 0 .': it declares that it accepts no mail.",
    "A null MX (RFC 7505) tells senders to bounce at once instead of retrying for days.",
    sender="Nothing to fix: mail to this domain is refused by its owner. Check the address.",
    receiver="If {domain} should receive mail, replace the null MX with real MX records.",
    rfcs=("RFC 7505 §3",),
)
NULL_MX_WITH_OTHER_MX = finding(
    "NULL_MX_WITH_OTHER_MX",
    Severity.ERROR,
    Role.CONFIGURATION,
    "A null MX beside other MX records",
    "{domain} publishes 'MX 0 .' together with other MX records: {records}.",
    "RFC 7505 §3: a domain that advertises a null MX MUST NOT advertise any other MX RR; senders "
    "disagree on what it means (some bounce, some use the other records).",
    sender="Nothing reliable; ask the receiver to fix it.",
    receiver="Remove either the null MX or the other MX records of {domain}.",
    rfcs=("RFC 7505 §3",),
)
IMPLICIT_MX = finding(
    "IMPLICIT_MX",
    Severity.NOTICE,
    Role.CONFIGURATION,
    "No MX records: mail goes to the domain's own address",
    "{domain} has no MX records; mail is delivered to its own address records (implicit MX).",
    "RFC 5321 §5.1: with no MX, the domain itself is treated as an MX with preference 0. It works, "
    "but it is fragile and often unintended.",
    sender="Nothing to change.",
    receiver="Publish an MX record for {domain} naming the host that receives its mail.",
    rfcs=("RFC 5321 §5.1",),
)
MX_TARGET_IS_CNAME = finding(
    "MX_TARGET_IS_CNAME",
    Severity.WARNING,
    Role.CONFIGURATION,
    "MX target is an alias (CNAME)",
    "The MX target {host} is a CNAME to {target}.",
    "RFC 2181 §10.3: the target of an MX MUST NOT be an alias; most MTAs follow it, some refuse it.",
    sender="Nothing to change; most MTAs follow the alias.",
    receiver="Point the MX of {domain} at {target} directly.",
    rfcs=("RFC 2181 §10.3", "RFC 5321 §5.1"),
)
MX_TARGET_IS_ADDRESS = finding(
    "MX_TARGET_IS_ADDRESS",
    Severity.ERROR,
    Role.ROUTE_PERMANENT,
    "MX target is an IP address",
    "The MX target of {domain} is written as an address: {host}.",
    "An MX names a host, not an address. Postfix, Sendmail and OpenSMTPD take the numeric name as the "
    "address and deliver; Exim refuses it unless allow_mx_to_ip is set, and Exchange looks the 'name' up "
    "as a host name, finds nothing and bounces: whether mail arrives depends on the sender's MTA.",
    sender="Nothing reliable on the sending side.",
    receiver="Publish a host name with an A/AAAA record for {host} and point the MX at that name.",
    rfcs=("RFC 5321 §5.1", "RFC 1035 §3.3.9"),
)
MX_TARGET_NXDOMAIN = finding(
    "MX_TARGET_NXDOMAIN",
    Severity.ERROR,
    Role.ROUTE_PERMANENT,
    "MX target does not exist",
    "The MX target {host} does not exist (NXDOMAIN for A and AAAA).",
    "RFC 5321 §5.1: the MX target MUST resolve to at least one address record.",
    sender="Nothing to change on the sending side.",
    receiver="Publish an A and/or AAAA record for {host}, or point the MX of {domain} at a host "
    "that has one.",
    rfcs=("RFC 5321 §5.1",),
)
NO_ADDRESSES = finding(
    "NO_ADDRESSES",
    Severity.CRITICAL,
    Role.ROUTE_PERMANENT,
    "No mail exchanger has an address",
    "No exchanger of {domain} has an A or AAAA record.",
    "RFC 5321 §5.1: if MX records are present but none of them are usable, this MUST be reported as "
    "an error: MTAs bounce the mail.",
    sender="Nothing to change on the sending side.",
    receiver="Publish A/AAAA records for the MX hosts of {domain}.",
    rfcs=("RFC 5321 §5.1",),
)
CNAME_CHAIN_BROKEN = finding(
    "CNAME_CHAIN_BROKEN",
    Severity.CRITICAL,
    Role.DNS_FAULT,
    "A CNAME chain loops or never ends",
    "{qname} is an alias that never reaches data: {detail}.",
    "Resolvers give up on an alias chain that loops or runs past their limit (BIND 16 names, Unbound "
    "11 restarts) and answer SERVFAIL, a temporary failure: every MTA defers the mail and retries "
    "until it expires, it does not bounce.",
    sender="Nothing to change on the sending side.",
    receiver="Point {qname} at a name with the records (at most a few aliases, no loop): "
    "dig {qname} {qtype} +trace shows the chain.",
    rfcs=("RFC 1034 §3.6.2", "RFC 5321 §5.1"),
)
MAIL_ROUTE_OK = finding(
    "MAIL_ROUTE_OK",
    Severity.INFO,
    Role.POSITIVE,
    "The mail route resolves",
    "{domain} resolves to at least one exchanger with an address, and every lookup on the way answered.",
    "Every MX, A and AAAA question got a definite answer from every server asked.",
    rfcs=("RFC 5321 §5.1",),
)


def _truthful_views(ctx: Context, q: Question) -> list[str]:
    """Views whose answer to ``q`` agrees with the authoritative servers (all views when unprobed)."""
    truth = ctx.summary(ctx.authoritative, q) if ctx.authoritative else None
    views = []
    for name in ctx.routes:
        lk = ctx.summary(name, q)
        if lk is None:
            continue
        if truth is None or name == ctx.authoritative or lk.outcome is truth.outcome:
            views.append(name)
    return views


@check(MX_LOOKUP_FAILED)
def mx_lookup(ctx: Context) -> Iterable[Finding]:
    q = Question(ctx.domain, "MX")
    items = list(failing_places(ctx, q))
    truth = ctx.summary(ctx.authoritative, q) if ctx.authoritative else None
    if truth is not None and truth.outcome.is_answer:
        # Some servers fail but the zone answers: resolvers retry and senders get the MX (NS_DISAGREE
        # names the odd server); only views that really failed make the lookup fail.
        items = [i for i in items if i[1].server is None]
    if items:
        yield MX_LOOKUP_FAILED.emit(
            f"{ctx.domain} MX",
            seen=[s for _, s, _ in items],
            reproduce=[with_result(d, lk) for lk, _, d in items],
            exchanges=[i for lk, _, _ in items for i in lk.exchanges],
            domain=ctx.domain,
            rcode=outcome_text(items[0][0]),
        )


@check(DOMAIN_NXDOMAIN, NULL_MX, NULL_MX_WITH_OTHER_MX, IMPLICIT_MX)
def mx_records(ctx: Context) -> Iterable[Finding]:
    q = Question(ctx.domain, "MX")
    # An NXDOMAIN that does not validate is no answer to a validating resolver (DNSSEC_DENIAL_MISSING, or
    # the audit's DNSSEC_SERVER_DENIAL_BOGUS at every server).
    unproven = q in dnssec.bogus_questions(ctx) or (q.qname.lower(), "MX") in _audit_dnssec.bogus_questions(
        ctx.evidence)
    for view in _truthful_views(ctx, q):
        r = ctx.routes[view]
        seen = [Seen(view)]
        if r.kind is RouteKind.NXDOMAIN and not unproven:
            yield DOMAIN_NXDOMAIN.emit(ctx.domain, seen=seen, domain=ctx.domain)
        elif r.kind is RouteKind.NULL_MX:
            yield NULL_MX.emit(ctx.domain, seen=seen, domain=ctx.domain)
        elif r.kind is RouteKind.IMPLICIT or (
            r.kind is RouteKind.INCOMPLETE and r.mx is not None and r.mx.outcome is Outcome.NODATA
        ):
            yield IMPLICIT_MX.emit(ctx.domain, seen=seen, domain=ctx.domain)
        if r.null_mx_with_others and r.mx is not None:
            yield NULL_MX_WITH_OTHER_MX.emit(
                ctx.domain, seen=seen, domain=ctx.domain, records=", ".join(r.mx.records)
            )


@check(MX_TARGET_IS_CNAME, MX_TARGET_IS_ADDRESS, MX_TARGET_NXDOMAIN, NO_ADDRESSES)
def mx_targets(ctx: Context) -> Iterable[Finding]:
    for view, r in ctx.routes.items():
        if r.kind not in (RouteKind.MX, RouteKind.IMPLICIT):
            continue
        seen = [Seen(view)]
        for x in r.exchangers:
            if x.implicit:
                continue
            if x.cname_target and view in _truthful_views(ctx, Question(x.host, "A")):
                yield MX_TARGET_IS_CNAME.emit(
                    x.host, seen=seen, host=x.host, target=x.cname_target, domain=r.domain
                )
            if x.literal:
                yield MX_TARGET_IS_ADDRESS.emit(x.host, seen=seen, host=x.literal, domain=r.domain)
            elif (
                x.a is not None
                and x.aaaa is not None
                and x.a.outcome is Outcome.NXDOMAIN
                and x.aaaa.outcome is Outcome.NXDOMAIN
                and view in _truthful_views(ctx, Question(x.host, "A"))
            ):
                yield MX_TARGET_NXDOMAIN.emit(x.host, seen=seen, host=x.host, domain=r.domain)
        definite = all(
            lk is not None and lk.outcome.is_answer for x in r.exchangers for lk in (x.a, x.aaaa)
        )
        # an address written as the target is one for the MTAs that take it as such (MX_TARGET_IS_ADDRESS)
        if definite and r.exchangers and not any(x.addresses or x.literal for x in r.exchangers):
            truthful = all(
                view in _truthful_views(ctx, Question(x.host, t)) for x in r.exchangers for t in ("A", "AAAA")
            )
            if truthful:
                yield NO_ADDRESSES.emit(r.domain, seen=seen, domain=r.domain)


@check(CNAME_CHAIN_BROKEN)
def cname_chains(ctx: Context) -> Iterable[Finding]:
    # the authoritative view follows the chain itself; a resolver view only says SERVFAIL
    for (view, q), lk in sorted(ctx.summaries.items()):
        if view != ctx.authoritative or lk.outcome is not Outcome.SERVFAIL or not lk.cnames:
            continue
        loop = cname_loop(q.qname, lk.cnames)
        if loop:
            chain = "a loop, " + " -> ".join(n.rstrip(".") for n in loop)
        elif len(lk.cnames) > CNAME_CHAIN_LIMIT:
            chain = f"more than {CNAME_CHAIN_LIMIT} aliases in a row"
        else:
            continue
        yield CNAME_CHAIN_BROKEN.emit(
            q.qname, seen=[Seen(view)], qname=q.qname.rstrip("."), detail=chain, qtype=q.qtype
        )
