"""Scenario table: diagnose every built-in lab scenario over real loopback servers and check the
mandatory and forbidden finding codes and every MTA verdict the scenario file states."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mxdoctor import analysis, api, diagnosis, evidence, lab, report
from mxdoctor.checks import _registry as registry
from mxdoctor.lab import scenario as scenario_mod

DATA = Path(__file__).parent / "data" / "evidence"
NAMES = scenario_mod.builtin_names()


def collect(card: lab.Card) -> evidence.Evidence:
    return api.collect(card.domains[0], api.lab_options(card, timeout=0.5, deadline=20.0, smtp=True))


def assert_expectations(sc: scenario_mod.Scenario, d: diagnosis.Diagnosis) -> None:
    codes = {f.code for f in d.findings}
    known = {s.code for s in registry.catalogue()}
    for code in (*sc.expect.findings, *sc.expect.forbidden):
        assert code in known, f"{sc.name}: expectation names unknown code {code}"
    missing = [c for c in sc.expect.findings if c not in codes]
    unwanted = [c for c in sc.expect.forbidden if c in codes]
    verdicts = {v.mta: v.outcome.value for v in d.verdicts}
    wrong = {m: (verdicts.get(m), want) for m, want in sc.expect.verdicts.items() if verdicts.get(m) != want}
    assert not missing and not unwanted and not wrong, (
        f"{sc.name}: missing {missing}, unwanted {unwanted}, verdicts (got, want) {wrong}; "
        f"found {sorted(codes)}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_diagnose_builtin_scenario(name: str) -> None:
    sc = scenario_mod.load(name)
    assert sc.expect.verdicts, f"{name}: the scenario states no verdicts"
    with lab.running(sc) as card:
        ev = collect(card)
    d = analysis.analyse(ev)
    if os.environ.get("MXDOCTOR_RECORD"):
        (DATA / f"{name}.json").write_text(evidence.dumps(ev) + "\n", encoding="utf-8")
    assert_expectations(sc, d)
    # The evidence and the JSON diagnosis survive a round trip unchanged.
    assert evidence.loads(evidence.dumps(ev)) == ev
    again = analysis.analyse(evidence.loads(evidence.dumps(ev)))
    assert report.data(report.Kind.DIAGNOSIS, again) == report.data(report.Kind.DIAGNOSIS, d)


@pytest.mark.parametrize("path", sorted(DATA.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_evidence_replays_offline(path: Path) -> None:
    """Pure analysis: recorded lab evidence gives the scenario's expected diagnosis with no network."""
    sc = scenario_mod.load(path.stem)
    d = api.explain(path)
    assert_expectations(sc, d)


def test_edns_dropping_servers_are_the_root_cause_not_the_resolver() -> None:
    with lab.running("edns-dropped") as card:
        d = analysis.analyse(collect(card))
    top = d.root_causes()[0]
    assert top.code == "EDNS_DROPPED", [f.code for f in d.root_causes()]
    assert not top.remediation.receiver.startswith("Nothing")
    assert "RESOLVER_FAILS" not in {f.code for f in d.findings}
