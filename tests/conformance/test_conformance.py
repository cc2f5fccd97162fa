"""Each real MTA against each lab scenario: its outcome equals mxdoctor's prediction and its logged text
carries the predicted text's DSN code and key words (docs/conformance.md shows the table)."""

from __future__ import annotations

import shutil

import pytest
from conformance_harness import (
    KNOB_CASES,
    KNOWN,
    MTAS,
    SCENARIOS,
    UNBOUND,
    VALIDATING_CASES,
    VALIDATING_SCENARIOS,
    compare_texts,
    missing_key_words,
    normalise,
    text_check,
    words,
)

from conftest import Table


def _param(case: tuple[str, str, str]) -> object:
    scenario, mta, knob = case
    name = f"{mta}-{scenario}" + (f"+{knob}" if knob else "")
    if case in KNOWN:
        return pytest.param(case, id=name, marks=[pytest.mark.xfail(reason=KNOWN[case], strict=True)])
    return pytest.param(case, id=name)


CASES = [_param((s, m, "")) for s in SCENARIOS for m in MTAS] + [_param(c) for c in KNOB_CASES]
CASES += [_param(c) for c in VALIDATING_CASES]  # behind a validating Unbound


@pytest.mark.conformance
@pytest.mark.root
@pytest.mark.parametrize("case", CASES)
def test_real_mta_matches_prediction(case: tuple[str, str, str], conformance_table: Table) -> None:
    if case[0] in VALIDATING_SCENARIOS and shutil.which(UNBOUND) is None:
        pytest.skip(f"the dnssec-* cases need Unbound ({UNBOUND}; apt-get install unbound)")
    r = conformance_table.result(case)
    assert not r.error, r.error
    assert r.real is not None
    where = f"{r.who} on {r.scenario}: real {r.real.outcome} {r.real.text!r} ({r.real.proof})"
    assert r.real.outcome == r.predicted_outcome, (
        f"{where}; predicted {r.predicted_outcome} {r.predicted_text!r}"
    )
    assert not r.missing_words, f"{where}; predicted text {r.predicted_text!r} lacks {r.missing_words}"


@pytest.mark.conformance
@pytest.mark.root
@pytest.mark.parametrize("case", CASES)
def test_real_log_text_equals_prediction(case: tuple[str, str, str], conformance_table: Table) -> None:
    r = conformance_table.result(case)
    assert not r.error, r.error
    check = text_check(r)
    if check is None:
        pytest.skip(f"predicted {r.predicted_outcome}: no log text to compare")
    assert check.same, (
        f"{r.who} on {r.scenario}: predicted {check.dsn} {check.predicted!r}, real {check.real!r} "
        f"(status {r.real.status if r.real else ''!r})"
    )


def test_texts_compare_normalised_wording_and_dsn() -> None:
    postfix = (
        "relay=none, delay=0.07, delays=0.05/0.01/0.01/0, dsn=5.4.4, status=bounced (Host or domain name not "
        "found. Name service error for name=mx1.example.com type=AAAA: Host not found)"
    )
    predicted = "5.4.4 Host or domain name not found. Name service error for name=mx9.example.org type=AAAA: "
    assert compare_texts(predicted + "Host not found", postfix, "5.4.4").same
    assert not compare_texts(predicted + "Host found but no data record of requested type", postfix).same
    assert not compare_texts("4.4.3" + predicted[5:] + "Host not found", postfix, "5.4.4").same
    refused = "dsn=4.4.1, status=deferred (connect to mx1.example.com[127.0.0.25]:25: Connection refused)"
    assert compare_texts("4.4.1 connect to mx1.example.com[127.0.0.25]:25: Connection refused", refused).same
    assert not compare_texts("4.4.1 connect to mx1.example.com[]:25: Connection refused", refused).same
    opensmtpd = 'relay="example.com" delay=11s result="TempFail" stat="Network error on destination MXs"'
    assert compare_texts("TempFail: Network error on destination MXs", opensmtpd).same
    assert normalise("relay=mx6.example.com. [IPv6:0:0:0:0:0:0:0:1], queued as 6BE3349F3FDC") == (
        "relay=<host> [<address>], queued as <qid>"
    )


def test_key_words_compare_codes_names_and_wording() -> None:
    postfix = (
        "relay=none, delay=0.1, dsn=4.4.3, status=deferred (Host or domain name not found. Name service "
        "error for name=mail.example.net type=AAAA: Host not found, try again)"
    )
    predicted = (
        "4.4.3 Host or domain name not found. Name service error for name=mail.example.net type=AAAA: "
        "Host not found, try again"
    )
    assert missing_key_words(predicted, postfix) == ()
    assert missing_key_words(predicted.replace("4.4.3", "5.4.4"), postfix) == ("5.4.4",)
    assert missing_key_words(predicted.replace("AAAA", "MX"), postfix) == ("mx",)
    assert (
        missing_key_words("delivers to mx6.example.com [::1]", "relay=mx6.example.com[::1]:25, status=sent")
        == ()
    )
    assert "mail.example.net" in words("Name server: mail.example.net.: host name lookup failure")
