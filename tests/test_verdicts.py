"""MTA models over recorded lab evidence: knobs change outcomes exactly as the sources say. No network."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mxdoctor import analysis, api, evidence
from mxdoctor.checks import _registry as registry
from mxdoctor.checks import address, mx, smtp
from mxdoctor.checks._registry import Role
from mxdoctor.diagnosis import Decision

DATA = Path(__file__).parent / "data" / "evidence"


def verdicts(name: str, **knobs: tuple[str, ...]) -> dict[str, tuple[Decision, str]]:
    d = api.explain(DATA / f"{name}.json", knobs=knobs)
    return {v.mta: (v.outcome, v.text) for v in d.verdicts}


def test_seed_case_texts() -> None:
    v = verdicts("aaaa-servfail")
    assert v["exchange2010"] == (
        Decision.DEFER, "451 4.4.0 DNS query failed. The error was: DNS query failed with error ServerFailure"
    )
    assert v["sendmail"] == (Decision.DEFER, "4.4.3 Deferred: Name server: mail.example.net.: host name lookup failure")
    assert v["postfix"][0] is Decision.DELIVER and "127.0.0.25" in v["postfix"][1]


@pytest.mark.parametrize(
    ("mta", "knobs", "outcome"),
    [
        ("sendmail", ("WorkAroundBrokenAAAA",), Decision.DELIVER),
        ("exchange2010", ("UseExternalDNSServersEnabled",), Decision.DELIVER),
        ("exchange2010", ("UseExternalDNSServersEnabled", "DnsFaultTolerance=Normal"), Decision.DEFER),
        ("exchange2010", ("DnsFaultTolerance=Normal",), Decision.DEFER),
        ("postfix", ("inet_protocols=ipv4",), Decision.DELIVER),
    ],
)
def test_knobs_change_the_seed_case(mta: str, knobs: tuple[str, ...], outcome: Decision) -> None:
    assert verdicts("aaaa-servfail", **{mta: knobs})[mta][0] is outcome


def test_alternatives_name_the_change_that_delivers() -> None:
    d = api.explain(DATA / "aaaa-servfail.json")
    ex = next(v for v in d.verdicts if v.mta == "exchange2010")
    assert [(a.knob, a.outcome) for a in ex.alternatives] == [("UseExternalDNSServersEnabled", Decision.DELIVER)]
    assert "Set-SendConnector" in ex.alternatives[0].how
    assert ex.because == (address.AAAA_SERVFAIL.code,)


def test_a_timeout_defers_exchange2013_but_a_servfail_does_not() -> None:
    # Through the lab resolver a dropped AAAA comes back as SERVFAIL: Exchange 2013 falls back to A.
    assert verdicts("aaaa-dropped")["exchange2013"][0] is Decision.DELIVER


@pytest.mark.parametrize(
    ("name", "outcome", "words"),
    [
        ("mx-servfail", Decision.DEFER, "type=MX: Host not found, try again"),
        ("domain-nxdomain", Decision.BOUNCE, "5.4.4"),
        ("null-mx", Decision.BOUNCE, "does not accept mail (nullMX)"),
        ("no-address", Decision.BOUNCE, "Host found but no data record of requested type"),
    ],
)
def test_postfix_texts(name: str, outcome: Decision, words: str) -> None:
    got = verdicts(name)["postfix"]
    assert got[0] is outcome and words in got[1], got


def test_every_verdict_carries_a_dsn_status_when_not_delivering() -> None:
    for path in sorted(DATA.glob("*.json")):
        for v in api.explain(path).verdicts:
            if v.outcome in (Decision.DEFER, Decision.BOUNCE):
                assert v.status[:1] == ("4" if v.outcome is Decision.DEFER else "5"), (path.stem, v)


def test_verdicts_name_their_causes_by_role_never_a_passing_or_untested_finding() -> None:
    for path in sorted(DATA.glob("*.json")):
        for v in api.explain(path).verdicts:
            if v.outcome in (Decision.DEFER, Decision.BOUNCE):
                roles = {registry.spec(code).role for code in v.because}
                assert not roles & {Role.POSITIVE, Role.UNTESTED}, (path.stem, v.mta, v.because)


def test_an_smtp_defer_is_blamed_on_the_failing_session_not_on_another_address_that_passes() -> None:
    """smtp-tempfail, plus a probe of some other address that greets: its SMTP_OK is no cause of the
    defer (the verdict once listed every SMTP_* code it saw)."""
    ev = evidence.loads((DATA / "smtp-tempfail.json").read_text(encoding="utf-8"))
    (tempfail,) = ev.smtp
    greets = dataclasses.replace(
        tempfail,
        address="127.0.0.99",
        stages=(evidence.SmtpStage("connect", True), evidence.SmtpStage("greeting", True, 220, "ready")),
    )
    d = analysis.analyse(dataclasses.replace(ev, smtp=(tempfail, greets)))
    assert smtp.SMTP_OK.code in {f.code for f in d.findings}
    postfix = next(v for v in d.verdicts if v.mta == "postfix")
    assert postfix.outcome is Decision.DEFER
    assert postfix.because == (smtp.SMTP_GREETING_TEMPFAIL.code,)


def test_every_finding_spec_has_a_role_and_the_roles_the_verdicts_read_are_populated() -> None:
    by_role: dict[Role, set[str]] = {}
    for spec in registry.catalogue():
        by_role.setdefault(spec.role, set()).add(spec.code)
    assert set(by_role) == set(Role)
    assert address.AAAA_SERVFAIL.code in by_role[Role.DNS_FAULT]
    assert mx.NULL_MX.code in by_role[Role.DOMAIN_PERMANENT]


def test_sendmail_delivers_over_ipv6_without_asking_a_and_asks_a_once_every_ipv6_connect_fails() -> None:
    """a-servfail-aaaa-ok: A answers SERVFAIL, AAAA ::1 accepts. Sendmail connects to the AAAA addresses
    before it asks A (daemon.c makeconnection); with ::1 refusing it asks A and tempfails on the SERVFAIL."""
    v = verdicts("a-servfail-aaaa-ok")
    assert v["sendmail"] == (Decision.DELIVER, "delivers to mx1.example.com [::1]")
    assert v["postfix"][0] is Decision.DELIVER and v["exchange2013"][0] is Decision.DEFER
    ev = evidence.loads((DATA / "a-servfail-aaaa-ok.json").read_text(encoding="utf-8"))
    refused = tuple(
        dataclasses.replace(p, stages=(evidence.SmtpStage("connect", False, error="Connection refused"),))
        if p.address == "::1" else p
        for p in ev.smtp
    )
    assert any(p.address == "::1" for p in refused)
    sendmail = next(v for v in analysis.analyse(dataclasses.replace(ev, smtp=refused)).verdicts if v.mta == "sendmail")
    assert (sendmail.outcome, sendmail.status) == (Decision.DEFER, "4.4.3")
    assert sendmail.text == "4.4.3 Deferred: Name server: mx1.example.com.: host name lookup failure"


@pytest.mark.parametrize(
    ("name", "mta", "text"),
    [
        # the texts the real programs logged (docs/conformance.md)
        ("mx-nxdomain", "postfix",
         "5.4.4 Host or domain name not found. Name service error for name=mx1.example.com type=AAAA: Host not found"),
        ("mx-nxdomain", "sendmail", "5.1.2 Host unknown (Name server: mx1.example.com.: host not found)"),
        ("no-mx", "exim", "Unrouteable address"),
        ("no-mx", "sendmail", "5.1.2 Host unknown (Name server: example.com: no data known)"),
        ("smtp-refused", "postfix", "4.4.1 connect to mx1.example.com[127.0.0.45]:25: Connection refused"),
        ("smtp-refused", "sendmail", "4.4.1 Deferred: Connection refused by mx1.example.com."),
        ("smtp-refused", "opensmtpd", "TempFail: Network error on destination MXs"),
        ("a-servfail-aaaa-refused", "postfix", "4.4.1 connect to mx1.example.com[::1]:25: Connection refused"),
        ("a-servfail-aaaa-refused", "sendmail",
         "4.4.3 Deferred: Name server: mx1.example.com.: host name lookup failure"),
    ],
)
def test_texts_as_the_real_programs_log_them(name: str, mta: str, text: str) -> None:
    assert verdicts(name)[mta][1] == text
