"""The lab's recursive resolver (the "internal DNS server"): iterates from the lab root or forwards,
caches per RFC 2308, and passes an upstream failure on as SERVFAIL, as BIND and Unbound do. Given a
trust anchor it validates DNSSEC as Unbound does: SERVFAIL with an Extended DNS Error (RFC 8914) for
bogus data, AD for secure data, the data unvalidated to CD clients, RRSIGs and proofs to DO clients.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.dnssec
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DS
import dns.rrset

from mxdoctor import errors
from mxdoctor.checks import _dnssec

# BIND's servfail-ttl default; RFC 2308 §7.1 allows up to 300 s, but a long one would hide a fix.
SERVFAIL_TTL = 1.0
# Per client query: long enough to try a few dead servers, short enough for any client's retry.
DEFAULT_BUDGET = 4.0
MAX_CNAME_CHAIN = 12
MAX_REFERRALS = 24
MAX_GLUELESS_DEPTH = 4
# The DNS flag day 2020 buffer size, for the queries we send and the one we advertise.
UPSTREAM_PAYLOAD = 1232
# Keep a window of recent upstream queries for tests and the lab card; a long-running lab must not grow.
UPSTREAM_LOG_SIZE = 10_000
MAX_CACHE_ENTRIES = 200_000

RdType = dns.rdatatype.RdataType
Key = tuple[dns.name.Name, RdType]


@dataclass(frozen=True)
class StaleRecord:
    """A record the resolver keeps serving from its cache whatever the authority says now."""

    name: str
    rtype: str
    rdata: str
    ttl: int = 86400


@dataclass(frozen=True)
class UpstreamQuery:
    """One query the resolver sent to an upstream server, and what came of it."""

    server: str
    port: int
    qname: str
    qtype: str
    transport: str  # "udp", "tcp"
    outcome: str  # the RCODE name, or "timeout" / "error: ..." when no usable reply came


class Kind(enum.Enum):
    """What one upstream reply (or a cache entry) means for the question asked."""

    ANSWER = "answer"  # the data asked for (possibly behind CNAMEs)
    CNAME = "cname"  # a chain that stops before the data: continue at the last target
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    REFERRAL = "referral"
    LAME = "lame"  # the server is no authority for the name: ask another
    FAIL = "fail"  # SERVFAIL, REFUSED, timeout, garbage: ask another


@dataclass(frozen=True)
class Classified:
    """A reply read against the question and the zone it was sent to."""

    kind: Kind
    rrsets: tuple[dns.rrset.RRset, ...] = ()  # answer chain, or the child's NS rrset followed by glue
    soa: dns.rrset.RRset | None = None  # for negative answers
    zone: dns.name.Name | None = None  # for referrals: the child zone; otherwise the zone that answered
    reason: str = ""
    dnssec: tuple[dns.rrset.RRset, ...] = ()  # RRSIG, NSEC, NSEC3 and DS records of the reply
    secure: bool = False  # validated from the trust anchor
    ede: tuple[tuple[int, str], ...] = ()  # Extended DNS Errors for a validation failure
    failures: tuple[_dnssec.Failure, ...] = ()
    unvalidated: Classified | None = None  # for a validation failure: the data, for CD clients


def _find(section: Iterable[dns.rrset.RRset], name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN:
            return rrset
    return None


def _negative_soa(
    response: dns.message.Message, qname: dns.name.Name, zone: dns.name.Name
) -> dns.rrset.RRset | None:
    for rrset in response.authority:
        if rrset.rdtype != dns.rdatatype.SOA:
            continue
        if qname.is_subdomain(rrset.name) and rrset.name.is_subdomain(zone):
            return rrset
    return None


def classify(
    response: dns.message.Message,
    qname: dns.name.Name,
    qtype: RdType,
    zone: dns.name.Name,
    *,
    require_aa: bool = True,
) -> Classified:
    """Read one upstream reply as an iterative resolver does.

    ``zone`` is the zone the server was asked as an authority for (its bailiwick: records outside it are
    ignored); ``require_aa`` is False for forwarders, whose answers are never authoritative.
    """
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return Classified(Kind.FAIL, reason=dns.rcode.to_text(rcode))
    result = _classify(response, qname, qtype, zone, rcode, require_aa)
    dnssec = tuple(r for r in response.answer + response.authority if r.rdtype in _DNSSEC_TYPES)
    return dataclasses.replace(result, dnssec=dnssec) if dnssec else result


_DNSSEC_TYPES = (dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.NSEC3, dns.rdatatype.DS)


def _classify(
    response: dns.message.Message,
    qname: dns.name.Name,
    qtype: RdType,
    zone: dns.name.Name,
    rcode: dns.rcode.Rcode,
    require_aa: bool,
) -> Classified:
    authoritative = bool(response.flags & dns.flags.AA) or not require_aa

    chain: list[dns.rrset.RRset] = []
    name = qname
    complete = False
    for _ in range(MAX_CNAME_CHAIN):
        if not name.is_subdomain(zone):
            break
        if qtype == dns.rdatatype.ANY:
            found = [r for r in response.answer if r.name == name and r.rdtype != dns.rdatatype.CNAME]
            if found:
                chain.extend(found)
                complete = True
                break
        else:
            data = _find(response.answer, name, qtype)
            if data is not None:
                chain.append(data)
                complete = True
                break
        cname = _find(response.answer, name, dns.rdatatype.CNAME)
        if cname is None or qtype == dns.rdatatype.CNAME:
            break
        chain.append(cname)
        name = cname[0].target
    if chain:
        if not authoritative:
            return Classified(Kind.LAME, reason="answer without AA")
        return Classified(Kind.ANSWER if complete else Kind.CNAME, tuple(chain))

    if rcode == dns.rcode.NXDOMAIN:
        # Accepted without AA too, as Unbound, BIND and PowerDNS Recursor do with what load balancers send
        # (research/real-dns.md; Knot Resolver alone turns it into SERVFAIL); without an SOA it is not cached.
        return Classified(Kind.NXDOMAIN, soa=_negative_soa(response, qname, zone))

    if response.answer:
        # RFC 4074 §4.4: a record of another type where the asked one should be is a broken answer.
        return Classified(Kind.FAIL, reason="answer holds no record of the asked name and type")

    for rrset in response.authority:
        if rrset.rdtype != dns.rdatatype.NS:
            continue
        child = rrset.name
        if child != zone and child.is_subdomain(zone) and qname.is_subdomain(child):
            if not require_aa:
                return Classified(Kind.FAIL, reason="referral from a forwarder")
            ns_names = {rr.target for rr in rrset}
            glue = tuple(
                r
                for r in response.additional
                if r.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
                and r.name in ns_names
                and r.name.is_subdomain(zone)
            )
            return Classified(Kind.REFERRAL, (rrset, *glue), zone=child)
        if not authoritative:
            return Classified(Kind.LAME, reason=f"referral to {child} from {zone} is not downward")

    if not authoritative:
        return Classified(Kind.LAME, reason="empty answer without AA")
    return Classified(Kind.NODATA, soa=_negative_soa(response, qname, zone))


def _with_ttl(rrset: dns.rrset.RRset, ttl: int) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(rrset.name, ttl, list(rrset))


def _negative_ttl(soa: dns.rrset.RRset) -> int:
    """RFC 2308 §5: the negative TTL is the lesser of the SOA's TTL and its MINIMUM field."""
    return int(min(soa.ttl, soa[0].minimum))


class _Cache:
    """Positive, negative (RFC 2308) and SERVFAIL entries with absolute expiry times."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._rrsets: dict[Key, tuple[dns.rrset.RRset, float]] = {}
        self._nxdomain: dict[dns.name.Name, tuple[dns.rrset.RRset | None, float]] = {}
        self._nodata: dict[Key, tuple[dns.rrset.RRset | None, float]] = {}
        self._servfail: dict[Key, float] = {}
        self._delegations: dict[dns.name.Name, tuple[dns.rrset.RRset, float]] = {}
        self._glue: dict[Key, tuple[dns.rrset.RRset, float]] = {}

    def clear(self) -> None:
        self._rrsets.clear()
        self._nxdomain.clear()
        self._nodata.clear()
        self._servfail.clear()
        self._delegations.clear()
        self._glue.clear()

    def _remaining(self, expires: float) -> int | None:
        left = expires - self._clock()
        return int(left) if left > 0 else None

    def rrset(self, key: Key) -> dns.rrset.RRset | None:
        entry = self._rrsets.get(key)
        if entry is None:
            return None
        left = self._remaining(entry[1])
        if left is None:
            del self._rrsets[key]
            return None
        return _with_ttl(entry[0], left)

    def glue(self, key: Key) -> dns.rrset.RRset | None:
        entry = self._glue.get(key)
        if entry is None or self._remaining(entry[1]) is None:
            return None
        return entry[0]

    def delegation(self, zone: dns.name.Name) -> dns.rrset.RRset | None:
        entry = self._delegations.get(zone)
        if entry is None or self._remaining(entry[1]) is None:
            return None
        return entry[0]

    def negative(self, key: Key) -> tuple[Kind, dns.rrset.RRset | None] | None:
        """NXDOMAIN holds for every type of the name (RFC 2308 §5); NODATA for the one type."""
        candidates = ((Kind.NXDOMAIN, self._nxdomain.get(key[0])), (Kind.NODATA, self._nodata.get(key)))
        for kind, entry in candidates:
            if entry is None:
                continue
            left = self._remaining(entry[1])
            if left is not None:
                soa = entry[0]
                return kind, (_with_ttl(soa, left) if soa is not None else None)
        return None

    def servfail(self, key: Key) -> bool:
        expires = self._servfail.get(key)
        return expires is not None and expires > self._clock()

    def put_rrset(self, rrset: dns.rrset.RRset) -> None:
        if rrset.ttl > 0:
            self._sweep()
            self._rrsets[(rrset.name, rrset.rdtype)] = (rrset, self._clock() + rrset.ttl)

    def put_referral(self, ns: dns.rrset.RRset, glue: Iterable[dns.rrset.RRset]) -> None:
        self._sweep()
        now = self._clock()
        self._delegations[ns.name] = (ns, now + max(ns.ttl, 1))
        for rrset in glue:
            self._glue[(rrset.name, rrset.rdtype)] = (rrset, now + max(rrset.ttl, 1))

    def put_negative(self, kind: Kind, key: Key, soa: dns.rrset.RRset | None) -> None:
        # RFC 2308 §5: a negative answer without an SOA is not cached.
        if soa is None:
            return
        ttl = _negative_ttl(soa)
        if ttl <= 0:
            return
        self._sweep()
        entry = (soa, self._clock() + ttl)
        if kind is Kind.NXDOMAIN:
            self._nxdomain[key[0]] = entry
        else:
            self._nodata[key] = entry

    def put_servfail(self, key: Key) -> None:
        self._sweep()
        self._servfail[key] = self._clock() + SERVFAIL_TTL

    def _sweep(self) -> None:
        """Keep a long-running lab (a bulk scan through it) from growing without end: past the limit,
        drop what has expired, and if that is not enough, everything (a cache may always forget)."""
        if self._size() < MAX_CACHE_ENTRIES:
            return
        now = self._clock()
        tables: list[dict[Any, Any]] = [
            self._rrsets,
            self._nxdomain,
            self._nodata,
            self._delegations,
            self._glue,
        ]
        for table in tables:
            for key in [k for k, entry in table.items() if entry[1] <= now]:
                del table[key]
        for key in [k for k, expires in self._servfail.items() if expires <= now]:
            del self._servfail[key]
        if self._size() >= MAX_CACHE_ENTRIES:
            self.clear()

    def _size(self) -> int:
        tables: list[dict[Any, Any]] = [
            self._rrsets,
            self._nxdomain,
            self._nodata,
            self._servfail,
            self._delegations,
            self._glue,
        ]
        return sum(len(table) for table in tables)


@dataclass
class _Context:
    """Bounds of one client query: its deadline, and the glueless lookups in progress (loop guard)."""

    deadline: float
    clock: Callable[[], float]
    depth: int = 0
    resolving: frozenset[dns.name.Name] = field(default_factory=frozenset)

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def nested(self, ns_name: dns.name.Name) -> _Context:
        return _Context(self.deadline, self.clock, self.depth + 1, self.resolving | {ns_name})


@dataclass(frozen=True)
class Resolution:
    """The outcome of one client question, ready to become a reply."""

    rcode: dns.rcode.Rcode
    answer: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()
    secure: bool = False
    ede: tuple[tuple[int, str], ...] = ()
    # For DO clients (RFC 4035 §3.2.1): the RRSIG of each answer RRset, and the negative answer's RRSIG
    # over the SOA with its NSEC/NSEC3 proof.
    sigs: tuple[dns.rrset.RRset, ...] = ()
    proof: tuple[dns.rrset.RRset, ...] = ()


_SERVFAIL = Resolution(dns.rcode.SERVFAIL)


class RecursiveResolver:
    """An iterative (or forwarding) caching resolver serving the lab's clients.

    ``root_hints`` are (name server name, address) pairs of the lab root; ``port`` is the lab's DNS port,
    on which every lab server listens. With ``forwarders`` it sends recursive queries to them instead of
    iterating. ``stale`` records are served as if cached, whatever the authorities say. Each upstream try
    waits at most ``query_timeout`` seconds, and a client query at most ``budget`` seconds in all.

    Raises ConfigError when a stale record does not parse.
    """

    def __init__(
        self,
        root_hints: Sequence[tuple[str, str]],
        port: int,
        *,
        forwarders: Sequence[tuple[str, int]] = (),
        stale: Sequence[StaleRecord] = (),
        query_timeout: float = 1.0,
        budget: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        trust_anchor: Sequence[dns.rdata.Rdata] = (),
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self._port = port
        # DS (or DNSKEY) records of the root; none: no validation. Forwarding resolvers never validate.
        self._anchor = tuple(trust_anchor) if not forwarders else ()
        self._wallclock = wallclock
        self._zone_status: dict[dns.name.Name, tuple[float, _ZoneStatus]] = {}
        self._security: dict[Key, bool] = {}
        self._servfail_ede: dict[Key, tuple[tuple[int, str], ...]] = {}
        # Beside the cache, as a validating resolver keeps them: the RRSIG of each cached RRset, the
        # proofs of cached negative answers, and bogus data (served only to CD clients).
        self._sigs: dict[Key, dns.rrset.RRset] = {}
        self._proofs: dict[Key, tuple[dns.rrset.RRset, ...]] = {}
        self._unvalidated: dict[Key, Classified] = {}
        self._forwarders = tuple(forwarders)
        self._query_timeout = query_timeout
        # A scenario may give a slow server a long timeout; the budget must still allow two tries.
        self._budget = budget if budget is not None else max(DEFAULT_BUDGET, 2 * query_timeout + 0.5)
        self._clock = clock
        self._cache = _Cache(clock)
        self._root_ns: list[dns.name.Name] = []
        self._root_glue: dict[dns.name.Name, list[str]] = {}
        for ns_text, address in root_hints:
            ns_name = dns.name.from_text(ns_text)
            if ns_name not in self._root_glue:
                self._root_ns.append(ns_name)
            self._root_glue.setdefault(ns_name, []).append(address)
        self._stale = _stale_rrsets(stale)
        self.upstream: collections.deque[UpstreamQuery] = collections.deque(maxlen=UPSTREAM_LOG_SIZE)

    @property
    def validating(self) -> bool:
        return bool(self._anchor)

    def flush(self) -> None:
        """Forget everything cached (stale records stay: they model a cache that will not let go)."""
        self._cache.clear()
        self._zone_status.clear()
        self._security.clear()
        self._servfail_ede.clear()
        self._sigs.clear()
        self._proofs.clear()
        self._unvalidated.clear()

    async def handle(self, request: dns.message.Message, transport: str) -> dns.message.Message | None:
        """Answer one client request; ``transport`` is "udp" or "tcp" (UDP replies are truncated to fit)."""
        response = dns.message.make_response(request, our_payload=UPSTREAM_PAYLOAD)
        # RFC 4035 §3.2.2: CD is copied into the reply; RFC 3225 §3: so is DO.
        response.flags |= dns.flags.RA | (request.flags & dns.flags.CD)
        do = request.edns >= 0 and bool(request.ednsflags & dns.flags.DO)
        if do:
            response.ednsflags |= dns.flags.DO
        if request.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if len(request.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        if request.edns > 0:
            response.set_rcode(dns.rcode.BADVERS)
            return response
        question = request.question[0]
        transfer_or_meta = dns.rdatatype.is_metatype(question.rdtype) and question.rdtype != dns.rdatatype.ANY
        if question.rdclass != dns.rdataclass.IN or transfer_or_meta:
            response.set_rcode(dns.rcode.REFUSED)
            return response

        if request.flags & dns.flags.RD:
            ctx = _Context(self._clock() + self._budget, self._clock)
            try:
                # The per-step bounds already keep within the budget; this catches what they cannot.
                async with asyncio.timeout(self._budget + 1.0):
                    resolution = await self._resolve(question.name, question.rdtype, ctx,
                                                     cd=bool(request.flags & dns.flags.CD))
            except TimeoutError:
                resolution = _SERVFAIL
            _fill(response, resolution, dnssec=do)
            # RFC 6840 §5.8: AD only to a client that shows it understands it (DO or AD set).
            if resolution.secure and request.flags & dns.flags.AD or (
                    resolution.secure and request.ednsflags & dns.flags.DO):
                response.flags |= dns.flags.AD
            if resolution.ede and request.edns >= 0:
                response.use_edns(0, request.ednsflags & dns.flags.DO, UPSTREAM_PAYLOAD,
                                  options=[dns.edns.EDEOption(dns.edns.EDECode(code), text)
                                           for code, text in resolution.ede])
        else:
            self._answer_from_cache(response, question.name, question.rdtype)
        if transport == "udp":
            _truncate_to_fit(request, response)
        return response

    # -- resolution -------------------------------------------------------------------------------

    async def _resolve(self, qname: dns.name.Name, qtype: RdType, ctx: _Context, *, cd: bool = False) -> Resolution:
        """``cd``: the client set Checking Disabled, so bogus data comes back unvalidated (RFC 4035 §3.2.2)."""
        chain: list[dns.rrset.RRset] = []
        sigs: list[dns.rrset.RRset] = []
        seen = {qname}
        name = qname
        secure = True
        for _ in range(MAX_CNAME_CHAIN):
            step = self._cached(name, qtype, cd=cd)
            if step is None:
                step = await self._fetch(name, qtype, ctx)
            if step.kind is Kind.FAIL and step.ede:
                if not cd or step.unvalidated is None:
                    return Resolution(dns.rcode.SERVFAIL, ede=step.ede)
                step = dataclasses.replace(step.unvalidated, secure=False)
            secure = secure and step.secure
            if step.kind in (Kind.ANSWER, Kind.CNAME):
                sigs.extend(self._sigs_of(step))
            if step.kind is Kind.ANSWER:
                return Resolution(dns.rcode.NOERROR, (*chain, *step.rrsets), secure=secure, sigs=tuple(sigs))
            if step.kind is Kind.CNAME:
                chain.extend(step.rrsets)
                name = step.rrsets[-1][0].target
                # a loop, or a chain longer than real resolvers follow (their limit is per chain, not per reply)
                if name in seen or len(chain) > MAX_CNAME_CHAIN:
                    return _SERVFAIL
                seen.add(name)
                continue
            authority = (step.soa,) if step.soa is not None else ()
            proof = self._proof_of(step, name, qtype)
            if step.kind is Kind.NXDOMAIN:
                return Resolution(dns.rcode.NXDOMAIN, tuple(chain), authority, secure=secure, sigs=tuple(sigs),
                                  proof=proof)
            if step.kind is Kind.NODATA:
                return Resolution(dns.rcode.NOERROR, tuple(chain), authority, secure=secure, sigs=tuple(sigs),
                                  proof=proof)
            return _SERVFAIL
        return _SERVFAIL

    def _sigs_of(self, step: Classified) -> list[dns.rrset.RRset]:
        """The RRSIG of each RRset of an answer: from the reply it came in, or kept beside the cache."""
        out = []
        for rrset in step.rrsets:
            sig = _covering(step.dnssec, rrset) or self._sigs.get((rrset.name, rrset.rdtype))
            if sig is not None:
                out.append(_with_ttl(sig, rrset.ttl))  # RFC 4035 §2.2: the TTL of the RRset it covers
        return out

    def _proof_of(self, step: Classified, name: dns.name.Name, qtype: RdType) -> tuple[dns.rrset.RRset, ...]:
        proof = _proof_records(step.dnssec) or self._proofs.get(_proof_key(step.kind, name, qtype), ())
        ttl = step.soa.ttl if step.soa is not None else None
        return tuple(_with_ttl(r, min(r.ttl, ttl)) if ttl is not None else r for r in proof)

    def _cached(self, name: dns.name.Name, qtype: RdType, *, cd: bool = False) -> Classified | None:
        for table in (self._stale.get, self._cache.rrset):
            data = table((name, qtype))
            if data is not None:
                return Classified(Kind.ANSWER, (data,), secure=self._security.get((name, qtype), False))
            if qtype != dns.rdatatype.CNAME:
                cname = table((name, dns.rdatatype.CNAME))
                if cname is not None:
                    secure = self._security.get((name, dns.rdatatype.CNAME), False)
                    return Classified(Kind.CNAME, (cname,), secure=secure)
        negative = self._cache.negative((name, qtype))
        if negative is not None:
            return Classified(negative[0], soa=negative[1], secure=self._security.get((name, qtype), False))
        if self._cache.servfail((name, qtype)):
            bogus = self._unvalidated.get((name, qtype)) if cd else None
            if bogus is not None:
                return dataclasses.replace(bogus, secure=False)
            return Classified(Kind.FAIL, reason="cached SERVFAIL", ede=self._servfail_ede.get((name, qtype), ()))
        return None

    async def _fetch(self, name: dns.name.Name, qtype: RdType, ctx: _Context) -> Classified:
        if self._forwarders:
            result = await self._forward(name, qtype, ctx)
        else:
            result = await self._iterate(name, qtype, ctx)
            if self._anchor:
                checked = await self._validate(name, qtype, result, ctx)
                if checked.kind is Kind.FAIL and result.kind is not Kind.FAIL:
                    checked = dataclasses.replace(checked, unvalidated=result)
                result = checked
        if qtype == dns.rdatatype.ANY:
            return result
        if result.kind in (Kind.ANSWER, Kind.CNAME):
            for rrset in result.rrsets:
                key = (rrset.name, rrset.rdtype)
                self._cache.put_rrset(rrset)
                self._security[key] = result.secure
                sig = _covering(result.dnssec, rrset)
                if sig is not None:
                    self._sigs[key] = sig
                else:
                    self._sigs.pop(key, None)
        elif result.kind in (Kind.NXDOMAIN, Kind.NODATA):
            self._cache.put_negative(result.kind, (name, qtype), result.soa)
            self._security[(name, qtype)] = result.secure
            self._proofs[_proof_key(result.kind, name, qtype)] = _proof_records(result.dnssec)
        else:
            self._cache.put_servfail((name, qtype))
            self._servfail_ede[(name, qtype)] = result.ede
            if result.unvalidated is not None:
                self._unvalidated[(name, qtype)] = result.unvalidated
            else:
                self._unvalidated.pop((name, qtype), None)
        return result

    # -- validation (RFC 4035 §5) -----------------------------------------------------------------

    async def _validate(self, name: dns.name.Name, qtype: RdType, result: Classified, ctx: _Context) -> Classified:
        """The result as secure, as it was (insecure), or as a failure carrying its EDE (bogus)."""
        if result.kind not in (Kind.ANSWER, Kind.CNAME, Kind.NXDOMAIN, Kind.NODATA) or result.zone is None:
            return result
        zone = result.zone
        status = await self._status_of(zone, ctx)
        if status.status is _dnssec.Status.INSECURE:
            return result
        if status.status is not _dnssec.Status.SECURE:
            return _bogus(status.failures, f"the keys of {zone} do not validate")
        if qtype == dns.rdatatype.DNSKEY and name == zone and result.kind is Kind.ANSWER:
            return dataclasses.replace(result, secure=True)
        now = self._wallclock()
        sigs = [sig for r in result.dnssec if r.rdtype == dns.rdatatype.RRSIG for sig in r]
        failures: list[_dnssec.Failure] = []
        checked = list(result.rrsets)
        if result.soa is not None:
            checked.append(result.soa)
        for rrset in checked:
            own = [s for s in sigs if s.type_covered == rrset.rdtype and _sig_owner(result.dnssec, s) == rrset.name]
            failures += _dnssec.check_rrset(rrset, own, status.keys, zone, now)
        proof = [r for r in result.dnssec if r.rdtype != dns.rdatatype.DS]
        if result.kind is Kind.NODATA:
            failures += _dnssec.check_nodata(name, qtype, proof, status.keys, zone, now)
        elif result.kind is Kind.NXDOMAIN:
            failures += _dnssec.check_nxdomain(name, proof, status.keys, zone, now)
        if failures:
            # Unbound says NSEC Missing only when no denial record came at all; a wrong one is just Bogus.
            wrong = any(r.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3) for r in proof)
            return _bogus(failures, f"{name} {dns.rdatatype.to_text(qtype)} does not validate", denial_seen=wrong)
        return dataclasses.replace(result, secure=True)

    async def _status_of(self, zone: dns.name.Name, ctx: _Context) -> _ZoneStatus:
        """Whether ``zone``'s keys are secure from the trust anchor (cached for a minute)."""
        cached = self._zone_status.get(zone)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        status = await self._find_status(zone, ctx)
        self._zone_status[zone] = (self._clock() + ZONE_STATUS_TTL, status)
        return status

    async def _find_status(self, zone: dns.name.Name, ctx: _Context) -> _ZoneStatus:
        if zone == dns.name.root:
            ds = [a if a.rdtype == dns.rdatatype.DS else dns.dnssec.make_ds(zone, a, "SHA256") for a in self._anchor]
        else:
            found = self._cached(zone, dns.rdatatype.DS) or await self._fetch(zone, dns.rdatatype.DS, ctx)
            if found.kind is Kind.FAIL:
                return _ZoneStatus(_dnssec.Status.BOGUS, None, found.failures or (
                    _dnssec.Failure(_dnssec.Problem.DS_NO_MATCHING_DNSKEY, zone.to_text(), zone.to_text(), "DS",
                                    detail=f"the DS of {zone} cannot be had: {found.reason}"),))
            if not found.secure or found.kind is not Kind.ANSWER:
                return _ZoneStatus(_dnssec.Status.INSECURE, None)
            ds = [rd for rrset in found.rrsets if rrset.rdtype == dns.rdatatype.DS for rd in rrset]
        keys = await self._iterate(zone, dns.rdatatype.DNSKEY, ctx)
        dnskeys = next((r for r in keys.rrsets if r.rdtype == dns.rdatatype.DNSKEY), None)
        if keys.kind is not Kind.ANSWER or dnskeys is None:
            usable = [d for d in ds if getattr(d, "algorithm", None) in _dnssec.SUPPORTED_ALGORITHMS]
            if not usable:
                return _ZoneStatus(_dnssec.Status.INSECURE, None)
            return _ZoneStatus(_dnssec.Status.BOGUS, None, (
                _dnssec.Failure(_dnssec.Problem.DNSKEY_UNAVAILABLE, zone.to_text(), zone.to_text(), "DNSKEY",
                                detail=f"no DNSKEY answer from {zone}: {keys.reason or keys.kind.value}"),))
        sigs = [sig for r in keys.dnssec if r.rdtype == dns.rdatatype.RRSIG for sig in r]
        typed = [d for d in ds if isinstance(d, dns.rdtypes.ANY.DS.DS)]
        status, failures = _dnssec.check_dnskeys(dnskeys, sigs, typed, zone, self._wallclock())
        return _ZoneStatus(status, dnskeys if status is _dnssec.Status.SECURE else None, tuple(failures))

    async def _forward(self, name: dns.name.Name, qtype: RdType, ctx: _Context) -> Classified:
        reasons = []
        for address, port in self._forwarders:
            result = await self._ask(address, port, dns.name.root, name, qtype, ctx, recursive=True)
            if result.kind in (Kind.ANSWER, Kind.CNAME, Kind.NXDOMAIN, Kind.NODATA):
                return result
            reasons.append(f"{address}: {result.reason}")
        return Classified(Kind.FAIL, reason="; ".join(reasons) or "no forwarder")

    async def _iterate(self, name: dns.name.Name, qtype: RdType, ctx: _Context) -> Classified:
        # DS records live on the parent's side of the zone cut (RFC 4035 §3.1.4.1).
        above = name.parent() if qtype == dns.rdatatype.DS and name != dns.name.root else name
        zone, ns_names = self._closest_delegation(above)
        for _ in range(MAX_REFERRALS):
            result = await self._ask_zone(zone, ns_names, name, qtype, ctx)
            if result.kind is not Kind.REFERRAL:
                return dataclasses.replace(result, zone=zone)
            assert result.zone is not None
            ns_rrset, *glue = result.rrsets
            self._cache.put_referral(ns_rrset, glue)
            zone, ns_names = result.zone, _server_order(ns_rrset)
        return Classified(Kind.FAIL, reason="too many referrals")

    def _closest_delegation(self, name: dns.name.Name) -> tuple[dns.name.Name, list[dns.name.Name]]:
        while name != dns.name.root:
            ns = self._cache.delegation(name)
            if ns is not None:
                return name, _server_order(ns)
            name = name.parent()
        return dns.name.root, list(self._root_ns)

    def _known_addresses(self, ns_name: dns.name.Name) -> list[str]:
        if ns_name in self._root_glue:
            return list(self._root_glue[ns_name])
        addresses: list[str] = []
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            rrset = self._cache.glue((ns_name, rdtype)) or self._cache.rrset((ns_name, rdtype))
            if rrset is not None:
                addresses.extend(rr.address for rr in rrset)
        return addresses

    async def _resolve_addresses(self, ns_name: dns.name.Name, ctx: _Context) -> list[str]:
        if ctx.depth >= MAX_GLUELESS_DEPTH or ns_name in ctx.resolving:
            return []
        nested = ctx.nested(ns_name)
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            resolution = await self._resolve(ns_name, rdtype, nested)
            addresses = [rr.address for rrset in resolution.answer if rrset.rdtype == rdtype for rr in rrset]
            if addresses:
                return addresses
        return []

    async def _ask_zone(
        self,
        zone: dns.name.Name,
        ns_names: list[dns.name.Name],
        qname: dns.name.Name,
        qtype: RdType,
        ctx: _Context,
    ) -> Classified:
        """Ask the zone's servers in turn until one gives a definite answer (or a referral)."""
        tried: set[str] = set()
        reasons: list[str] = []
        # Servers whose address is known go first, as in BIND and Unbound; glueless ones are looked up
        # only when those fail.
        glueless = []
        for ns_name in ns_names:
            addresses = self._known_addresses(ns_name)
            if not addresses:
                glueless.append(ns_name)
            for address in addresses:
                result = await self._ask_once(address, zone, qname, qtype, ctx, tried, reasons)
                if result is not None:
                    return result
        for ns_name in glueless:
            for address in await self._resolve_addresses(ns_name, ctx):
                result = await self._ask_once(address, zone, qname, qtype, ctx, tried, reasons)
                if result is not None:
                    return result
        return Classified(Kind.FAIL, reason="; ".join(reasons) or f"no usable server for {zone}")

    async def _ask_once(
        self,
        address: str,
        zone: dns.name.Name,
        qname: dns.name.Name,
        qtype: RdType,
        ctx: _Context,
        tried: set[str],
        reasons: list[str],
    ) -> Classified | None:
        if address in tried:
            return None
        tried.add(address)
        result = await self._ask(address, self._port, zone, qname, qtype, ctx, recursive=False)
        if result.kind in (Kind.FAIL, Kind.LAME):
            reasons.append(f"{address}: {result.reason}")
            return None
        return result

    async def _ask(
        self,
        address: str,
        port: int,
        zone: dns.name.Name,
        qname: dns.name.Name,
        qtype: RdType,
        ctx: _Context,
        *,
        recursive: bool,
    ) -> Classified:
        # DO upstream even when not validating (as BIND and Unbound do), so DO clients get the RRSIGs.
        query = dns.message.make_query(qname, qtype, use_edns=0, payload=UPSTREAM_PAYLOAD, want_dnssec=True)
        if not recursive:
            query.flags &= ~dns.flags.RD
        response, outcome = await self._exchange(query, address, port, ctx)
        if (
            response is not None
            and response.rcode() in (dns.rcode.FORMERR, dns.rcode.NOTIMP)
            and ctx.remaining() > 0
        ):
            # RFC 6891 §7: a server that does not know EDNS answers FORMERR; ask again without it.
            # (Silence is not taken as EDNS intolerance: resolvers dropped that workaround in 2019.)
            query = dns.message.make_query(qname, qtype, use_edns=False)
            if not recursive:
                query.flags &= ~dns.flags.RD
            response, outcome = await self._exchange(query, address, port, ctx)
        if response is None:
            return Classified(Kind.FAIL, reason=outcome)
        return classify(response, qname, qtype, zone, require_aa=not recursive)

    async def _exchange(
        self, query: dns.message.Message, address: str, port: int, ctx: _Context
    ) -> tuple[dns.message.Message | None, str]:
        """One UDP exchange, repeated over TCP when truncated: the reply (None when no usable reply came)
        and the outcome as logged."""
        question = query.question[0]
        transport = "udp"
        try:
            timeout = min(self._query_timeout, ctx.remaining())
            if timeout <= 0:
                raise dns.exception.Timeout
            response = await dns.asyncquery.udp(query, address, timeout=timeout, port=port)
            if response.flags & dns.flags.TC:
                transport = "tcp"
                timeout = min(self._query_timeout, ctx.remaining())
                if timeout <= 0:
                    raise dns.exception.Timeout
                response = await dns.asyncquery.tcp(query, address, timeout=timeout, port=port)
            outcome = dns.rcode.to_text(response.rcode())
        except dns.exception.Timeout:
            outcome, response = "timeout", None
        except Exception as exc:  # a hostile server's bytes must never become a crash of the resolver
            outcome, response = f"error: {type(exc).__name__}: {exc}", None
        qtype = dns.rdatatype.to_text(question.rdtype)
        self.upstream.append(UpstreamQuery(address, port, question.name.to_text(), qtype, transport, outcome))
        return response, outcome

    # -- replies ----------------------------------------------------------------------------------

    def _answer_from_cache(self, response: dns.message.Message, name: dns.name.Name, qtype: RdType) -> None:
        """RD=0: answer only from the cache, else refer the client to the closest known servers."""
        chain: list[dns.rrset.RRset] = []
        for _ in range(MAX_CNAME_CHAIN):
            step = self._cached(name, qtype)
            if step is None:
                break
            if step.kind is Kind.CNAME:
                chain.extend(step.rrsets)
                name = step.rrsets[-1][0].target
                continue
            if step.kind is Kind.ANSWER:
                _fill(response, Resolution(dns.rcode.NOERROR, (*chain, *step.rrsets)))
            elif step.kind is Kind.NXDOMAIN:
                _fill(response, Resolution(dns.rcode.NXDOMAIN, tuple(chain), _optional(step.soa)))
            elif step.kind is Kind.NODATA:
                _fill(response, Resolution(dns.rcode.NOERROR, tuple(chain), _optional(step.soa)))
            else:
                _fill(response, _SERVFAIL)
            return
        response.answer.extend(chain)
        zone, ns_names = self._closest_delegation(name)
        ns_rrset = dns.rrset.from_text_list(zone, 3600, "IN", "NS", [ns.to_text() for ns in ns_names])
        for ns_name in ns_names:
            for address in self._known_addresses(ns_name):
                rdtype = dns.rdatatype.AAAA if ":" in address else dns.rdatatype.A
                response.additional.append(dns.rrset.from_text(ns_name, 3600, "IN", rdtype, address))
        response.authority.append(ns_rrset)


ZONE_STATUS_TTL = 60.0
# RFC 8914 §4: the code for each way validation fails, as Unbound reports them.
EDE_CODES = {
    _dnssec.Problem.RRSIG_EXPIRED: 7,  # Signature Expired
    _dnssec.Problem.RRSIG_NOT_YET_VALID: 8,  # Signature Not Yet Valid
    _dnssec.Problem.DS_NO_MATCHING_DNSKEY: 9,  # DNSKEY Missing
    _dnssec.Problem.DNSKEY_UNAVAILABLE: 9,
    _dnssec.Problem.RRSIG_MISSING: 10,  # RRSIGs Missing
    _dnssec.Problem.DNSKEY_NOT_SELF_SIGNED: 10,  # no RRSIG by the key the DS names: Unbound says 10 too
    _dnssec.Problem.DENIAL_MISSING: 12,  # NSEC Missing
}
EDE_BOGUS = 6  # DNSSEC Bogus: everything else


@dataclass(frozen=True)
class _ZoneStatus:
    status: _dnssec.Status
    keys: dns.rrset.RRset | None
    failures: tuple[_dnssec.Failure, ...] = ()


def _bogus(failures: Sequence[_dnssec.Failure], reason: str, *, denial_seen: bool = False) -> Classified:
    first = failures[0] if failures else None
    code = EDE_CODES.get(first.problem, EDE_BOGUS) if first is not None else EDE_BOGUS
    if first is not None and first.problem is _dnssec.Problem.DENIAL_MISSING and denial_seen:
        code = EDE_BOGUS
    text = f"validation failure <{first.owner} {first.rdtype}>: {first.problem.value}" if first else reason
    return Classified(Kind.FAIL, reason=reason, ede=((code, text),), failures=tuple(failures))


def _sig_owner(records: Sequence[dns.rrset.RRset], sig: dns.rdata.Rdata) -> dns.name.Name | None:
    for rrset in records:
        if rrset.rdtype == dns.rdatatype.RRSIG and sig in rrset:
            return rrset.name
    return None


def _server_order(ns: dns.rrset.RRset) -> list[dns.name.Name]:
    """The zone's servers in name order. Real resolvers pick by measured RTT; a fixed order keeps every
    lab run alike, so a scenario where one server of two misbehaves always shows the same path."""
    return sorted(rr.target for rr in ns)


def _optional(rrset: dns.rrset.RRset | None) -> tuple[dns.rrset.RRset, ...]:
    return (rrset,) if rrset is not None else ()


def _fill(response: dns.message.Message, resolution: Resolution, *, dnssec: bool = False) -> None:
    """The reply's sections; ``dnssec`` (the client set DO): each RRset followed by its RRSIG, and the
    negative answer's proof after the SOA, as Unbound orders them."""
    response.set_rcode(resolution.rcode)
    for rrset in resolution.answer:
        response.answer.append(rrset)
        if dnssec:
            response.answer.extend(s for s in resolution.sigs if s.name == rrset.name and s.covers == rrset.rdtype)
    response.authority.extend(resolution.authority)
    if dnssec:
        response.authority.extend(resolution.proof)


def _covering(records: Iterable[dns.rrset.RRset], rrset: dns.rrset.RRset) -> dns.rrset.RRset | None:
    for r in records:
        if r.rdtype == dns.rdatatype.RRSIG and r.name == rrset.name and r.covers == rrset.rdtype:
            return r
    return None


def _proof_records(records: Iterable[dns.rrset.RRset]) -> tuple[dns.rrset.RRset, ...]:
    """What proves a negative answer: the SOA's RRSIG, the NSEC/NSEC3 records and their RRSIGs."""
    kinds = (dns.rdatatype.SOA, dns.rdatatype.NSEC, dns.rdatatype.NSEC3)
    return tuple(r for r in records if r.rdtype in kinds or (r.rdtype == dns.rdatatype.RRSIG and r.covers in kinds))


def _proof_key(kind: Kind, name: dns.name.Name, qtype: RdType) -> Key:
    # An NXDOMAIN holds for every type of the name (RFC 2308 §5), and so does its proof.
    return (name, dns.rdatatype.ANY) if kind is Kind.NXDOMAIN else (name, qtype)


def _truncate_to_fit(request: dns.message.Message, response: dns.message.Message) -> None:
    """RFC 1035 §4.2.1 / RFC 6891 §6.2.5: over UDP, a reply larger than the client's buffer is cut and
    marked TC, so the client asks again over TCP."""
    limit = max(512, request.payload) if request.edns >= 0 else 512
    if len(response.to_wire()) <= limit:
        return
    response.flags |= dns.flags.TC
    response.answer.clear()
    response.authority.clear()
    response.additional.clear()


def _stale_rrsets(stale: Sequence[StaleRecord]) -> dict[Key, dns.rrset.RRset]:
    grouped: dict[Key, list[dns.rrset.RRset]] = {}
    for record in stale:
        try:
            rrset = dns.rrset.from_text(record.name, record.ttl, "IN", record.rtype, record.rdata)
        except (dns.exception.DNSException, ValueError) as exc:
            raise errors.ConfigError(
                f"stale record {record.name} {record.rtype} {record.rdata!r}: {exc}"
            ) from None
        grouped.setdefault((rrset.name, rrset.rdtype), []).append(rrset)
    return {
        key: dns.rrset.from_rdata_list(key[0], min(r.ttl for r in parts), [rd for r in parts for rd in r])
        for key, parts in grouped.items()
    }
