"""Every defer or bounce predicted on a recorded dnssec-* scenario names the findings it follows from,
also where the MX lookup itself fails on a bogus answer (no MX-specific finding then applies)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxdoctor import analysis, api, evidence, lab

EVIDENCE = sorted((Path(__file__).resolve().parent.parent / "data" / "evidence").glob("dnssec-*.json"))


@pytest.mark.parametrize("path", EVIDENCE, ids=lambda p: p.stem)
def test_every_defer_or_bounce_has_a_cause(path: Path) -> None:
    diagnosis = analysis.analyse(evidence.load(path))
    silent = [(v.mta, v.outcome.value, v.text) for v in diagnosis.verdicts
              if v.outcome.value in ("defer", "bounce") and not v.because]
    assert not silent


def test_a_bogus_nxdomain_for_the_mail_domain_is_the_cause_of_every_defer() -> None:
    # The MX question itself fails (the NXDOMAIN's proof does not validate): the defers name the DNSSEC
    # finding, as no MX-specific one applies.
    with lab.running("dnssec-nxdomain-bogus") as card:
        diagnosis = analysis.analyse(api.collect(card.domains[0], api.lab_options(card, timeout=0.5, deadline=20)))
    defers = [v for v in diagnosis.verdicts if v.outcome.value == "defer"]
    assert len(defers) == 6
    for v in defers:
        assert any(c.startswith("DNSSEC_") for c in v.because), (v.mta, v.because)
