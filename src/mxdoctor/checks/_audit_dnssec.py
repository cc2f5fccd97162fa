"""The audit's DNSSEC judgement, per server: each DO probe's answer validated (with ``_dnssec``) against
the keys that server serves and the DS the parent published, as the discovery recorded it; and what a
server does with the DO bit (errors, silence, RRSIGs stripped, RRSIGs sent unasked). Pure.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DS
import dns.rrset

from mxdoctor.checks import _dnssec
from mxdoctor.checks import dnssec as route_dnssec
from mxdoctor.checks._dnssec import Failure, Problem
from mxdoctor.dns import probeset
from mxdoctor.evidence import DNSSEC_KEYS_VIEW, AuditProbe, Evidence, Exchange, Outcome
from mxdoctor.route import fqdn


class Fault(enum.StrEnum):
    """What is wrong with one DNSSEC probe's answer."""

    DNSKEY = "dnskey"  # the keys do not validate against the parent's DS, or cannot be had
    EXPIRED = "expired"  # an RRSIG outside its validity period (expired or not yet valid)
    INVALID = "invalid"  # an RRSIG that does not verify, or names a key the set does not hold
    MISSING = "missing"  # an RRset without RRSIG
    DENIAL = "denial"  # a negative answer without a valid NSEC/NSEC3 proof
    DO = "do"  # the DO query fails where the same query without DO is answered, or every RRSIG is stripped
    UNREADABLE = "unreadable"  # a record of the reply does not parse
    NOT_JUDGED = "not-judged"  # the query fails without DO as well: the plain probe's finding says it


_PROBLEM_FAULT = {
    Problem.RRSIG_MISSING: Fault.MISSING,
    Problem.RRSIG_EXPIRED: Fault.EXPIRED,
    Problem.RRSIG_NOT_YET_VALID: Fault.EXPIRED,
    Problem.RRSIG_INVALID: Fault.INVALID,
    Problem.RRSIG_NO_KEY: Fault.INVALID,
    Problem.DS_NO_MATCHING_DNSKEY: Fault.DNSKEY,
    Problem.DNSKEY_NOT_SELF_SIGNED: Fault.DNSKEY,
    Problem.DNSKEY_UNAVAILABLE: Fault.DNSKEY,
    Problem.DENIAL_MISSING: Fault.DENIAL,
    Problem.DENIAL_WRONG: Fault.DENIAL,
}
# a DO reply refused in one of these ways by a server that answers the query without DO: DO mishandled
_DO_ERRORS = (Outcome.SERVFAIL, Outcome.REFUSED, Outcome.NOTIMP, Outcome.FORMERR, Outcome.OTHER_RCODE,
              Outcome.TIMEOUT, Outcome.NETWORK_ERROR, Outcome.MALFORMED, Outcome.BROKEN)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """One DNSSEC probe judged: ``fault`` None when it validates (or the zone is insecure)."""

    fault: Fault | None = None
    detail: str = ""
    failures: tuple[Failure, ...] = ()
    consequence: bool = False  # follows from a fault reported elsewhere (no valid keys at any server)

    @property
    def bogus(self) -> bool:
        """A validating resolver that got this answer would reject it."""
        return self.fault is not None and self.fault is not Fault.NOT_JUDGED


@dataclass
class _ZoneKeys:
    ds: list[dns.rdtypes.ANY.DS.DS]
    insecure: str = ""  # why validators treat the zone as unsigned ("" when they validate it)
    keys: dict[str, dns.rrset.RRset] = field(default_factory=dict)  # address -> its DNSKEY set, where it validates
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # address -> its dnskey probe


Last = Callable[[AuditProbe], Exchange | None]
Sibling = Callable[[AuditProbe, str], Exchange | None]


def has_rrsig(x: Exchange) -> bool:
    return any(rr.split()[3:4] == ["RRSIG"] for rr in (*x.answer, *x.authority))


class DnssecJudge:
    """Judges the DNSSEC probes of an Evidence; ``last`` gives a probe's last exchange, ``sibling`` the
    last exchange of another probe of the same server and name (``of_evidence`` builds both)."""

    def __init__(self, ev: Evidence, last: Last, sibling: Sibling) -> None:
        self.ev = ev
        self.last = last
        self.sibling = sibling
        self.now = route_dnssec.evidence_time(ev)
        self._judged: dict[AuditProbe, Verdict] = {}
        mine = [p for p in ev.audit if p.name in probeset.BY_NAME and probeset.BY_NAME[p.name].dnssec]
        self.zones = {zone: self._ds(zone) for zone in sorted({p.zone for p in mine})}
        # servers whose every answer to a DO query lacks RRSIGs: they strip them (or serve an unsigned copy)
        answered: dict[str, bool] = {}
        for p in mine:
            x = last(p)
            if x is not None and x.outcome.is_answer and self.zones[p.zone].ds and not self.zones[p.zone].insecure:
                answered[p.server.address] = answered.get(p.server.address, False) or has_rrsig(x)
        self.strips = {a for a, signed in answered.items() if not signed}
        for zone, state in self.zones.items():
            if state.ds and not state.insecure:
                self._keys(state, [p for p in mine if p.zone == zone and p.name == "dnskey"])

    def _ds(self, zone: str) -> _ZoneKeys:
        ds: list[dns.rdtypes.ANY.DS.DS] = []
        for lk in self.ev.lookups:
            if lk.view == DNSSEC_KEYS_VIEW and lk.qtype == "DS" and fqdn(lk.qname).lower() == zone.lower() \
                    and lk.outcome is Outcome.NOERROR:
                for text in lk.records:
                    try:
                        rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS, text)
                    except (ValueError, dns.exception.DNSException):
                        continue  # an unreadable DS cannot make the zone secure
                    if isinstance(rd, dns.rdtypes.ANY.DS.DS) and rd not in ds:
                        ds.append(rd)
        state = _ZoneKeys(ds)
        if ds and not self.usable(state):
            algorithms = ", ".join(sorted({str(d.algorithm) for d in ds}))
            state.insecure = (f"insecure: the parent's DS names only algorithm {algorithms}, which validators do "
                              "not implement")
        return state

    @staticmethod
    def usable(state: _ZoneKeys) -> list[dns.rdtypes.ANY.DS.DS]:
        return [d for d in state.ds
                if d.algorithm in _dnssec.SUPPORTED_ALGORITHMS and d.digest_type in _dnssec.SUPPORTED_DIGESTS]

    def _keys(self, state: _ZoneKeys, dnskey_probes: list[AuditProbe]) -> None:
        for p in dnskey_probes:
            verdict, keys = self._dnskey(p, self.usable(state))
            state.verdicts[p.server.address] = verdict
            if keys is not None:
                state.keys[p.server.address] = keys

    def _dnskey(self, p: AuditProbe, usable: list[dns.rdtypes.ANY.DS.DS]) -> tuple[Verdict, dns.rrset.RRset | None]:
        x = self.last(p)
        zone = dns.name.from_text(p.zone)
        if x is None or self.now is None:
            return Verdict(Fault.NOT_JUDGED, "not answered"), None
        if not x.outcome.is_answer:
            soa = self.sibling(p, "soa")
            if soa is not None and soa.outcome is Outcome.NOERROR and x.outcome in _DO_ERRORS:
                return self._do_fault(x, soa), None
            failure = Failure(Problem.DNSKEY_UNAVAILABLE, p.zone, p.zone, "DNSKEY", usable[0].key_tag,
                              detail=f"the DNSKEY query is answered {x.rcode or x.outcome.value}")
            return Verdict(Fault.DNSKEY, failure.detail, (failure,)), None
        try:
            reply = route_dnssec.read_reply(x)
        except route_dnssec.Unreadable as exc:
            return Verdict(Fault.UNREADABLE, str(exc)), None
        dnskeys = reply.rrset(zone, dns.rdatatype.DNSKEY)
        if dnskeys is None:
            why = ("the answer does not fit in UDP (TC): resolvers must get it over TCP" if "TC" in x.flags
                   else f"no DNSKEY set ({x.outcome.value})")
            failure = Failure(Problem.DNSKEY_UNAVAILABLE, p.zone, p.zone, "DNSKEY", usable[0].key_tag,
                              detail=f"{why}, and the parent's DS names key {usable[0].key_tag}")
            return self._strip_or(p, Verdict(Fault.DNSKEY, failure.detail, (failure,))), None
        try:
            status, failures = _dnssec.check_dnskeys(dnskeys, reply.sigs(zone, dns.rdatatype.DNSKEY), usable, zone,
                                                     self.now)
        except (ValueError, dns.exception.DNSException) as exc:  # fields no validator can use
            return Verdict(Fault.UNREADABLE, f"the DNSKEY set cannot be checked: {exc}"), None
        if status is _dnssec.Status.SECURE:
            return Verdict(), dnskeys
        return self._strip_or(p, _verdict(failures, self.now)), None

    def _strip_or(self, p: AuditProbe, verdict: Verdict) -> Verdict:
        if p.server.address in self.strips and verdict.fault in (Fault.MISSING, Fault.DNSKEY):
            return Verdict(Fault.DO, "no RRSIG in any answer to a query with DO, although the parent's DS says the "
                           "zone is signed: the server strips them, or serves an unsigned copy of the zone")
        return verdict

    def _do_fault(self, x: Exchange, plain: Exchange) -> Verdict:
        got = x.rcode or x.outcome.value
        if x.outcome in (Outcome.MALFORMED, Outcome.BROKEN):
            got = f"a reply that does not parse ({(x.error or x.outcome.value).rstrip('.')})"
        return Verdict(Fault.DO, f"{x.qname} {x.qtype} with DO gets {got}, without DO {plain.outcome.value}")

    def keys(self, zone: str, address: str) -> dns.rrset.RRset | None:
        """The keys a server's data is checked with: its own where they validate, else another server's
        (a resolver may have fetched them there)."""
        state = self.zones.get(zone)
        if state is None or not state.keys:
            return None
        return state.keys.get(address) or next(iter(state.keys[a] for a in sorted(state.keys)))

    def judge(self, p: AuditProbe) -> Verdict:
        """The verdict on one DNSSEC probe."""
        verdict = self._judged.get(p)
        if verdict is None:
            verdict = self._judged[p] = self._judge(p)
        return verdict

    def _judge(self, p: AuditProbe) -> Verdict:
        state = self.zones.get(p.zone)
        if state is None or not state.ds or self.now is None:
            return Verdict()  # nothing says the zone is signed: nothing to validate
        if state.insecure:
            return Verdict(detail=state.insecure)
        if p.name == "dnskey":
            return state.verdicts.get(p.server.address, Verdict(Fault.NOT_JUDGED, "not answered"))
        x = self.last(p)
        if x is None:
            return Verdict(Fault.NOT_JUDGED, "not sent")
        plain_name = probeset.WITHOUT_DO.get(p.name, "")
        plain = self.sibling(p, plain_name) if plain_name else None
        if x.outcome in (Outcome.MALFORMED, Outcome.BROKEN):
            if plain is not None and plain.outcome.is_answer:
                # what the DO bit adds (the RRSIGs, the proofs) breaks the reply: a DO fault of the server
                return self._do_fault(x, plain)
            return Verdict(Fault.NOT_JUDGED, x.error or x.outcome.value)
        if not x.outcome.is_answer:
            if plain is not None and plain.outcome.is_answer and x.outcome in _DO_ERRORS:
                return self._do_fault(x, plain)
            return Verdict(Fault.NOT_JUDGED, f"{x.rcode or x.outcome.value} without DO as well")
        keys = self.keys(p.zone, p.server.address)
        if keys is None:
            return Verdict(Fault.DNSKEY, f"no DNSKEY set of {p.zone} validates at any server", consequence=True)
        try:
            reply = route_dnssec.read_reply(x)
        except route_dnssec.Unreadable as exc:
            return Verdict(Fault.UNREADABLE, str(exc))
        try:
            failures = self._validate(p, x, reply, keys)
        except (ValueError, dns.exception.DNSException) as exc:  # e.g. an NSEC3 of an unknown hash algorithm
            return Verdict(Fault.UNREADABLE, f"{x.qname} {x.qtype}: a DNSSEC record cannot be checked: {exc}")
        return self._strip_or(p, _verdict(failures, self.now))

    def _validate(self, p: AuditProbe, x: Exchange, reply: route_dnssec.Reply, keys: dns.rrset.RRset) -> list[Failure]:
        assert self.now is not None
        zone = dns.name.from_text(p.zone)
        failures: list[Failure] = []
        last = dns.name.from_text(p.qname)
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.RRSIG or not rrset.name.is_subdomain(zone):
                continue
            failures += _dnssec.check_rrset(rrset, reply.sigs(rrset.name, rrset.rdtype), keys, zone, self.now)
            if rrset.rdtype == dns.rdatatype.CNAME:
                last = rrset[0].target
        if x.outcome in (Outcome.NODATA, Outcome.NXDOMAIN) and last.is_subdomain(zone):
            for soa in (r for r in reply.authority if r.rdtype == dns.rdatatype.SOA):
                failures += _dnssec.check_rrset(soa, reply.sigs(soa.name, soa.rdtype, "authority"), keys, zone,
                                                self.now)
            try:
                qtype = dns.rdatatype.from_text(x.qtype)
            except (ValueError, dns.exception.DNSException):
                qtype = dns.rdatatype.NULL
            if x.outcome is Outcome.NODATA:
                denial = _dnssec.check_nodata(last, qtype, reply.authority, keys, zone, self.now)
            else:
                denial = _dnssec.check_nxdomain(last, reply.authority, keys, zone, self.now)
            failures += [_named(f, x) for f in denial]
        return failures

    def unasked(self) -> dict[tuple[str, str], list[tuple[AuditProbe, Exchange]]]:
        """(zone, address) -> the probes without DO whose replies carry RRSIGs anyway (RFC 3225 §3)."""
        out: dict[tuple[str, str], list[tuple[AuditProbe, Exchange]]] = {}
        for p in self.ev.audit:
            spec = probeset.BY_NAME.get(p.name)
            x = self.last(p)
            if spec is None or spec.shape.do or x is None or x.do or x.qtype in ("RRSIG", "ANY"):
                continue
            if x.outcome.is_answer and has_rrsig(x):
                out.setdefault((p.zone, p.server.address), []).append((p, x))
        return out


# Every check of one analysis asks about the same evidence, and validation is the costly part (a
# signature check per answer): the last few judges are kept, each with the evidence it judged.
_RECENT: dict[int, tuple[Evidence, DnssecJudge]] = {}


def of_evidence(ev: Evidence) -> DnssecJudge:
    """The DnssecJudge of an Evidence (over its own probe index), made once per evidence."""
    hit = _RECENT.get(id(ev))
    if hit is not None and hit[0] is ev:
        return hit[1]
    if len(_RECENT) >= 8:
        _RECENT.clear()
    judge = _make(ev)
    _RECENT[id(ev)] = (ev, judge)
    return judge


def _make(ev: Evidence) -> DnssecJudge:
    by_id = {x.id: x for x in ev.exchanges if x.probe is not None}
    index = {(p.server.address, p.name, p.qname.lower(), p.zone): p for p in ev.audit}

    def last(p: AuditProbe) -> Exchange | None:
        return by_id.get(p.exchanges[-1]) if p.exchanges else None

    def sibling(p: AuditProbe, name: str) -> Exchange | None:
        other = index.get((p.server.address, name, p.qname.lower(), p.zone))
        return last(other) if other is not None else None

    return DnssecJudge(ev, last, sibling)


ROUTE_PROBES = ("rrsig-mx", "rrsig-a", "rrsig-aaaa")


def bogus_questions(ev: Evidence) -> set[tuple[str, str]]:
    """(qname, qtype) of the route that every audited server that could be judged answers with data that
    does not validate: a validating resolver, which tries the other servers first, answers SERVFAIL."""
    if not ev.audit:
        return set()
    judge = of_evidence(ev)
    by_q: dict[tuple[str, str], list[bool]] = {}
    for p in ev.audit:
        x = judge.last(p)
        if p.name not in ROUTE_PROBES or x is None:
            continue
        v = judge.judge(p)
        if v.fault is Fault.NOT_JUDGED:
            continue  # silence, or the same failure without DO: the route's own lookups say it
        by_q.setdefault((p.qname.lower(), x.qtype), []).append(v.bogus)
    return {q for q, flags in by_q.items() if flags and all(flags)}


def _named(f: Failure, x: Exchange) -> Failure:
    """Denial failures are named by the question they answer, as the route's check names them."""
    if f.problem in (Problem.DENIAL_MISSING, Problem.DENIAL_WRONG):
        return Failure(f.problem, f.zone, fqdn(x.qname).lower(), x.qtype, f.key_tag, f.when,
                       f"{x.outcome.value}: {f.detail}")
    return f


def fault_of(f: Failure) -> Fault:
    return _PROBLEM_FAULT[f.problem]


def _verdict(failures: Sequence[Failure], now: float | None) -> Verdict:
    if not failures:
        return Verdict()
    first = failures[0]
    return Verdict(_PROBLEM_FAULT[first.problem], "; ".join(dict.fromkeys(describe(f, now) for f in failures)),
                   tuple(failures))


def describe(f: Failure, now: float | None = None) -> str:
    """One failure in words, with its key tag and time."""
    what = f"{f.owner} {f.rdtype}"
    if f.problem is Problem.RRSIG_EXPIRED and f.when is not None:
        when = route_dnssec.when_text(f.when, now) if now is not None else f"{f.when:.0f}"
        return f"the RRSIG over {what} by key {f.key_tag} expired at {when}"
    if f.problem is Problem.RRSIG_NOT_YET_VALID and f.when is not None:
        when = route_dnssec.when_text(f.when, now) if now is not None else f"{f.when:.0f}"
        return f"the RRSIG over {what} by key {f.key_tag} is valid only from {when}"
    if f.problem is Problem.RRSIG_INVALID:
        return f"the RRSIG over {what} by key {f.key_tag} does not verify ({f.detail})"
    if f.problem is Problem.RRSIG_NO_KEY:
        return f"the RRSIG over {what} is by key {f.key_tag}, which the DNSKEY set does not hold"
    if f.problem is Problem.RRSIG_MISSING:
        return f"no RRSIG covers {what}"
    return f.detail or f.problem.value
