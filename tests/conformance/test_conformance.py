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
    missing_key_words,
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
