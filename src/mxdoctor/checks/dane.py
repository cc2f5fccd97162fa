"""DANE for SMTP (RFC 7672): the TLSA records at _25._tcp.<exchanger> where the exchanger's zone is
signed, whether the resolvers the MTA uses can look them up, and whether the certificate chain each
SMTP probe saw matches them (``_dane``)."""

from __future__ import annotations

from collections.abc import Iterable

from mxdoctor.checks import _dane, dnssec
from mxdoctor.checks._common import outcome_text
from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import Role, check, finding
from mxdoctor.diagnosis import Finding, Seen, Severity
from mxdoctor.evidence import DNSSEC_KEYS_VIEW as KEYS
from mxdoctor.route import Question

_RFC = ("RFC 7672", "RFC 6698", "RFC 7671")

DANE_TLSA_MATCH = finding(
    "DANE_TLSA_MATCH", Severity.INFO, Role.POSITIVE, "Certificate matches the TLSA records (DANE)",
    "{host} publishes validated TLSA records and the certificate it presented on {address} matches: {detail}.",
    "MTAs that use DANE (Postfix with smtp_tls_security_level = dane; Exim by default, hosts_try_dane = *) "
    "deliver over authenticated TLS.",
    rfcs=_RFC,
)
DANE_TLSA_NO_MATCH = finding(
    "DANE_TLSA_NO_MATCH", Severity.ERROR, Role.TLS, "Certificate does not match the TLSA records (DANE)",
    "The certificate {host} presented on {address} matches none of its TLSA records ({records}): {detail}.",
    "A DANE-enabled MTA refuses the server: Postfix with smtp_tls_security_level = dane logs \"Server "
    "certificate not verified\" and defers; Exim, which does DANE by default behind a validating resolver, "
    "defers (\"Verification failed. The certificate differs.\"). MTAs without DANE deliver. Usually the "
    "certificate (or its key) changed and the TLSA record was not updated first.",
    sender="Nothing to change for most senders; a DANE sender that must deliver now can exempt the domain "
    "(Postfix: a smtp_tls_policy_maps entry \"{host} encrypt\"; Exim: hosts_try_dane = !{host} : *), "
    "never by turning DANE off for all.",
    receiver="The operator of {host} must publish TLSA records for the certificate it presents (3 1 1 of "
    "the current key), keeping the old one until caches expire when rolling (RFC 7671 §8.1).",
    rfcs=_RFC,
)
DANE_TLSA_LOOKUP_FAILED = finding(
    "DANE_TLSA_LOOKUP_FAILED", Severity.WARNING, Role.TLS, "TLSA lookup fails (DANE)",
    "The TLSA lookup {qname} fails ({rcode}) through {views}, while the exchanger's zone is signed.",
    "A DANE-enabled MTA cannot tell whether the server requires DANE and defers: Postfix logs \"TLSA lookup "
    "error for HOST:25\"; Exim, which does DANE by default, defers too (\"DANE error: tlsa lookup DEFER\"). "
    "MTAs without DANE deliver.",
    sender="Nothing to change for most senders; a DANE sender can exempt the domain while the receiver "
    "fixes the zone (Postfix: smtp_tls_policy_maps \"{host} encrypt\").",
    receiver="The DNS operator of {host} must answer TLSA queries for {qname}: NODATA (signed) when there is "
    "no record, never SERVFAIL or silence.",
    rfcs=_RFC,
)


def _tlsa_question(host: str) -> Question:
    return Question(f"_25._tcp.{host}", "TLSA")


@check(DANE_TLSA_MATCH, DANE_TLSA_NO_MATCH, DANE_TLSA_LOOKUP_FAILED)
def dane(ctx: Context) -> Iterable[Finding]:
    v = dnssec.validate(ctx)
    auth = ctx.authoritative
    route = ctx.reference_route()
    if v is None or auth is None or route is None:
        return
    for x in route.exchangers:
        q = _tlsa_question(x.host)
        host_signed = any(Question(x.host, t) in v.secure_answers for t in ("A", "AAAA"))
        if not host_signed:
            continue  # RFC 7672 §2.2.2: DANE applies only where the exchanger's address is secure
        truth = next((lk for lk in ctx.servers(KEYS, q) if lk.outcome.is_answer), None)
        failing = [view for view in ctx.recursive_views()
                   if (lk := ctx.summary(view, q)) is not None and lk.outcome.is_failure]
        if failing:
            first = ctx.summary(failing[0], q)
            assert first is not None
            yield DANE_TLSA_LOOKUP_FAILED.emit(
                str(q), seen=[Seen(view) for view in failing], qname=q.qname, host=x.host.rstrip("."),
                rcode=outcome_text(first), views=", ".join(failing))
        if truth is None or not truth.records or q not in v.secure_answers:
            continue
        try:
            records = [_dane.Tlsa.from_text(r) for r in truth.records]
        except ValueError:
            continue
        shown = "; ".join(truth.records)[:300]
        for probe in ctx.evidence.smtp:
            if probe.host.rstrip(".").lower() != x.host.rstrip(".").lower() or probe.tls is None:
                continue
            got = _dane.match(probe.tls.chain, records)
            spec = DANE_TLSA_MATCH if got.matched is not None else DANE_TLSA_NO_MATCH
            yield spec.emit(
                f"{x.host} {probe.address}", seen=[Seen("smtp", probe.address)], host=x.host.rstrip("."),
                address=probe.address, records=shown, detail=got.detail)
