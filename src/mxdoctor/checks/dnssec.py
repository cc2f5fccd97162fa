"""DNSSEC on the mail route: every answer of the route (MX, CNAMEs, A, AAAA) validated from the trust
anchor the probe recorded, down the DS and DNSKEY of each zone, with ``_dnssec``; which resolver
views validate (AD bit, validation SERVFAILs with their Extended DNS Errors)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import dns.dnssec
import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DS
import dns.rdtypes.ANY.RRSIG
import dns.rrset

from mxdoctor.checks import _dnssec
from mxdoctor.checks._context import Context
from mxdoctor.checks._dnssec import Failure, Problem, Status
from mxdoctor.checks._registry import Role, check, finding
from mxdoctor.diagnosis import Finding, Seen, Severity
from mxdoctor.dns import anchor as anchor_mod
from mxdoctor.evidence import DNSSEC_KEYS_VIEW as KEYS
from mxdoctor.evidence import Evidence, Exchange, Lookup, Outcome
from mxdoctor.route import Question

# RFC 8914 §4 INFO-CODEs that say a resolver validated and found the data bogus (or could not).
EDE_NAMES = {
    1: "Unsupported DNSKEY Algorithm", 2: "Unsupported DS Digest Type", 6: "DNSSEC Bogus",
    7: "Signature Expired", 8: "Signature Not Yet Valid", 9: "DNSKEY Missing", 10: "RRSIGs Missing",
    11: "No Zone Key Bit Set", 12: "NSEC Missing",
}
VALIDATION_EDE = frozenset({6, 7, 8, 9, 10, 11, 12})

_NTA = (
    "Until the zone is fixed, exempt {zone} on the validating resolvers your MTA uses with a negative "
    "trust anchor (RFC 7646), never by turning validation off: Unbound: unbound-control insecure_add "
    "{zone} (and domain-insecure: \"{zone}\" in unbound.conf to keep it over a restart); BIND: rndc nta "
    "-lifetime 1d {zone}; Knot Resolver: trust_anchors.set_insecure({{'{zone}'}}); PowerDNS Recursor: "
    "rec_control add-nta {zone} 'broken DNSSEC'. Windows DNS Server has no negative trust anchor: it "
    "validates only below "
    "the trust anchors it holds (Get-DnsServerTrustAnchor); if it holds the root's, send mail for the "
    "domain through a resolver that has one. Remove the exemption once the zone validates."
)
_RFC = ("RFC 4033", "RFC 4035 §5", "RFC 7646")

DNSSEC_SECURE = finding(
    "DNSSEC_SECURE", Severity.INFO, Role.POSITIVE, "Mail route validates (DNSSEC)",
    "Every answer of the mail route validates from the trust anchor, through the signed zones {records}.",
    "Validating resolvers answer the route with AD; DANE (RFC 7672) can build on it.",
    rfcs=("RFC 4035 §5",),
)
DNSSEC_INSECURE = finding(
    "DNSSEC_INSECURE", Severity.INFO, Role.POSITIVE, "Zone on the mail route is not signed (insecure)",
    "{zone} is insecure: {detail}.",
    "Validating resolvers answer its names without checking signatures (and without AD): nothing fails, "
    "nothing is protected. A DS naming only algorithms validators do not implement counts as unsigned "
    "(RFC 6840 §5.2).",
    receiver="To protect it, sign {zone} and publish its DS at the parent (with an algorithm validators "
    "implement: 8, 13 or 15).",
    rfcs=("RFC 4035 §5.2", "RFC 6840 §5.2", "RFC 8624"),
)
DNSSEC_RRSIG_EXPIRED = finding(
    "DNSSEC_RRSIG_EXPIRED", Severity.ERROR, Role.DNS_FAULT, "Signature expired (DNSSEC bogus)",
    "The RRSIG over {qname} {qtype} (zone {zone}, key {key_tag}) expired at {when}; served by {servers}. "
    "{detail}",
    "Every validating resolver (Unbound, BIND, Knot Resolver, PowerDNS Recursor, the public ones) treats "
    "the answer as bogus and answers SERVFAIL (EDE 7), so MTAs behind them defer; non-validating "
    "resolvers still pass the data on.",
    sender=_NTA,
    receiver="The {zone} DNS operator must re-sign the zone (and fix the signer's schedule, so signatures "
    "are refreshed well before they expire): e.g. dnssec-signzone, or rndc sign {zone} (BIND inline "
    "signing), or knotc zone-sign {zone} (Knot).",
    rfcs=_RFC,
)
DNSSEC_RRSIG_NOT_YET_VALID = finding(
    "DNSSEC_RRSIG_NOT_YET_VALID", Severity.ERROR, Role.DNS_FAULT, "Signature not yet valid (DNSSEC bogus)",
    "The RRSIG over {qname} {qtype} (zone {zone}, key {key_tag}) is valid only from {when}; served by "
    "{servers}. {detail}",
    "Validating resolvers answer SERVFAIL (EDE 8) until then: the signer's clock runs ahead, or the "
    "zone was signed with a future inception.",
    sender=_NTA,
    receiver="The {zone} DNS operator must fix the signer's clock and re-sign the zone.",
    rfcs=_RFC,
)
DNSSEC_RRSIG_INVALID = finding(
    "DNSSEC_RRSIG_INVALID", Severity.ERROR, Role.DNS_FAULT, "Signature does not verify (DNSSEC bogus)",
    "The RRSIG over {qname} {qtype} (zone {zone}, key {key_tag}) does not verify: {detail}; served by "
    "{servers}.",
    "The data was changed after signing, or signed with a key the zone does not publish: validating "
    "resolvers answer SERVFAIL (EDE 6).",
    sender=_NTA,
    receiver="The {zone} DNS operator must re-sign the zone with its published keys (and make every "
    "server serve the same signed version).",
    rfcs=_RFC,
)
DNSSEC_RRSIG_MISSING = finding(
    "DNSSEC_RRSIG_MISSING", Severity.ERROR, Role.DNS_FAULT, "Signature missing in a signed zone (DNSSEC bogus)",
    "{qname} {qtype} comes without an RRSIG although {zone} is signed; served by {servers}.",
    "Validating resolvers cannot tell the data from a forgery and answer SERVFAIL (EDE 10).",
    sender=_NTA,
    receiver="The {zone} DNS operator must re-sign the zone (the signer skipped this RRset), or make the "
    "server send RRSIGs when asked with DO.",
    rfcs=_RFC,
)
DNSSEC_DS_MISMATCH = finding(
    "DNSSEC_DS_MISMATCH", Severity.ERROR, Role.DNS_FAULT, "DS at the parent matches no DNSKEY (DNSSEC bogus)",
    "The DS for {zone} at its parent names key {key_tag}, which the zone does not publish: {detail}.",
    "A botched key roll: nothing in the zone validates, so validating resolvers answer SERVFAIL (EDE 9) "
    "for every name in it.",
    sender=_NTA,
    receiver="The owner of {zone} must publish the DS of the zone's current KSK at the registrar (or "
    "publish the old key again until the DS is replaced): dnssec-dsfromkey, or the registrar's DNSSEC page.",
    rfcs=(*_RFC, "RFC 7583"),
)
DNSSEC_DNSKEY_NOT_SELF_SIGNED = finding(
    "DNSSEC_DNSKEY_NOT_SELF_SIGNED", Severity.ERROR, Role.DNS_FAULT,
    "DNSKEY set not signed by the key the DS names (DNSSEC bogus)",
    "No valid RRSIG by key {key_tag}, which the DS names, covers the DNSKEY set of {zone}; served by {servers}.",
    "The chain of trust breaks at the zone's keys: validating resolvers answer SERVFAIL (EDE 10, RRSIGs "
    "Missing, as Unbound says it) for every name in the zone.",
    sender=_NTA,
    receiver="The {zone} DNS operator must sign the DNSKEY set with the KSK the DS names.",
    rfcs=_RFC,
)
DNSSEC_DNSKEY_UNAVAILABLE = finding(
    "DNSSEC_DNSKEY_UNAVAILABLE", Severity.ERROR, Role.DNS_FAULT, "Zone's DNSKEY set cannot be fetched",
    "The parent's DS says {zone} is signed, but no server gave its DNSKEY set: {detail}.",
    "Without the keys nothing in the zone validates: validating resolvers answer SERVFAIL (EDE 9). A DNSKEY "
    "answer too big for UDP needs TCP (RFC 7766).",
    sender=_NTA,
    receiver="The {zone} DNS operator must answer DNSKEY queries, over TCP too (RFC 7766), or publish fewer "
    "or smaller keys (ECDSA, algorithm 13).",
    rfcs=(*_RFC, "RFC 7766"),
)
DNSSEC_DENIAL_MISSING = finding(
    "DNSSEC_DENIAL_MISSING", Severity.ERROR, Role.DNS_FAULT, "Negative answer not proven (DNSSEC bogus)",
    "The {rcode} answer for {qname} {qtype} in the signed zone {zone} comes without a valid NSEC/NSEC3 proof: "
    "{detail}; served by {servers}.",
    "Validating resolvers cannot accept the denial and answer SERVFAIL (EDE 12 or 6) instead of NODATA or "
    "NXDOMAIN: an MTA that stops at a failed AAAA lookup (Exchange 2010, Sendmail) defers, and a missing "
    "domain defers for days instead of bouncing.",
    sender=_NTA,
    receiver="The {zone} DNS operator must re-sign the zone so its NSEC/NSEC3 chain is complete, and serve "
    "the proofs in negative answers to DO queries.",
    rfcs=(*_RFC, "RFC 5155 §7.2"),
)
DNSSEC_RECORD_UNREADABLE = finding(
    "DNSSEC_RECORD_UNREADABLE", Severity.WARNING, Role.UNTESTED, "DNSSEC record cannot be read",
    "A record of {qname} {qtype} in the evidence does not parse: {detail}.",
    "mxdoctor cannot validate what it cannot read; validating resolvers would reject it.",
    sender="If the evidence file was edited by hand, probe again; otherwise nothing to change on the sending side.",
    receiver="The operator of the zone of {qname} must serve well-formed DNSSEC records (RFC 4034).",
    rfcs=("RFC 4034",),
)
DNSSEC_RESOLVER_VALIDATES = finding(
    "DNSSEC_RESOLVER_VALIDATES", Severity.INFO, Role.POSITIVE, "Resolver validates DNSSEC",
    "Resolver {view} validates: {detail}.",
    "MTAs behind it get SERVFAIL for bogus data and defer mail to it.",
    rfcs=("RFC 6840 §5.8", "RFC 8914"),
)
DNSSEC_RESOLVER_NOT_VALIDATING = finding(
    "DNSSEC_RESOLVER_NOT_VALIDATING", Severity.NOTICE, Role.CONFIGURATION, "Resolver does not validate DNSSEC",
    "Resolver {view} does not validate: {detail}.",
    "MTAs behind it accept forged and broken signed data alike: they deliver where MTAs behind validating "
    "resolvers defer, and they cannot use DANE.",
    sender="Turn on validation in resolver {view} (Unbound: auto-trust-anchor-file; BIND: dnssec-validation "
    "auto; Windows DNS Server: Add-DnsServerTrustAnchor -Root), or use a validating resolver.",
    rfcs=("RFC 4035 §4.3", "RFC 6840 §5.8"),
)

_SPECS = {
    Problem.RRSIG_EXPIRED: DNSSEC_RRSIG_EXPIRED,
    Problem.RRSIG_NOT_YET_VALID: DNSSEC_RRSIG_NOT_YET_VALID,
    Problem.RRSIG_INVALID: DNSSEC_RRSIG_INVALID,
    Problem.RRSIG_NO_KEY: DNSSEC_RRSIG_INVALID,
    Problem.RRSIG_MISSING: DNSSEC_RRSIG_MISSING,
    Problem.DS_NO_MATCHING_DNSKEY: DNSSEC_DS_MISMATCH,
    Problem.DNSKEY_NOT_SELF_SIGNED: DNSSEC_DNSKEY_NOT_SELF_SIGNED,
    Problem.DNSKEY_UNAVAILABLE: DNSSEC_DNSKEY_UNAVAILABLE,
    Problem.DENIAL_MISSING: DNSSEC_DENIAL_MISSING,
    Problem.DENIAL_WRONG: DNSSEC_DENIAL_MISSING,
}
BOGUS_SPECS = tuple(dict.fromkeys(_SPECS.values()))


# ---------------------------------------------------------------------------------------------
# Reading the recorded replies


class Unreadable(Exception):
    pass


@dataclass(frozen=True)
class Reply:
    answer: tuple[dns.rrset.RRset, ...]
    authority: tuple[dns.rrset.RRset, ...]

    def sigs(self, name: dns.name.Name, rdtype: int, section: str = "answer") -> list[dns.rdtypes.ANY.RRSIG.RRSIG]:
        return [sig for r in getattr(self, section) if r.rdtype == dns.rdatatype.RRSIG and r.name == name
                for sig in r if sig.type_covered == rdtype]

    def rrset(self, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
        return next((r for r in self.answer if r.name == name and r.rdtype == rdtype), None)


def _rrsets(lines: Sequence[str]) -> tuple[dns.rrset.RRset, ...]:
    out: dict[tuple[dns.name.Name, int, int], dns.rrset.RRset] = {}
    for line in lines:
        try:
            owner, ttl, _cls, rdtype_text, rest = line.split(None, 4)
            name = dns.name.from_text(owner)
            rdtype = dns.rdatatype.from_text(rdtype_text)
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, rest)
        except (ValueError, dns.exception.DNSException) as exc:
            raise Unreadable(f"{line[:120]!r}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
        covers = rdata.covers()
        key = (name, int(rdtype), int(covers))
        rrset = out.get(key)
        if rrset is None:
            rrset = out[key] = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype, covers)
        rrset.add(rdata, int(ttl) if ttl.isdigit() else 0)
    return tuple(out.values())


def read_reply(x: Exchange) -> Reply:
    return Reply(_rrsets(x.answer), _rrsets(x.authority))


def _final(ctx: Context, lk: Lookup) -> Exchange | None:
    """The exchange whose reply decided the lookup: the last one that got a parsed reply."""
    replied = [ctx.exchanges[i] for i in lk.exchanges if i in ctx.exchanges and ctx.exchanges[i].rcode is not None]
    return replied[-1] if replied else None


def when_text(epoch: float, now: float) -> str:
    at = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    days = (now - epoch) / 86400
    if abs(days) < 1:
        hours = abs(now - epoch) / 3600
        rel = f"{hours:.0f} hours"
    else:
        rel = f"{abs(days):.0f} days"
    return f"{at}, {rel} ago" if epoch <= now else f"{at}, in {rel}"


def probe_time(ctx: Context) -> float | None:
    return evidence_time(ctx.evidence)


def evidence_time(ev: Evidence) -> float | None:
    """When the probe ran (the evidence's ``created``): the time signatures are judged at."""
    created = ev.created
    if not created:
        return None
    try:
        return datetime.datetime.fromisoformat(created).timestamp()
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# The chain of trust and the route's answers, pure


@dataclass
class _Zone:
    status: Status
    keys: dns.rrset.RRset | None = None
    detail: str = ""


@dataclass
class Validation:
    """What validating the route found: each zone's status, and each failure with where it shows."""

    zones: dict[str, _Zone] = field(default_factory=dict)
    failures: dict[Failure, list[Seen]] = field(default_factory=dict)
    exchanges: dict[Failure, set[int]] = field(default_factory=dict)
    unreadable: list[tuple[Question, str]] = field(default_factory=list)
    secure_answers: set[Question] = field(default_factory=set)
    bogus_questions: set[Question] = field(default_factory=set)
    now: float = 0.0

    def fail(self, failure: Failure, seen: Seen, exchange: int | None = None) -> None:
        places = self.failures.setdefault(failure, [])
        if seen not in places:
            places.append(seen)
        if exchange is not None:
            self.exchanges.setdefault(failure, set()).add(exchange)


def _anchors(lines: Sequence[str]) -> list[dns.rdtypes.ANY.DS.DS]:
    out: list[dns.rdtypes.ANY.DS.DS] = []
    for line in lines:
        rd = anchor_mod.rdata_of(line)
        if isinstance(rd, dns.rdtypes.ANY.DS.DS):
            out.append(rd)
        else:
            out.append(dns.dnssec.make_ds(dns.name.root, rd, "SHA256"))
    return out


def validate(ctx: Context) -> Validation | None:
    """Validate the route seen through the authoritative view; None when there is nothing to validate
    from (no trust anchor recorded, no authoritative view, no probe time)."""
    ev = ctx.evidence
    auth = ctx.authoritative
    now = probe_time(ctx)
    if not ev.trust_anchor or auth is None or now is None:
        return None
    try:
        anchors = _anchors(ev.trust_anchor)
    except (ValueError, dns.exception.DNSException):
        return None
    result = Validation(now=now)
    for zone in sorted(ev.zones, key=lambda z: len(dns.name.from_text(z.name))):
        result.zones[zone.name] = _zone_status(ctx, auth, zone.name, zone.parent, anchors, result)
    for q in ctx.questions():
        if q.qtype in ("DNSKEY", "DS"):
            continue
        _answers(ctx, auth, q, result)
    for q in tlsa_questions(ctx):
        _answers(ctx, KEYS, q, result)
    return result


def tlsa_questions(ctx: Context) -> list[Question]:
    """The TLSA questions asked of the authoritative servers (lookups of the dnssec view)."""
    return sorted({q for (view, q) in ctx.per_server if view == KEYS and q.qtype == "TLSA"})


def _replies(ctx: Context, auth: str, q: Question, result: Validation) -> Iterator[tuple[Lookup, Exchange, Reply]]:
    """Each server's readable answer to ``q``."""
    for lk in ctx.servers(auth, q):
        x = _final(ctx, lk)
        if x is None or not lk.outcome.is_answer:
            continue
        try:
            yield lk, x, read_reply(x)
        except Unreadable as exc:
            if (q, str(exc)) not in result.unreadable:
                result.unreadable.append((q, str(exc)))


def _first_reply(
    ctx: Context, auth: str, q: Question, result: Validation, wanted: Callable[[Reply], bool] = lambda _: True
) -> tuple[Lookup, Exchange, Reply] | None:
    """The first server's readable answer to ``q`` (that ``wanted`` accepts, when one does)."""
    replies = list(_replies(ctx, auth, q, result))
    return next((r for r in replies if wanted(r[2])), replies[0] if replies else None)


def _zone_status(
    ctx: Context, auth: str, name: str, parent: str | None, anchors: list[dns.rdtypes.ANY.DS.DS], result: Validation
) -> _Zone:
    zone = dns.name.from_text(name)
    now = result.now
    if parent is None:
        ds: list[dns.rdtypes.ANY.DS.DS] = anchors
    else:
        above = result.zones.get(parent)
        if above is None or above.status is not Status.SECURE:
            status = Status.INSECURE if above is not None and above.status is Status.INSECURE else Status.INDETERMINATE
            return _Zone(status, detail=f"its parent {parent} is {above.status.value if above else 'unknown'}")
        got = _first_reply(ctx, KEYS, Question(name, "DS"), result)
        if got is None:
            return _Zone(Status.INDETERMINATE, detail="no server of the parent answered the DS query")
        lk, x, reply = got
        seen = Seen(auth, str(lk.server))
        parent_name = dns.name.from_text(parent)
        if lk.outcome is Outcome.NOERROR and reply.rrset(zone, dns.rdatatype.DS) is not None:
            ds_set = reply.rrset(zone, dns.rdatatype.DS)
            assert ds_set is not None
            failures = _dnssec.check_rrset(ds_set, reply.sigs(zone, dns.rdatatype.DS), above.keys, parent_name, now)
            for f in failures:
                result.fail(f, seen, x.id)
            if failures:
                return _Zone(Status.BOGUS, detail="its DS does not validate")
            ds = [d for d in ds_set if isinstance(d, dns.rdtypes.ANY.DS.DS)]
        else:
            failures = _dnssec.check_nodata(zone, dns.rdatatype.DS, reply.authority, above.keys, parent_name, now)
            optout = _dnssec.check_optout(zone, reply.authority, above.keys, parent_name, now) if failures else None
            if optout == []:
                return _Zone(Status.INSECURE, detail=f"{parent} proves with NSEC3 opt-out that it has no DS for it")
            for f in failures:
                result.fail(f, seen, x.id)
            if failures:
                return _Zone(Status.BOGUS, detail="the denial of its DS does not validate")
            return _Zone(Status.INSECURE, detail=f"{parent} proves there is no DS for it")
    usable = [d for d in ds
              if d.algorithm in _dnssec.SUPPORTED_ALGORITHMS and d.digest_type in _dnssec.SUPPORTED_DIGESTS]
    if not usable:
        algorithms = ", ".join(sorted({str(d.algorithm) for d in ds}))
        return _Zone(Status.INSECURE, detail=f"its DS names only algorithm {algorithms}, which validators do not "
                                             "implement")
    got = _first_reply(ctx, KEYS, Question(name, "DNSKEY"), result,
                       lambda reply: reply.rrset(zone, dns.rdatatype.DNSKEY) is not None)
    if got is None or got[0].outcome is not Outcome.NOERROR or got[2].rrset(zone, dns.rdatatype.DNSKEY) is None:
        outcomes = sorted({f"{lk.server}: {lk.outcome.value}" + (f" ({lk.detail})" if lk.detail else "")
                           for lk in ctx.servers(KEYS, Question(name, "DNSKEY"))})
        failure = Failure(Problem.DNSKEY_UNAVAILABLE, name, name, "DNSKEY", usable[0].key_tag,
                          detail="; ".join(outcomes) or "no DNSKEY query was answered")
        for lk in ctx.servers(KEYS, Question(name, "DNSKEY")):
            result.fail(failure, Seen(auth, str(lk.server), lk.outcome.value))
        if not ctx.servers(KEYS, Question(name, "DNSKEY")):
            return _Zone(Status.INDETERMINATE, detail="its DNSKEY set was not asked")
        return _Zone(Status.BOGUS, detail="its DNSKEY set cannot be had")
    # Every server's DNSKEY set, so a finding names each server that serves a bad one; the zone's keys are
    # the first set that validates (a validator that meets a bogus set tries the zone's other servers).
    secure: dns.rrset.RRset | None = None
    status = Status.BOGUS
    for lk, x, reply in _replies(ctx, KEYS, Question(name, "DNSKEY"), result):
        dnskeys = reply.rrset(zone, dns.rdatatype.DNSKEY)
        if lk.outcome is not Outcome.NOERROR or dnskeys is None:
            continue
        status, failures = _dnssec.check_dnskeys(dnskeys, reply.sigs(zone, dns.rdatatype.DNSKEY), usable, zone, now)
        for f in failures:
            result.fail(f, Seen(auth, str(lk.server)), x.id)
        if status is Status.SECURE and secure is None:
            secure = dnskeys
        if status is Status.INSECURE:
            return _Zone(status)
    if secure is not None:
        return _Zone(Status.SECURE, secure)
    return _Zone(status, detail="its DNSKEY set does not validate")


def _zone_of(result: Validation, qname: str) -> str | None:
    name = dns.name.from_text(qname)
    best: str | None = None
    for zone in result.zones:
        z = dns.name.from_text(zone)
        if name.is_subdomain(z) and (best is None or len(z) > len(dns.name.from_text(best))):
            best = zone
    return best


def _answers(ctx: Context, auth: str, q: Question, result: Validation) -> None:
    zone_name = _zone_of(result, q.qname)
    if zone_name is None:
        return
    state = result.zones[zone_name]
    if state.status is Status.BOGUS:
        result.bogus_questions.add(q)
    if state.status is not Status.SECURE:
        return
    zone = dns.name.from_text(zone_name)
    now = result.now
    secure = True
    answered = False
    for lk in ctx.servers(auth, q):
        x = _final(ctx, lk)
        if x is None or not lk.outcome.is_answer or lk.outcome is Outcome.LAME:
            continue
        seen = Seen(auth, str(lk.server))
        answered = True
        try:
            reply = read_reply(x)
        except Unreadable as exc:
            result.unreadable.append((q, str(exc)))
            secure = False
            continue
        failures: list[Failure] = []
        last = dns.name.from_text(q.qname)
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.RRSIG or not rrset.name.is_subdomain(zone):
                continue
            failures += _dnssec.check_rrset(rrset, reply.sigs(rrset.name, rrset.rdtype), state.keys, zone, now)
            if rrset.rdtype == dns.rdatatype.CNAME:
                last = rrset[0].target
        if lk.outcome in (Outcome.NODATA, Outcome.NXDOMAIN) and last.is_subdomain(zone):
            for soa in (r for r in reply.authority if r.rdtype == dns.rdatatype.SOA):
                failures += _dnssec.check_rrset(soa, reply.sigs(soa.name, soa.rdtype, "authority"), state.keys,
                                                zone, now)
            if lk.outcome is Outcome.NODATA:
                failures += _dnssec.check_nodata(last, dns.rdatatype.from_text(q.qtype), reply.authority,
                                                 state.keys, zone, now)
            else:
                failures += _dnssec.check_nxdomain(last, reply.authority, state.keys, zone, now)
            failures = [_negative(f, lk, q) for f in failures]
        for f in failures:
            result.fail(f, seen, x.id)
        if failures:
            secure = False
            result.bogus_questions.add(q)
    if secure and answered:
        result.secure_answers.add(q)


def _negative(f: Failure, lk: Lookup, q: Question) -> Failure:
    """Denial failures are named by the question they should have answered."""
    if f.problem in (Problem.DENIAL_MISSING, Problem.DENIAL_WRONG):
        return Failure(f.problem, f.zone, q.qname, q.qtype, f.key_tag, f.when, f"{lk.outcome.value}: {f.detail}")
    return f


# ---------------------------------------------------------------------------------------------
# Resolver views


def _ede_text(x: Exchange) -> str:
    parts = [f"EDE {e.code} ({EDE_NAMES.get(e.code, f'code {e.code}')})" + (f": {e.text}" if e.text else "")
             for e in x.ede]
    return "; ".join(parts)


def _resolver_said(ctx: Context, q: Question) -> list[str]:
    """How each recursive view answered ``q``: "internal: SERVFAIL, EDE 7 (Signature Expired)"."""
    out = []
    for view in ctx.recursive_views():
        lk = ctx.summary(view, q)
        if lk is None:
            continue
        xs = [ctx.exchanges[i] for i in lk.exchanges if i in ctx.exchanges]
        ede = "; ".join(t for t in (_ede_text(x) for x in xs) if t)
        out.append(f"{view}: {lk.outcome.value}" + (f", {ede}" if ede else ""))
    return out


def _resolvers(ctx: Context, v: Validation) -> Iterable[Finding]:
    for view in ctx.recursive_views():
        validated: list[str] = []
        not_validated: list[str] = []
        for q in ctx.questions():
            lk = ctx.summary(view, q)
            if lk is None:
                continue
            xs = [ctx.exchanges[i] for i in lk.exchanges if i in ctx.exchanges]
            if any(e.code in VALIDATION_EDE for x in xs for e in x.ede):
                validated.append(f"{q} answered SERVFAIL with {_ede_text(xs[-1]) or 'an EDE'}")
            elif q in v.secure_answers and lk.outcome.is_answer and xs:
                if "AD" in xs[-1].flags:
                    validated.append(f"AD on {q}")
                else:
                    not_validated.append(f"{q} comes without AD although it validates")
            elif q in v.bogus_questions and lk.outcome.is_answer:
                not_validated.append(f"it answers {q} ({lk.outcome.value}), which does not validate")
            elif q in v.bogus_questions and lk.outcome is Outcome.SERVFAIL:
                # Without an EDE (BIND 9.18 sends none): the servers answer, the answer is bogus, the view fails it.
                validated.append(f"{q} answered SERVFAIL, and the servers' answer does not validate")
        if not_validated:
            detail = "; ".join(not_validated[:3])
            yield DNSSEC_RESOLVER_NOT_VALIDATING.emit(view, seen=[Seen(view)], view=view, detail=detail)
        elif validated:
            detail = "; ".join(validated[:3])
            yield DNSSEC_RESOLVER_VALIDATES.emit(view, seen=[Seen(view)], view=view, detail=detail)


# ---------------------------------------------------------------------------------------------
# The check


@check(*BOGUS_SPECS, DNSSEC_SECURE, DNSSEC_INSECURE, DNSSEC_RECORD_UNREADABLE, DNSSEC_RESOLVER_VALIDATES,
       DNSSEC_RESOLVER_NOT_VALIDATING)
def dnssec_route(ctx: Context) -> Iterable[Finding]:
    v = validate(ctx)
    if v is None:
        return
    for q, detail in v.unreadable:
        yield DNSSEC_RECORD_UNREADABLE.emit(str(q), seen=[Seen(ctx.authoritative or "")], qname=q.qname,
                                             qtype=q.qtype, detail=detail)
    # an audit judges its zones per server (DNSSEC_SERVER_*): here only the chain above them
    audited = {p.zone.lower() for p in ctx.evidence.audit}
    for failure, seen in v.failures.items():
        if failure.zone.lower() in audited:
            continue
        spec = _SPECS[failure.problem]
        q = Question(failure.owner, failure.rdtype)
        said = _resolver_said(ctx, q)
        detail = failure.detail
        if said:
            detail = (detail + ". " if detail else "") + "Resolvers: " + "; ".join(said) + "."
        rcode = failure.detail.split(":", 1)[0] if failure.problem in (Problem.DENIAL_MISSING, Problem.DENIAL_WRONG) \
            else ""
        yield spec.emit(
            f"{failure.zone} {failure.owner} {failure.rdtype}",
            seen=seen,
            exchanges=v.exchanges.get(failure, ()),
            zone=failure.zone,
            qname=failure.owner,
            qtype=failure.rdtype,
            key_tag=str(failure.key_tag) if failure.key_tag is not None else "?",
            when=when_text(failure.when, v.now) if failure.when is not None else "?",
            servers=", ".join(str(s.server) for s in seen if s.server) or "the zone's servers",
            rcode=rcode or "negative",
            detail=detail,
        )
    route_zones = sorted({z for q in ctx.questions() if (z := _zone_of(v, q.qname)) is not None},
                         key=lambda z: len(dns.name.from_text(z)))
    for zone in route_zones:
        state = v.zones[zone]
        # The top of an unsigned part of the tree only; the zones below it are insecure for that reason.
        if state.status is Status.INSECURE and not state.detail.startswith("its parent"):
            yield DNSSEC_INSECURE.emit(zone, seen=[Seen(ctx.authoritative or "")], zone=zone, detail=state.detail)
    auth = ctx.authoritative or ""
    answered = {q for q in ctx.questions() if q.qtype not in ("DNSKEY", "DS")
                and (lk := ctx.summary(auth, q)) is not None and lk.outcome.is_answer}
    if answered and answered <= v.secure_answers and not v.failures:
        signed = ", ".join(z for z in route_zones if v.zones[z].status is Status.SECURE)
        yield DNSSEC_SECURE.emit(ctx.domain, seen=[Seen(ctx.authoritative or "")], records=signed)
    yield from _resolvers(ctx, v)


def bogus_questions(ctx: Context) -> set[Question]:
    """The route's questions whose authoritative answers do not validate (for other families: a
    resolver's SERVFAIL there is validation, not the resolver's fault)."""
    v = validate(ctx)
    return set() if v is None else v.bogus_questions
