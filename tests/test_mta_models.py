"""One place to touch for a new MTA: a model added to ``mta.models.MODELS`` is known everywhere MTA
names are listed (verdicts, the --mta check, lab scenario verdicts, docs), with its sources beside it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mxdoctor import analysis, api, errors
from mxdoctor.lab import scenario
from mxdoctor.mta import models
from mxdoctor.report import catalogue

DATA = Path(__file__).parent / "data" / "evidence"


def _healthy_with(verdict: str) -> str:
    """The built-in healthy scenario with one more expected verdict."""
    text = (scenario.scenarios_dir() / "healthy.toml").read_text(encoding="utf-8")
    assert "[expect.verdicts]\n" in text
    return text.replace("[expect.verdicts]\n", f"[expect.verdicts]\n{verdict}\n")

QMAIL = dataclasses.replace(
    models.POSTFIX,
    name="qmail",
    title="qmail 1.03",
    sources=(models.Source("QM-dns", "qmail dns.c: any address found wins"),),
    knobs=(),
)


@pytest.fixture
def with_qmail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.MODELS, QMAIL.name, QMAIL)
    # names derived once at import are derived again, as a fresh process would
    monkeypatch.setattr(scenario, "MTAS", tuple(models.MODELS))


def test_the_scenario_verdict_names_are_the_models() -> None:
    assert scenario.MTAS == tuple(models.MODELS)


@pytest.mark.usefixtures("with_qmail")
def test_a_new_model_is_known_everywhere_mta_names_are_listed() -> None:
    d = api.explain(DATA / "aaaa-servfail.json")
    assert "qmail" in {v.mta for v in d.verdicts}
    assert analysis.check_mtas(["qmail"]) == ["qmail"]
    doc = catalogue.models_markdown()
    assert "## `qmail` — qmail 1.03" in doc and "- **QM-dns**: qmail dns.c" in doc
    sc = scenario.parse(_healthy_with('qmail = "deliver"'), source="qmail", name="qmail")
    assert sc.expect.verdicts["qmail"] == "deliver"


def test_an_mta_without_a_model_is_refused_in_a_scenario() -> None:
    with pytest.raises(errors.ScenarioError, match="unknown MTA"):
        scenario.parse(_healthy_with('qmail = "deliver"'), source="qmail", name="qmail")


def test_every_source_a_model_cites_has_one_text() -> None:
    cited = models.sources()
    for m in models.MODELS.values():
        assert m.sources, m.name
        for src in m.sources:
            assert cited[src.key] == src.text and src.text


def test_a_source_key_cited_with_two_texts_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    clash = dataclasses.replace(QMAIL, sources=(models.Source("CONFORMANCE", "something else"),))
    monkeypatch.setitem(models.MODELS, clash.name, clash)
    with pytest.raises(ValueError, match="CONFORMANCE"):
        models.sources()
