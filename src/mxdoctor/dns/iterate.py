"""Iteration from the root as a pure state machine: the zone cuts met on the way, which server to ask
next, when the zone that owns a name is reached, and what a good resolver concludes from the answers
of every server of that zone. No I/O: ``views.AuthoritativeView`` drives it.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field, replace

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from mxdoctor import evidence
from mxdoctor.dns.exchange import ServerAnswer
from mxdoctor.evidence import Lookup, Outcome

MAX_REFERRALS = 30
NS_BATCH = 2  # glueless NS names of one cut resolved at once; the next ones only if these give nothing


def _family_order(address: str) -> int:
    return 0 if ipaddress.ip_address(address).version == 4 else 1


@dataclass
class Cut:
    """A zone as its parent delegates it: NS names in order, glue, and addresses found by resolving."""

    name: str  # absolute, lower case, "." for the root
    parent: str | None
    ns: list[str]
    glue: dict[str, tuple[str, ...]] = field(default_factory=dict)
    resolved: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def addresses(self) -> list[tuple[str, str]]:
        """(NS name, address) for every address known, IPv4 first (the cheaper path to try first)."""
        pairs = [(ns, a) for ns in self.ns for a in self.glue.get(ns) or self.resolved.get(ns, ())]
        return sorted(pairs, key=lambda p: _family_order(p[1]))

    def unresolved(self) -> list[str]:
        return [ns for ns in self.ns if not self.glue.get(ns) and ns not in self.resolved]

    def to_zone(self) -> evidence.Zone:
        servers = tuple(
            evidence.NameServer(
                ns,
                addresses=tuple(dict.fromkeys(self.glue.get(ns, ()) + self.resolved.get(ns, ()))),
                glue=self.glue.get(ns, ()),
            )
            for ns in self.ns
        )
        return evidence.Zone(self.name, self.parent, servers)


class ZoneTable:
    """Every cut met in a run, shared by all walks so each delegation is learnt once."""

    def __init__(self, root: Cut) -> None:
        self.cuts: dict[str, Cut] = {root.name: root}

    def closest(self, qname: str) -> Cut:
        name = dns.name.from_text(qname)
        while True:
            cut = self.cuts.get(name.to_text().lower())
            if cut is not None:
                return cut
            name = name.parent()

    def add(self, cut: Cut) -> Cut:
        """Learn a cut; the first delegation seen for a zone is kept."""
        return self.cuts.setdefault(cut.name, cut)

    def zones(self) -> tuple[evidence.Zone, ...]:
        return tuple(cut.to_zone() for cut in self.cuts.values())


def read_referral(msg: dns.message.Message, zone: str, qname: str) -> Cut | None:
    """The delegation in a reply: an NS set below ``zone`` covering ``qname``, with its glue."""
    if msg.rcode() != dns.rcode.NOERROR or msg.flags & dns.flags.AA or msg.answer:
        return None
    parent = dns.name.from_text(zone)
    target = dns.name.from_text(qname)
    for rrset in msg.authority:
        if rrset.rdtype != dns.rdatatype.NS:
            continue
        owner = rrset.name
        if owner == parent or not owner.is_subdomain(parent) or not target.is_subdomain(owner):
            continue
        names = list(dict.fromkeys(rd.target.to_text().lower() for rd in rrset))
        glue: dict[str, tuple[str, ...]] = {}
        for extra in msg.additional:
            host = extra.name.to_text().lower()
            if host in names and extra.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue[host] = glue.get(host, ()) + tuple(rd.address for rd in extra)
        return Cut(owner.to_text().lower(), zone, names, glue)
    return None


def referral_anywhere(msg: dns.message.Message) -> str | None:
    """The owner of an NS set in the authority section of a non-authoritative empty reply."""
    if msg.flags & dns.flags.AA or msg.answer:
        return None
    for rrset in msg.authority:
        if rrset.rdtype == dns.rdatatype.NS:
            owner: str = rrset.name.to_text().lower()
            return owner
    return None


class NsBudget:
    """The per-run bound on resolving NS names without glue: how many resolutions in all, and how
    deep (the servers of an NS name's zone may be glueless too, and so on). Without it, a zone whose
    referrals each name 13 glueless servers in new zones costs 13^depth walks.

    ``admit`` says whether one more resolution may start; what it refused is counted, so the probe
    can record that the run's NS resolution was cut short.
    """

    def __init__(self, names: int, depth: int) -> None:
        self.names = names
        self.depth = depth
        self.spent = 0
        self.refused_count = 0  # refused because ``names`` resolutions were spent
        self.refused_depth = 0  # refused because deeper than ``depth``

    def admit(self, depth: int) -> bool:
        """Whether an NS name may be resolved at ``depth`` (1 for the servers of the name asked)."""
        if depth > self.depth:
            self.refused_depth += 1
            return False
        if self.spent >= self.names:
            self.refused_count += 1
            return False
        self.spent += 1
        return True


# -- the walk ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AskServers:
    """Ask the question of these (NS name, address) pairs at once; give each answer as it comes."""

    zone: str
    servers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class NeedAddresses:
    zone: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class Found:
    """The deepest zone reached; ``answer`` is an authoritative one when a server gave it."""

    zone: str
    answer: ServerAnswer | None


@dataclass(frozen=True)
class Failed:
    zone: str
    reason: str


Step = AskServers | NeedAddresses | Found | Failed


class Walk:
    """Find the zone that owns ``qname``: ask the question to servers of the closest known cut,
    descend on referrals, stop at an authoritative answer.

    Below the root every server of a cut is asked at once and the first useful answer moves the
    walk on: the owner zone's servers are all asked in the end anyway, and the race keeps a slow or
    dead server off the critical path. At the root one server is asked first (hints list many), and
    the others together only if it fails.

    A server that fails or is lame makes the walk try the next one; when every server of a cut has
    been tried without an authoritative answer, that cut is still the deepest zone known, and is
    reported as found so that every one of its servers gets asked and the failures become evidence.
    """

    def __init__(self, table: ZoneTable, qname: str, qtype: str) -> None:
        self.table = table
        self.qname = qname
        self.qtype = qtype
        self.cut = table.closest(qname)
        self.path: list[str] = [self.cut.name]
        self._tried: set[str] = set()
        self._requested: set[str] = set()
        self._result: Found | Failed | None = None
        self.moves = 0  # changes whenever the walk moves on: a new cut or a result

    def step(self) -> Step:
        if self._result is not None:
            return self._result
        untried = [(ns, a) for ns, a in self.cut.addresses() if a not in self._tried]
        if untried:
            # the first root server alone; if it fails, the rest at once
            batch = untried[:1] if self.cut.name == "." and not self._tried else untried
            self._tried.update(a for _, a in batch)
            return AskServers(self.cut.name, tuple(batch))
        # a few glueless names at a time, as resolvers do: one that resolves is enough to go on
        names = tuple(n for n in self.cut.unresolved() if n not in self._requested)[:NS_BATCH]
        if names:
            self._requested.update(names)
            return NeedAddresses(self.cut.name, names)
        if self._tried:
            self._result = Found(self.cut.name, None)
        else:
            self._result = Failed(self.cut.name, f"no address for any name server of {self.cut.name}")
        return self._result

    def give(self, zone: str, answer: ServerAnswer) -> None:
        """The answer of a server of ``zone``; ignored once the walk has moved past that zone."""
        msg = answer.message
        if msg is None or zone != self.cut.name or self._result is not None:
            return
        child = read_referral(msg, self.cut.name, self.qname)
        if child is not None:
            if len(self.path) > MAX_REFERRALS:
                self._result = Failed(self.cut.name, "too many referrals")
                self.moves += 1
                return
            self.cut = self.table.add(child)
            self.path.append(self.cut.name)
            self._tried = set()
            self._requested = set()
            self.moves += 1
        elif answer.aa and answer.outcome in (Outcome.NOERROR, Outcome.NODATA, Outcome.NXDOMAIN):
            self._result = Found(self.cut.name, answer)
            self.moves += 1

    def learn_addresses(self, ns: str, addresses: tuple[str, ...]) -> None:
        """Addresses resolved for an NS name without glue (may be empty: then it has none)."""
        self.cut.resolved[ns] = tuple(dict.fromkeys(self.cut.resolved.get(ns, ()) + addresses))


# -- judging the answers of the owner zone's servers ---------------------------------------------------


def judge(view: str, zone: str, answer: ServerAnswer) -> Lookup:
    """One server's Lookup as an authoritative server: an answer without AA (but NXDOMAIN) or a referral
    is LAME.

    REFUSED stays REFUSED: refusing one question (AAAA only, say) is an unexpected RCODE, and a
    server that refuses every question of the zone is told lame by the checks, across questions.
    """
    outcome, detail = answer.outcome, answer.detail
    msg = answer.message
    if outcome in (Outcome.NOERROR, Outcome.NODATA, Outcome.NXDOMAIN):
        referred = referral_anywhere(msg) if msg is not None else None
        if referred is not None:
            outcome, detail = Outcome.LAME, f"referral to {referred} instead of an answer from {zone}"
        elif not answer.aa and outcome is Outcome.NXDOMAIN:
            # what load balancers and dnsdist synthesise: resolvers act on it (most pass it on), so
            # it is evidence against this server, not a lame answer to be ignored
            has_soa = msg is not None and any(rr.rdtype == dns.rdatatype.SOA for rr in msg.authority)
            detail = "NXDOMAIN without the AA bit" + ("" if has_soa else " and without SOA")
        elif not answer.aa:
            outcome, detail = Outcome.LAME, f"answer without AA from a server of {zone}"
    return replace(answer.to_lookup(view), outcome=outcome, detail=detail)


def summarise(view: str, qname: str, qtype: str, lookups: list[Lookup]) -> Lookup:
    """What a good resolver concludes from every server: the majority definitive answer if any
    server gave one, else the failure most servers gave (first seen wins a tie)."""
    exchanges = tuple(x for lk in lookups for x in lk.exchanges)
    if not lookups:
        return Lookup(view, None, qname, qtype, Outcome.SERVFAIL, detail="no server to ask")
    definitive = [lk for lk in lookups if lk.outcome.is_answer]
    pool = definitive or lookups

    def key(lk: Lookup) -> tuple[Outcome, tuple[str, ...], tuple[str, ...]]:
        return lk.outcome, tuple(sorted(lk.records)), lk.cnames

    counts = Counter(key(lk) for lk in pool)
    best = max(counts.values())
    chosen = next(lk for lk in pool if counts[key(lk)] == best)
    detail = chosen.detail
    if len(pool) < len(lookups) or len(counts) > 1:
        shown = f"{best} of {len(lookups)} servers"
        detail = f"{shown}: {detail}" if detail else shown
    return replace(chosen, server=None, exchanges=exchanges, detail=detail)
