"""RFC 5321 §5.1 next-hop resolution as a pure state machine (no I/O).

The machine says which questions it needs next (MX first, then A and AAAA of every exchanger at
once), takes the Lookups back, and ends in a Route. The probe drives it over the network; the
analysis replays it over recorded Lookups; both see the same logic.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import idna

from mxdoctor import evidence
from mxdoctor.errors import InvalidTarget
from mxdoctor.evidence import Lookup, Outcome

ADDRESS_TYPES = ("A", "AAAA")
_LDH_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


@dataclass(frozen=True, order=True)
class Question:
    qname: str  # absolute, lower-case A-labels, trailing dot
    qtype: str

    def __str__(self) -> str:
        return f"{self.qname} {self.qtype}"


class RouteKind(enum.StrEnum):
    MX = "mx"  # MX records name the exchangers
    IMPLICIT = "implicit"  # no MX: the domain itself, preference 0 (RFC 5321 §5.1)
    NULL_MX = "null-mx"  # "MX 0 ." alone: the domain accepts no mail (RFC 7505)
    NXDOMAIN = "nxdomain"  # the domain does not exist: MUST be reported as an error
    FAILED = "failed"  # the MX lookup failed temporarily or otherwise: MUST queue and retry
    INCOMPLETE = "incomplete"  # answers missing (deadline, or replay of partial evidence)


@dataclass(frozen=True)
class Exchanger:
    """One mail exchanger with its address lookups as the route saw them."""

    host: str  # absolute name with trailing dot
    preference: int
    implicit: bool = False
    literal: str | None = None  # the MX target is an IP address written as a name
    a: Lookup | None = None
    aaaa: Lookup | None = None

    def lookup(self, qtype: str) -> Lookup | None:
        return self.a if qtype == "A" else self.aaaa if qtype == "AAAA" else None

    @property
    def addresses4(self) -> tuple[str, ...]:
        return self.a.records if self.a and self.a.outcome is Outcome.NOERROR else ()

    @property
    def addresses6(self) -> tuple[str, ...]:
        return self.aaaa.records if self.aaaa and self.aaaa.outcome is Outcome.NOERROR else ()

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.addresses6 + self.addresses4

    @property
    def cname_target(self) -> str | None:
        for lk in (self.a, self.aaaa):
            if lk is not None and lk.cnames:
                return lk.cnames[-1]
        return None


@dataclass(frozen=True)
class Route:
    """Where mail for ``domain`` goes through one view, per RFC 5321 §5.1 and RFC 7505."""

    domain: str  # absolute, trailing dot
    kind: RouteKind
    mx: Lookup | None = None
    exchangers: tuple[Exchanger, ...] = ()  # by preference, then as listed
    null_mx_with_others: bool = False  # "MX 0 ." beside other MX records (RFC 7505 §3 MUST NOT)
    bad_mx_records: tuple[str, ...] = ()  # MX rdata that does not parse

    @property
    def cnames(self) -> tuple[str, ...]:
        return self.mx.cnames if self.mx else ()

    def preferences(self) -> tuple[int, ...]:
        return tuple(sorted({x.preference for x in self.exchangers}))

    def at_preference(self, pref: int) -> tuple[Exchanger, ...]:
        return tuple(x for x in self.exchangers if x.preference == pref)


def fqdn(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def _is_address(text: str) -> bool:
    bare = text.strip("[]")
    if ":" not in bare and not bare[-1:].isdigit():
        return False  # neither IPv6 (a colon) nor IPv4 (ends in a digit): no parse, no exception
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return False
    return True


def normalise_target(text: str) -> str:
    """Turn a domain, ``user@domain``, a trailing-dot name or an IDN into the A-label domain.

    Returns the domain in lower case without trailing dot. Raises InvalidTarget with a message
    fit for a person for empty input, empty labels, over-long names, IP addresses, control
    characters and names IDNA 2008 rejects.
    """
    raw = text
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise InvalidTarget(f"{raw!r} contains control characters")
    text = text.strip()
    if "@" in text:
        local, _, text = text.rpartition("@")
        if not local:
            raise InvalidTarget(f"{raw!r} has no local part before '@'")
        if not text:
            raise InvalidTarget(f"{raw!r} has no domain after '@'")
    if not text:
        raise InvalidTarget("empty domain")
    if text.startswith("[") or _is_address(text):
        raise InvalidTarget(f"{text!r} is an IP address, not a mail domain")
    if " " in text or "\t" in text:
        raise InvalidTarget(f"{text!r} contains white space")
    if text.endswith("."):
        text = text[:-1]
    if not text or ".." in text or text.startswith("."):
        raise InvalidTarget(f"{raw!r} has an empty label")
    try:
        ascii_name = text.encode("ascii").decode("ascii").lower()
    except UnicodeEncodeError:
        try:
            ascii_name = idna.encode(text, uts46=True).decode("ascii").lower()
        except idna.IDNAError as exc:
            raise InvalidTarget(f"{raw!r} is not a valid internationalised domain name: {exc}") from None
    if len(ascii_name) > 253:
        raise InvalidTarget(f"domain name is {len(ascii_name)} characters long (at most 253)")
    for label in ascii_name.split("."):
        if len(label) > 63:
            raise InvalidTarget(f"label {label[:20]}... is {len(label)} characters long (at most 63)")
        if not _LDH_LABEL.match(label):
            raise InvalidTarget(f"label {label!r} is not a valid host name label")
    if "." not in ascii_name:
        raise InvalidTarget(f"{ascii_name!r} is not a fully qualified domain name")
    return ascii_name


def parse_mx(rdata: str) -> tuple[int, str] | None:
    """``"10 mx.example.com."`` -> (10, "mx.example.com."); None when it does not parse."""
    parts = rdata.split()
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    return int(parts[0]), fqdn(parts[1]) if parts[1] != "." else "."


@dataclass
class RouteMachine:
    """Next-hop resolution for one domain through one view, one answer at a time."""

    domain: str
    _answers: dict[Question, Lookup] = field(default_factory=dict)
    _hosts: list[tuple[int, str, bool]] = field(default_factory=list)  # (pref, host, implicit)
    _kind: RouteKind | None = None
    _null_with_others: bool = False
    _bad: tuple[str, ...] = ()
    _mx_question: Question = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.domain = fqdn(self.domain)
        self._mx_question = Question(self.domain, "MX")

    def wanted(self) -> tuple[Question, ...]:
        """Every question needed now whose answer has not been given."""
        if self._mx_question not in self._answers:
            return (self._mx_question,)
        needed: list[Question] = []
        for _, host, _ in self._hosts:
            for qtype in ADDRESS_TYPES:
                q = Question(host, qtype)
                if q not in self._answers and q not in needed:
                    needed.append(q)
        return tuple(needed)

    @property
    def done(self) -> bool:
        return not self.wanted()

    def give(self, question: Question, lookup: Lookup) -> None:
        self._answers[question] = lookup
        if question == self._mx_question:
            self._read_mx(lookup)

    def _read_mx(self, mx: Lookup) -> None:
        self._kind, self._hosts, self._null_with_others, self._bad = read_mx(self.domain, mx)

    def result(self) -> Route:
        mx = self._answers.get(self._mx_question)
        if mx is None or self._kind is None:
            return Route(self.domain, RouteKind.INCOMPLETE, mx)
        answers = self._answers
        return assemble(
            self.domain, self._kind, mx, self._hosts, lambda host, qtype: answers.get(Question(host, qtype)),
            self._null_with_others, self._bad,
        )  # fmt: skip


MxReading = tuple[RouteKind, list[tuple[int, str, bool]], bool, tuple[str, ...]]


def read_mx(domain: str, mx: Lookup) -> MxReading:
    """What an MX answer makes of the route of ``domain`` (absolute): its kind, the exchangers to
    resolve as (preference, host, implicit) by preference, a null MX beside others, bad MX rdata."""
    if mx.outcome is Outcome.NXDOMAIN:
        return RouteKind.NXDOMAIN, [], False, ()
    if mx.outcome is Outcome.NODATA:
        return RouteKind.IMPLICIT, [(0, domain, True)], False, ()
    if mx.outcome is not Outcome.NOERROR:
        return RouteKind.FAILED, [], False, ()
    if len(mx.records) == 1:  # the common case, without the sorting below
        one = parse_mx(mx.records[0])
        if one is None:
            return RouteKind.FAILED, [], False, mx.records
        if one[1] == ".":
            return RouteKind.NULL_MX, [], False, ()
        return RouteKind.MX, [(one[0], one[1], False)], False, ()
    parsed = [(r, parse_mx(r)) for r in mx.records]
    bad = tuple(r for r, p in parsed if p is None)
    good = [p for _, p in parsed if p is not None]
    null = [p for p in good if p[1] == "."]
    real = sorted({p for p in good if p[1] != "."}, key=lambda p: (p[0], p[1]))
    if null and not real:
        return RouteKind.NULL_MX, [], False, bad
    hosts: list[tuple[int, str, bool]] = []
    seen: set[str] = set()
    for pref, host in real:
        if host not in seen:
            seen.add(host)
            hosts.append((pref, host, False))
    return (RouteKind.MX if real else RouteKind.FAILED), hosts, bool(null), bad


def assemble(
    domain: str,
    kind: RouteKind,
    mx: Lookup,
    hosts: Iterable[tuple[int, str, bool]],
    answer: Callable[[str, str], Lookup | None],
    null_with_others: bool,
    bad: tuple[str, ...],
) -> Route:
    """The Route once the MX answer is read: ``answer(host, qtype)`` gives each exchanger's A and
    AAAA lookups, None for one not (yet) answered, which leaves the route INCOMPLETE."""
    exchangers = []
    incomplete = False
    for pref, host, implicit in hosts:
        a = answer(host, "A")
        aaaa = answer(host, "AAAA")
        incomplete |= a is None or aaaa is None
        bare = host.rstrip(".")
        literal = bare if _is_address(bare) else None
        exchangers.append(Exchanger(host, pref, implicit, literal, a, aaaa))
    return Route(domain, RouteKind.INCOMPLETE if incomplete else kind, mx, tuple(exchangers), null_with_others, bad)


def summary_lookups(lookups: Iterable[Lookup], view: str) -> dict[Question, Lookup]:
    """The view-level answers (``server is None``) of one view, by question; a question the deadline
    left unfinished has none, so the route through it is INCOMPLETE rather than failed."""
    return {
        Question(fqdn(lk.qname), lk.qtype): lk
        for lk in lookups
        if lk.view == view and lk.server is None and not lk.unfinished
    }


def replay(domain: str, answers: dict[Question, Lookup]) -> Route:
    """Run the machine over recorded answers; a missing answer leaves the route INCOMPLETE."""
    machine = RouteMachine(domain)
    while not machine.done:
        progressed = False
        for q in machine.wanted():
            lk = answers.get(q)
            if lk is not None:
                machine.give(q, lk)
                progressed = True
        if not progressed:
            break
    return machine.result()


def route_for_view(ev: evidence.Evidence, view: str) -> Route:
    return replay(ev.domain, summary_lookups(ev.lookups, view))
