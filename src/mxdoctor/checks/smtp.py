"""SMTP findings: what each probed MX address answered at each stage, in the server's own words, and
which addresses were never probed because their DNS lookup failed. Reads ``Evidence.smtp`` only.
"""

from __future__ import annotations

from collections.abc import Iterable

from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import FindingSpec, Role, check, finding
from mxdoctor.diagnosis import Finding, Seen, Severity
from mxdoctor.evidence import Outcome, SmtpProbe, SmtpStage

# The view whose exchanger addresses were probed, as ``probe_evidence`` records it in Evidence.options.
SMTP_VIEW_OPTION = "smtp_view"

_SENDER_WAIT = (
    "Nothing to change on the sending side: the MTA keeps the mail queued and retries; if another MX "
    "address works it is used. To see the failure again: mxdoctor smtp {address} --port {port}"
)

SMTP_UNREACHABLE = finding(
    "SMTP_UNREACHABLE",
    Severity.ERROR,
    Role.SMTP,
    "SMTP server cannot be reached",
    "{host} at {address} port {port}: no SMTP conversation, the {stage} stage failed: {detail}.",
    "A sending MTA that cannot connect, or gets no valid greeting, treats the address as temporarily "
    "unusable: it tries the next address or MX host, and defers the mail when none works (RFC 5321 "
    "§5.1). A refused connection means nothing listens on the port or a firewall rejects it; a time-out "
    "means packets are dropped (firewall, routing, an IPv6 address that is not really served); a "
    "missing or garbled greeting means something other than an SMTP server answers, or it is overloaded.",
    sender=_SENDER_WAIT,
    receiver="Make the SMTP server listen on {address} port {port} and answer with a 220 greeting, or "
    "remove {address} from the address records of {host}; check firewalls for both IPv4 and IPv6.",
    rfcs=("RFC 5321 §5.1", "RFC 5321 §4.5.3.2"),
)
SMTP_GREETING_TEMPFAIL = finding(
    "SMTP_GREETING_TEMPFAIL",
    Severity.ERROR,
    Role.SMTP,
    "SMTP server greets with a temporary failure",
    "{host} at {address} port {port} greets with {code}: {reply}",
    "A 4xx greeting (usually 421) says the server will not take mail now: overloaded, rate limiting "
    "this client, or shutting down. Senders try the next address and defer the mail if all do the same.",
    sender="Wait and retry (the MTA does it by itself); if the server limits this sender, lower the "
    "connection rate to the domain. To see it again: mxdoctor smtp {address} --port {port}",
    receiver="Find why the server on {address} refuses sessions (load, connection limits, a policy "
    "service that is down) and restore the 220 greeting.",
    rfcs=("RFC 5321 §3.1", "RFC 5321 §4.2.5"),
)
SMTP_GREETING_REJECT = finding(
    "SMTP_GREETING_REJECT",
    Severity.ERROR,
    Role.SMTP,
    "SMTP server refuses every session",
    "{host} at {address} port {port} greets with {code}: {reply}",
    "A 554 greeting means the server accepts no mail from this client at all (often a block list of "
    "client addresses); a sending MTA moves to the next address and bounces or defers when none is left.",
    sender="Check whether the sending address is on a block list named in the reply; ask the receiver "
    "to accept it.",
    receiver="If {address} should take mail, remove the policy that answers 554 to every client, or "
    "the address from the records of {host}.",
    rfcs=("RFC 5321 §3.1", "RFC 5321 §4.3.2"),
)
SMTP_EHLO_FAILED = finding(
    "SMTP_EHLO_FAILED",
    Severity.ERROR,
    Role.SMTP,
    "SMTP server refuses the client's hello",
    "{host} at {address} port {port}: {stage} failed: {detail}",
    "Without an accepted EHLO or HELO there is no mail transaction. Servers refuse a hello name that "
    "is not a fully qualified domain name, or one that does not resolve, or close the session under load.",
    sender="Make the MTA announce a fully qualified host name that resolves (Postfix smtp_helo_name, "
    "Exim helo_data); try: mxdoctor smtp {address} --port {port} --helo <your MTA's name>",
    receiver="Check the hello restrictions of the server on {address} (the reply names the rule).",
    rfcs=("RFC 5321 §4.1.1.1", "RFC 5321 §4.1.4"),
)
STARTTLS_FAILED = finding(
    "STARTTLS_FAILED",
    Severity.WARNING,
    Role.SMTP,
    "STARTTLS is offered but fails",
    "{host} at {address} port {port} offers STARTTLS but it fails: {detail}",
    "Opportunistic senders (Postfix and Exim by default) retry the address without TLS, so mail still "
    "flows, in clear text; senders that require TLS (MTA-STS, DANE, smtp_tls_security_level=encrypt) "
    "defer the mail.",
    sender="Nothing for opportunistic TLS; a policy that requires TLS for this domain will defer until "
    "the receiver fixes it. To probe the rest of the session in clear text: mxdoctor smtp {address} "
    "--port {port} --no-starttls",
    receiver="Fix the TLS set-up of the server on {address}: certificate and key files readable, "
    "protocol versions and ciphers a current client accepts.",
    rfcs=("RFC 3207", "RFC 8461", "RFC 7672"),
)
TLS_CERT_MISMATCH = finding(
    "TLS_CERT_MISMATCH",
    Severity.WARNING,
    Role.TLS,
    "TLS certificate does not name the MX host",
    "The certificate of {host} at {address} port {port} does not name {host}: it names {detail}.",
    "Opportunistic senders do not check the name, so mail flows; senders that verify (MTA-STS in "
    "enforce mode, DANE with a PKIX usage, a policy per domain) refuse the certificate and defer the mail.",
    sender="Nothing for opportunistic TLS.",
    receiver="Install a certificate whose subjectAltName lists {host} on the server at {address}.",
    rfcs=("RFC 6125 §6.4", "RFC 8461 §4.2", "RFC 7672 §3.2.3"),
)
TLS_CERT_EXPIRED = finding(
    "TLS_CERT_EXPIRED",
    Severity.WARNING,
    Role.TLS,
    "TLS certificate has expired",
    "The certificate of {host} at {address} port {port} expired on {detail}.",
    "Opportunistic senders ignore the expiry; senders that verify (MTA-STS enforce, DANE-TA, a "
    "verifying policy) defer the mail.",
    sender="Nothing for opportunistic TLS.",
    receiver="Renew the certificate of the server at {address} and reload it.",
    rfcs=("RFC 5280 §4.1.2.5", "RFC 8461 §4.2"),
)
TLS_CERT_UNVERIFIED = finding(
    "TLS_CERT_UNVERIFIED",
    Severity.NOTICE,
    Role.TLS,
    "TLS certificate chain cannot be verified",
    "The certificate chain of {host} at {address} port {port} does not verify: {detail}.",
    "Most MX hosts are reached with opportunistic TLS, where a self-signed or incomplete chain is "
    "accepted; MTA-STS in enforce mode needs a chain to a public root (DANE does not).",
    sender="Nothing for opportunistic TLS.",
    receiver="If the domain publishes MTA-STS, serve a certificate chain to a public root on {address}, "
    "including the intermediate certificates.",
    rfcs=("RFC 8461 §4.2", "RFC 5280 §6"),
)
MAIL_FROM_REFUSED = finding(
    "MAIL_FROM_REFUSED",
    Severity.WARNING,
    Role.SMTP_ENVELOPE,
    "SMTP server refuses the probe's sender",
    "{host} at {address} port {port} answers MAIL FROM with {code}: {reply}",
    "The sender address of the probe was refused, so RCPT was not tried. The reason may be the probe's "
    "own sender (a domain that does not resolve): choose another with --mail-from.",
    sender="Probe again with the sender your MTA really uses: mxdoctor smtp {address} --mail-from <it> "
    "--rcpt <a recipient>",
    receiver="Check the sender restrictions of the server on {address}.",
    rfcs=("RFC 5321 §3.3", "RFC 5321 §4.2.2"),
)
RCPT_REJECTED = finding(
    "RCPT_REJECTED",
    Severity.ERROR,
    Role.SMTP_ENVELOPE,
    "SMTP server rejects the recipient",
    "{host} at {address} port {port} rejects the recipient with {code}: {reply}",
    "A 5xx reply to RCPT TO is permanent: the sending MTA bounces the mail for this recipient.",
    sender="Check the recipient address; if it is right, the receiver must accept it.",
    receiver="Make the server on {address} accept the recipient (mailbox, alias, relay_domains or "
    "transport maps, recipient verification).",
    rfcs=("RFC 5321 §4.2.2", "RFC 3463"),
)
RCPT_TEMPFAIL = finding(
    "RCPT_TEMPFAIL",
    Severity.WARNING,
    Role.SMTP_ENVELOPE,
    "SMTP server defers the recipient",
    "{host} at {address} port {port} defers the recipient with {code}: {reply}",
    "A 4xx reply to RCPT TO (greylisting, a recipient check that cannot be done now, a full mailbox) "
    "makes the sending MTA keep the mail and retry; greylisting passes on a later retry.",
    sender="Let the MTA retry; greylisting accepts the mail after a few minutes.",
    receiver="If it lasts, check the recipient verification or policy service behind {address}.",
    rfcs=("RFC 5321 §4.2.5", "RFC 6647"),
)
SMTP_OK = finding(
    "SMTP_OK",
    Severity.INFO,
    Role.POSITIVE,
    "SMTP server answers",
    "{host} at {address} port {port} answers: {detail}.",
    "Every stage of the probe passed: the address accepts SMTP sessions.",
    rfcs=("RFC 5321",),
)
SMTP_ADDRESS_NOT_PROBED = finding(
    "SMTP_ADDRESS_NOT_PROBED",
    Severity.NOTICE,
    Role.UNTESTED,
    "An address family of an MX host was never probed",
    "No {qtype} address of {host} was probed: its {qtype} lookup in view {view} ended in {rcode}.",
    "The SMTP probe reaches only the addresses the DNS gave; when the address lookup fails the "
    "family is not 'down', it was never learnt, and the DNS finding about that lookup is the cause.",
    sender="See the DNS findings for {host} {qtype}.",
    receiver="Fix the {qtype} lookup of {host} (see the DNS findings); then probe again.",
    rfcs=("RFC 5321 §5.1",),
)

_QUIET = ("rset", "quit")  # a failed goodbye is no fault of delivery


def _where(p: SmtpProbe) -> str:
    return f"[{p.address}]:{p.port}" if ":" in p.address else f"{p.address}:{p.port}"


def _host(p: SmtpProbe) -> str:
    return p.host.rstrip(".")


def _stage(p: SmtpProbe, name: str) -> SmtpStage | None:
    return next((s for s in reversed(p.stages) if s.stage == name), None)


def _reply(s: SmtpStage) -> str:
    return (s.text or s.error or "").replace("\n", " / ")


def _emit(spec: FindingSpec, p: SmtpProbe, s: SmtpStage | None, detail: str = "") -> Finding:
    """One finding about one probed address, with the stage that shows it and the server's words."""
    code = str(s.code) if s is not None and s.code is not None else "no reply"
    reply = _reply(s) if s is not None else ""
    return spec.emit(
        f"{_host(p)} {_where(p)}",
        seen=[Seen("smtp", _where(p), s.stage if s is not None else None)],
        host=_host(p),
        address=p.address,
        port=str(p.port),
        stage=s.stage if s is not None else "",
        code=code,
        reply=reply,
        detail=detail or (s.error if s is not None and s.error else reply) or "failed",
    )


def _failure(p: SmtpProbe) -> Finding | None:
    """The finding for the first stage that failed, or None when the conversation went through."""
    helo = _stage(p, "helo")
    for s in p.stages:
        if s.ok or s.stage in _QUIET:
            continue
        if s.stage == "greeting" and s.code is not None and 400 <= s.code < 600:
            return _emit(SMTP_GREETING_TEMPFAIL if s.code < 500 else SMTP_GREETING_REJECT, p, s)
        if s.stage in ("connect", "greeting"):
            return _emit(SMTP_UNREACHABLE, p, s)  # a greeting that is no SMTP greeting
        if s.stage == "ehlo" and helo is not None and helo.ok:
            continue  # EHLO refused, HELO accepted: an old server, but a working one
        if s.stage in ("ehlo", "helo", "ehlo-tls"):
            return _emit(SMTP_EHLO_FAILED, p, s)
        if s.stage == "starttls":
            return _emit(STARTTLS_FAILED, p, s)
        if s.stage == "mail":
            return _emit(MAIL_FROM_REFUSED, p, s)
        if s.stage == "rcpt":
            permanent = s.code is not None and 500 <= s.code < 600
            return _emit(RCPT_REJECTED if permanent else RCPT_TEMPFAIL, p, s)
        return _emit(SMTP_UNREACHABLE, p, s)  # a stage this module does not know yet
    return None


def _summary(p: SmtpProbe) -> str:
    parts = []
    for s in p.stages:
        if s.stage == "greeting":
            parts.append(f"greeting {s.code}")
        elif s.stage in ("ehlo", "helo") and s.ok:
            parts.append(s.stage.upper())
        elif s.stage == "starttls" and p.tls is not None:
            parts.append(f"STARTTLS {p.tls.protocol or ''}".strip())
        elif s.stage == "rcpt":
            parts.append(f"RCPT {s.code}")
    return ", ".join(parts)


@check(
    SMTP_UNREACHABLE, SMTP_GREETING_TEMPFAIL, SMTP_GREETING_REJECT, SMTP_EHLO_FAILED, STARTTLS_FAILED,
    MAIL_FROM_REFUSED, RCPT_REJECTED, RCPT_TEMPFAIL, SMTP_OK,
)
def smtp_stages(ctx: Context) -> Iterable[Finding]:
    for p in ctx.evidence.smtp:
        failed = _failure(p)
        yield failed if failed is not None else _emit(SMTP_OK, p, None, detail=_summary(p))


@check(TLS_CERT_MISMATCH, TLS_CERT_EXPIRED, TLS_CERT_UNVERIFIED)
def smtp_certificates(ctx: Context) -> Iterable[Finding]:
    for p in ctx.evidence.smtp:
        tls = p.tls
        if tls is None or tls.subject is None:
            continue
        if tls.matches_host is False:
            names = ", ".join(tls.sans) or tls.subject
            yield _emit(TLS_CERT_MISMATCH, p, None, detail=names)
        if tls.expired:
            yield _emit(TLS_CERT_EXPIRED, p, None, detail=tls.not_after or "an unknown date")
        elif tls.verify_error:
            yield _emit(TLS_CERT_UNVERIFIED, p, None, detail=tls.verify_error)


@check(SMTP_ADDRESS_NOT_PROBED)
def smtp_addresses_not_learnt(ctx: Context) -> Iterable[Finding]:
    """Ties the probe to the DNS: an exchanger family whose lookup failed was never probed."""
    view = ctx.evidence.options.get(SMTP_VIEW_OPTION)
    if view is None or view not in ctx.routes:
        return
    for x in ctx.routes[view].exchangers:
        for qtype in ("A", "AAAA"):
            lk = x.lookup(qtype)
            if lk is None or not lk.outcome.is_failure:
                continue
            rcode = lk.rcode if lk.outcome is Outcome.OTHER_RCODE and lk.rcode else lk.outcome.value
            yield SMTP_ADDRESS_NOT_PROBED.emit(
                f"{x.host} {qtype}",
                seen=[Seen(view, None, rcode)],
                exchanges=lk.exchanges,
                host=x.host.rstrip("."),
                qtype=qtype,
                view=view,
                rcode=rcode,
            )
