"""MTA models over recorded lab evidence: knobs change outcomes exactly as the sources say. No network."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxdoctor import api
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
    assert v["sendmail"] == (Decision.DEFER, "Deferred: Name server: mail.example.net.: host name lookup failure")
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
    assert ex.because == ("AAAA_SERVFAIL",)


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
