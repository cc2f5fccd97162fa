"""Verdicts: what one MTA model does with the route it would see (deliver, defer, bounce, unknown).

Pure: reads a Route (through the view that MTA uses), the findings and the SMTP probes; no I/O. The
findings a verdict names as its causes are picked by spec object or by role, never by code string.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from mxdoctor.checks import _registry as registry
from mxdoctor.checks import address, coverage, mx, nameserver, resolver
from mxdoctor.checks import dane as dane_checks
from mxdoctor.checks import dnssec as dnssec_checks
from mxdoctor.checks import smtp as smtp_checks
from mxdoctor.checks._registry import Role
from mxdoctor.diagnosis import Alternative, Decision, Finding, Verdict
from mxdoctor.evidence import Lookup, Outcome, SmtpProbe
from mxdoctor.mta.models import MODELS, Failure, MtaModel, OnFailure, OnNxdomain
from mxdoctor.route import Exchanger, Route, RouteKind

_DNS_STATUS = {
    Outcome.SERVFAIL: "ServerFailure",
    Outcome.TIMEOUT: "ErrorTimeout",
    Outcome.NETWORK_ERROR: "ErrorTimeout",
    Outcome.BROKEN: "ErrorInvalidData",
    Outcome.MALFORMED: "ErrorInvalidData",
}


def failure_class(outcome: Outcome) -> Failure:
    if outcome is Outcome.SERVFAIL:
        return Failure.SERVFAIL
    if outcome in (Outcome.TIMEOUT, Outcome.NETWORK_ERROR):
        return Failure.TIMEOUT
    return Failure.OTHER


@dataclass(frozen=True)
class _HostState:
    kind: str  # usable | tempfail | perm | domain-defer | unknown
    qtype: str = ""
    lookup: Lookup | None = None
    addresses: tuple[str, ...] = ()


def _host_state(model: MtaModel, x: Exchanger, smtp: Sequence[SmtpProbe] = ()) -> _HostState:
    if x.literal is not None and model.mx_literal:
        # the MTA takes the numeric "name" as the address itself and asks no DNS for it
        family = "AAAA" if ":" in x.literal else "A"
        if family in model.order:
            return _HostState("usable", addresses=(x.literal,))
    addresses: list[str] = []
    soft: _HostState | None = None
    last = model.order[-1]
    for qtype in model.order:
        lk = x.lookup(qtype)
        if lk is None:
            return _HostState("unknown", qtype)
        if lk.outcome is Outcome.NOERROR:
            addresses.extend(lk.records)
            v6_connects = any(_reachable(smtp, a) is not False for a in lk.records)
            if qtype == "AAAA" and model.a_after_v6_connect and v6_connects:
                # the MTA connects to the IPv6 addresses before it asks A: A is never asked
                return _HostState("usable", addresses=tuple(lk.records))
        elif lk.outcome is Outcome.NODATA:
            continue
        elif lk.outcome is Outcome.NXDOMAIN:
            if qtype == "AAAA" and model.on_aaaa_nxdomain is OnNxdomain.HOST_UNUSABLE:
                return _HostState("perm", qtype, lk)
        else:
            table = model.on_aaaa_failure if qtype == "AAAA" else model.on_a_failure
            action = table[failure_class(lk.outcome)]
            if action is OnFailure.DOMAIN_DEFER:
                return _HostState("domain-defer", qtype, lk)
            if action is OnFailure.HOST_TEMPFAIL:
                return _HostState("tempfail", qtype, lk)
            if soft is None or model.last_failure_named:
                soft = _HostState("tempfail", qtype, lk)
    if addresses:
        return _HostState("usable", addresses=tuple(addresses))
    return soft or _HostState("perm", last, x.lookup(last))


@dataclass(frozen=True)
class StubWait:
    """The host's stub resolver timer as the probe read it (resolv.conf ``timeout``, ``attempts``)."""

    timeout: float
    attempts: int
    source: str = "/etc/resolv.conf"

    @classmethod
    def from_options(cls, options: dict[str, str]) -> StubWait | None:
        """From an evidence's options record; None when the evidence has none (older files)."""
        try:
            return cls(float(options["stub_timeout"]), int(options["stub_attempts"]), options.get("resolv_conf", ""))
        except (KeyError, ValueError):
            return None


def _waits(model: MtaModel, stub: StubWait | None) -> tuple[str, ...]:
    """How long this MTA waits for one DNS answer before it takes the lookup as failed."""
    if model.own_dns_wait:
        return (f"DNS wait: {model.own_dns_wait}.",)
    if stub is None:
        return ()
    wait = stub.timeout * stub.attempts
    return (f"DNS wait: up to {wait:g} s for one answer (stub resolver timeout:{stub.timeout:g} x "
            f"attempts:{stub.attempts}, {stub.source or 'resolv.conf'}).",)


def _status(text: str) -> str:
    for word in text.replace("dsn=", " ").split():
        parts = word.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] in ("2", "4", "5"):
            return word
    return ""


def _reachable(probes: Sequence[SmtpProbe], address: str) -> bool | None:
    """None when the address was not probed; else whether it greeted with 2xx."""
    mine = [p for p in probes if p.address == address]
    if not mine:
        return None
    for p in mine:
        greeting = next((s for s in p.stages if s.stage == "greeting"), None)
        if greeting is not None and greeting.ok and (greeting.code or 0) < 400:
            return True
    return False


def _smtp_failure_text(probes: Sequence[SmtpProbe], address: str) -> str | None:
    """What the server said at the first stage that failed; None when the connection itself failed (the
    model's text says that) or the address was not probed."""
    for p in probes:
        if p.address != address:
            continue
        for s in p.stages:
            if not s.ok:
                if s.stage == "connect":
                    return None
                words = s.text or s.error or "failed"
                return f"{s.code} {words}".strip() if s.code else words
    return None


def _name(x: Exchanger) -> str:
    """The exchanger as MTAs write it: an MX target absolute (trailing dot), the implicit MX bare."""
    return x.host.rstrip(".") if x.implicit else x.host.rstrip(".") + "."



def evaluate(
    model: MtaModel,
    route: Route | None,
    *,
    view: str,
    findings: Sequence[Finding] = (),
    smtp: Sequence[SmtpProbe] = (),
    view_reachable: bool = True,
    knobs: tuple[str, ...] = (),
    stub: StubWait | None = None,
) -> Verdict:
    """The verdict of one model over the route through ``view``."""
    base = dict(mta=model.name, title=model.title, view=view, knobs=knobs, notes=(*model.notes, *_waits(model, stub)))
    domain = route.domain.rstrip(".") if route else ""
    t = model.texts

    def verdict(outcome: Decision, text: str, because: tuple[str, ...], host: str | None = None) -> Verdict:
        return Verdict(outcome=outcome, status=_status(text) or _default_status(outcome, text),
                       text=text, because=because, host=host, **base)  # type: ignore[arg-type]

    if not view_reachable:
        text = f"resolver of view {view} does not answer"
        return verdict(Decision.UNKNOWN, text, (resolver.RESOLVER_UNREACHABLE.code,))
    # what the probe left unfinished (the deadline, a per-run limit) is why the route is incomplete
    unfinished = registry.codes(findings, coverage.DEADLINE_REACHED, coverage.LIMIT_REACHED)
    if route is None or route.kind is RouteKind.INCOMPLETE:
        return verdict(Decision.UNKNOWN, "the lookups did not complete (deadline)", unfinished)
    if route.kind is RouteKind.FAILED:
        error = _DNS_STATUS.get(route.mx.outcome, "ErrorRetry") if route.mx else "ErrorRetry"
        text = t.mx_tempfail.format(domain=domain, error=error, host=domain, qtype="MX")

        causes = registry.codes(
            findings, mx.MX_LOOKUP_FAILED, mx.CNAME_CHAIN_BROKEN, resolver.RESOLVER_FAILS, nameserver.EDNS_DROPPED
        )
        # a failure none of those names (a bogus DNSSEC answer to the MX question): the DNS faults found
        causes = causes or registry.codes(findings, Role.DNS_FAULT, Role.RESOLVER_FAULT)
        return verdict(Decision.DEFER, text, causes)
    if route.kind is RouteKind.NXDOMAIN:
        text = t.nxdomain.format(domain=domain, qtype=model.order[-1], host=domain, error="")
        return verdict(Decision.BOUNCE, text, registry.codes(findings, mx.DOMAIN_NXDOMAIN, resolver.RESOLVER_DISAGREES))
    if route.kind is RouteKind.NULL_MX:
        if not model.null_mx_supported:
            text = t.no_address.format(domain=domain, host=".", name=".", qtype=model.order[-1])
            outcome = Decision.DEFER if model.no_address_defers else Decision.BOUNCE
            return verdict(outcome, text, (mx.NULL_MX.code,))
        return verdict(Decision.BOUNCE, t.null_mx.format(domain=domain), (mx.NULL_MX.code,))

    states = [(x, _host_state(model, x, smtp)) for x in route.exchangers]
    dns_codes = registry.codes(findings, Role.DNS_FAULT, Role.RESOLVER_FAULT)
    for x, st in states:
        if st.kind == "domain-defer":
            assert st.lookup is not None
            text = t.domain_defer.format(
                domain=domain, host=x.host.rstrip("."), name=_name(x), qtype=st.qtype,
                error=_DNS_STATUS.get(st.lookup.outcome, "ErrorRetry"),
            )
            return verdict(Decision.DEFER, text, dns_codes, x.host)
        if st.kind == "unknown":
            return verdict(Decision.UNKNOWN, "the address lookups did not complete", unfinished, x.host)
    smtp_fail: tuple[Exchanger, str, str] | None = None
    dane_fail: tuple[Exchanger, Decision, str, tuple[str, ...]] | None = None
    # A DANE client sees DNSSEC only through its resolver's AD bit: behind one that does not validate it
    # never finds a secure TLSA record (nor a secure address), so DANE never applies.
    dane = model.dane and not any(
        dnssec_checks.DNSSEC_RESOLVER_NOT_VALIDATING.matches(f) and f.args.get("view") == view for f in findings)
    for x, st in states:
        if st.kind != "usable":
            continue
        blocked = _dane_blocked(model, findings, x, st.addresses[0]) if dane else None
        if blocked is not None:
            dane_fail = dane_fail or (x, *blocked)
            continue
        reachable = [a for a in st.addresses if _reachable(smtp, a) is not False]
        if reachable:
            verified = dane and _dane_verified(findings, x)
            text = (t.dane_deliver if verified else t.deliver).format(host=x.host.rstrip("."), address=reachable[0])
            because = dns_codes if any(s.kind != "usable" for _, s in states) else ()
            return verdict(Decision.DELIVER, text, because, x.host)
        if smtp_fail is None:
            smtp_fail = (x, st.addresses[0], _smtp_failure_text(smtp, st.addresses[0]) or "")
    if dane_fail is not None:
        x, decision, text, codes = dane_fail
        return verdict(decision, text, codes, x.host)
    if smtp_fail is not None:
        x, first, words = smtp_fail
        text = t.unreachable.format(host=x.host.rstrip("."), name=_name(x), address=first)
        text += f" ({words})" if words else ""
        smtp_codes = registry.codes(findings, Role.SMTP)
        return verdict(Decision.DEFER, text, smtp_codes or (smtp_checks.SMTP_UNREACHABLE.code,), x.host)
    temp = next(((x, st) for x, st in states if st.kind == "tempfail"), None)
    if temp is not None:
        x, st = temp
        assert st.lookup is not None
        text = t.address_tempfail.format(
            domain=domain, host=x.host.rstrip("."), name=_name(x),
            qtype=st.qtype, error=_DNS_STATUS.get(st.lookup.outcome, "ErrorRetry"),
        )
        return verdict(Decision.DEFER, text, dns_codes, x.host)
    x0, st0 = states[0] if states else (None, None)
    host = x0.host.rstrip(".") if x0 else domain
    template = t.no_address
    if x0 is not None and x0.implicit and t.implicit_no_address:
        template = t.implicit_no_address
    elif st0 is not None and st0.lookup is not None and st0.lookup.outcome is Outcome.NXDOMAIN and t.host_nxdomain:
        template = t.host_nxdomain
    text = template.format(domain=domain, host=host, name=_name(x0) if x0 else domain,
                           qtype=st0.qtype if st0 else "A")
    perm_codes = registry.codes(findings, Role.ROUTE_PERMANENT, address.AAAA_NXDOMAIN)
    return verdict(Decision.DEFER if model.no_address_defers else Decision.BOUNCE, text, perm_codes, host)


def _dane_verified(findings: Sequence[Finding], x: Exchanger) -> bool:
    host = x.host.rstrip(".")
    return any(dane_checks.DANE_TLSA_MATCH.matches(f) and f.args.get("host") == host for f in findings)


def _dane_blocked(
    model: MtaModel, findings: Sequence[Finding], x: Exchanger, address: str
) -> tuple[Decision, str, tuple[str, ...]] | None:
    """Why a DANE client skips exchanger ``x`` (what it then does, its log text and the finding codes), or
    None."""
    host = x.host.rstrip(".")
    for f in findings:
        if dane_checks.DANE_TLSA_LOOKUP_FAILED.matches(f) and f.args.get("host") == host:
            return Decision.DEFER, model.texts.dane_lookup_error.format(host=host, address=address), (f.code,)
    no_match = [f for f in findings if dane_checks.DANE_TLSA_NO_MATCH.matches(f) and f.args.get("host") == host]
    good = _dane_verified(findings, x)
    if no_match and not good:
        return Decision.DEFER, model.texts.dane_no_match.format(host=host, address=address), (no_match[0].code,)
    if model.dane_required and not good:
        # DANE required but not possible: no secure address (the route is not all DNSSEC-secure), or a
        # secure one without TLSA records. Exim fails the address at once (observed, docs/conformance.md).
        secure = any(dnssec_checks.DNSSEC_SECURE.matches(f) for f in findings)
        text = model.texts.dane_no_tlsa if secure else model.texts.dane_insecure
        return Decision.BOUNCE, text.format(host=host, address=address), ()
    return None


def _default_status(outcome: Decision, text: str) -> str:
    head = text.split()[0] if text else ""
    if len(head) == 3 and head.isdigit():
        return f"{head[0]}.0.0"
    return {Decision.DEFER: "4.0.0", Decision.BOUNCE: "5.0.0"}.get(outcome, "")


def predict(
    routes: dict[str, Route],
    *,
    reference: str | None,
    externals: Sequence[str],
    reachable: dict[str, bool],
    findings: Sequence[Finding] = (),
    smtp: Sequence[SmtpProbe] = (),
    mtas: Sequence[str] | None = None,
    knobs: dict[str, tuple[str, ...]] | None = None,
    stub: StubWait | None = None,
    authoritative: str | None = None,
) -> list[Verdict]:
    """A verdict per MTA model, each with the knobs that would change it."""
    knobs = knobs or {}
    if authoritative is not None and reference is not None and reference in routes and authoritative in routes:
        # the reference view asks AAAA before A; a model that asks A first meets a resolver whose
        # cache holds no NXDOMAIN from the AAAA query yet
        routes = {**routes, _A_FIRST: _a_first(routes[reference], routes[authoritative])}
    out = []
    for name, model in MODELS.items():
        if mtas and name not in mtas:
            continue
        applied = knobs.get(name, ())
        v = _one(model.with_knobs(applied), routes, reference, externals, reachable, findings, smtp, applied, stub)
        alternatives = []
        for knob in model.knobs:
            if knob.name in applied:
                continue
            alt = _one(model.with_knobs(applied + (knob.name,)), routes, reference, externals, reachable,
                       findings, smtp, applied + (knob.name,), stub)
            if alt.outcome is not v.outcome:
                alternatives.append(Alternative(knob.name, alt.outcome, knob.how, alt.text))
        out.append(Verdict(**{**v.__dict__, "alternatives": tuple(alternatives)}))
    return out


_A_FIRST = "\0a-first"  # the reference route as a model asking A first sees it (never a view name)


def _a_first(ordered: Route, fresh: Route) -> Route:
    """``ordered`` with the A answer the authoritative view got, for each exchanger whose AAAA and
    then A came back NXDOMAIN: some resolvers (BIND, dnsmasq, the lab's) answer an A query from the
    NXDOMAIN the AAAA query left in their cache (RFC 2308 §5), which an A-first MTA never meets."""
    by_host = {x.host: x for x in fresh.exchangers}
    changed = []
    for x in ordered.exchangers:
        other = by_host.get(x.host)
        if (
            other is not None and other.a is not None and x.a is not None and x.aaaa is not None
            and x.aaaa.outcome is Outcome.NXDOMAIN and x.a.outcome is Outcome.NXDOMAIN
            and other.a.outcome is Outcome.NOERROR
        ):
            x = dataclasses.replace(x, a=dataclasses.replace(other.a, view=x.a.view))
        changed.append(x)
    return dataclasses.replace(ordered, exchangers=tuple(changed))


def _one(
    model: MtaModel,
    routes: dict[str, Route],
    reference: str | None,
    externals: Sequence[str],
    reachable: dict[str, bool],
    findings: Sequence[Finding],
    smtp: Sequence[SmtpProbe],
    applied: tuple[str, ...],
    stub: StubWait | None = None,
) -> Verdict:
    view = reference
    if model.uses_external_view and externals:
        view = externals[0]
    if view is None:
        return Verdict(model.name, model.title, Decision.UNKNOWN, "", "no resolver view was probed",
                       knobs=applied, notes=model.notes)
    route = routes.get(view)
    if view == reference and model.order[0] == "A" and _A_FIRST in routes:
        route = routes[_A_FIRST]
    return evaluate(model, route, view=view, findings=findings, smtp=smtp,
                    view_reachable=reachable.get(view, True), knobs=applied, stub=stub)
