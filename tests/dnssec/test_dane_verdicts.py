"""What the MTA models do with DANE over recorded lab evidence (pure, no network): Exim's DANE by default
and its hosts_require_dane, Postfix's dane level, and no DANE behind a resolver that does not validate
(the texts are those the real programs logged in the conformance suite)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mxdoctor import analysis, evidence
from mxdoctor.diagnosis import Verdict
from mxdoctor.evidence import Evidence

DATA = Path(__file__).parent.parent / "data" / "evidence"
REQUIRE = {"exim": ("hosts_require_dane=*",)}


def _verdicts(
    name: str, knobs: dict[str, tuple[str, ...]] | None = None, ev: Evidence | None = None
) -> dict[str, Verdict]:
    ev = ev or evidence.load(DATA / f"{name}.json")
    return {v.mta: v for v in analysis.analyse(ev, knobs=knobs).verdicts}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("dnssec-dane-insecure", "T=remote_smtp: DANE error: mail.example.net lookup not DNSSEC"),
        ("dnssec-healthy", "T=remote_smtp: DANE error: tlsa lookup FAIL"),
    ],
)
def test_exim_with_dane_required_fails_an_exchanger_without_secure_tlsa_at_once(name: str, text: str) -> None:
    plain = _verdicts(name)
    assert plain["exim"].outcome.value == "deliver"
    required = _verdicts(name, REQUIRE)["exim"]
    assert (required.outcome.value, required.text) == ("bounce", text)


def test_a_tlsa_record_in_an_unsigned_zone_is_ignored_by_dane_clients() -> None:
    verdicts = _verdicts("dnssec-dane-insecure", {"postfix": ("smtp_tls_security_level=dane",)})
    assert {m: v.outcome.value for m, v in verdicts.items()} == dict.fromkeys(verdicts, "deliver")


def test_no_dane_behind_a_resolver_that_does_not_validate() -> None:
    ev = evidence.load(DATA / "dnssec-dane-stale.json")
    assert _verdicts("", ev=ev)["exim"].outcome.value == "defer"
    # The same answers without the AD bit from the resolver views: the MTA's resolver does not validate,
    # so its MTA never sees a secure TLSA record.
    recursive = {lk.view for lk in ev.lookups if lk.view not in ("authoritative", evidence.DNSSEC_KEYS_VIEW)}
    stripped = tuple(
        dataclasses.replace(x, flags=tuple(f for f in x.flags if f != "AD")) if x.view in recursive else x
        for x in ev.exchanges
    )
    d = analysis.analyse(dataclasses.replace(ev, exchanges=stripped))
    assert "DNSSEC_RESOLVER_NOT_VALIDATING" in {f.code for f in d.findings}
    assert {v.mta: v.outcome.value for v in d.verdicts}["exim"] == "deliver"
