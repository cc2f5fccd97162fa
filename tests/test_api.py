"""The public API (``import mxdoctor``): every exported name exists and is documented, options are
typed and frozen, and the main calls work against the lab, as the CLI would make them."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import mxdoctor
from mxdoctor import api, lab
from mxdoctor.checks import smtp as smtp_codes
from mxdoctor.diagnosis import Decision
from mxdoctor.errors import ConfigError, InvalidTarget

DATA = Path(__file__).parent / "data"


def test_every_exported_name_exists_and_is_the_api_s() -> None:
    assert sorted(mxdoctor.__all__) == sorted([*api.__all__, "__version__"])
    for name in api.__all__:
        assert getattr(mxdoctor, name) is getattr(api, name), name
    with pytest.raises(AttributeError):
        _ = mxdoctor.no_such_name  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", api.__all__)
def test_every_exported_name_is_documented(name: str) -> None:
    obj = getattr(mxdoctor, name)
    doc = inspect.getdoc(obj) or ""
    # a dataclass without a docstring gets its signature as __doc__: that is no documentation
    assert doc and not doc.startswith(f"{obj.__name__}("), f"{name} has no docstring"


@pytest.mark.parametrize("name", [n for n in api.__all__ if inspect.isfunction(getattr(api, n))])
def test_functions_take_typed_arguments_only(name: str) -> None:
    sig = inspect.signature(getattr(api, name))
    for p in sig.parameters.values():
        assert p.kind is not inspect.Parameter.VAR_KEYWORD, f"{name}(**{p.name})"
        assert p.annotation not in ("Any", inspect.Parameter.empty), f"{name}({p.name}) is untyped"
        assert "Namespace" not in str(p.annotation), f"{name}({p.name}) takes argparse's Namespace"


@pytest.mark.parametrize("cls", [api.DiagnoseOptions, api.AuditOptions, api.SmtpOptions, api.ScanOptions])
def test_options_are_frozen_values(cls: type) -> None:
    options = cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout = 1.0
    assert options == cls()


def test_bad_input_raises_before_any_traffic(no_network: list[object]) -> None:
    with pytest.raises(ConfigError, match="qmail"):
        mxdoctor.diagnose("example.com", mtas=["qmail"])
    with pytest.raises(ConfigError, match="no knob 'nonsense'"):
        mxdoctor.diagnose("example.com", knobs={"postfix": ["nonsense"]})
    with pytest.raises(InvalidTarget):
        mxdoctor.diagnose("a..b")
    with pytest.raises(ConfigError, match="must be positive"):
        mxdoctor.audit("example.com", mxdoctor.AuditOptions(timeout=0))
    with pytest.raises(ConfigError, match="--port 0"):
        mxdoctor.probe_smtp("example.com", mxdoctor.SmtpOptions(port=0))
    with pytest.raises(ConfigError, match="--qps 1000 through the system resolver"):
        mxdoctor.scan(["example.com"], mxdoctor.ScanOptions(qps=1000))
    with pytest.raises(ConfigError, match="--concurrency"):
        mxdoctor.scan(["example.com"], mxdoctor.ScanOptions(resolvers=("127.0.0.1",), concurrency=0))
    assert no_network == []


@pytest.mark.parametrize("lab", ["aaaa-servfail"], indirect=True)
def test_diagnose_explain_audit_and_probe_smtp_against_the_lab(lab: lab.Card, tmp_path: Path) -> None:
    d = mxdoctor.diagnose(lab.domains[0], mxdoctor.lab_options(lab, timeout=0.5, deadline=20.0, smtp=True))
    outcomes = {v.mta: v.outcome for v in d.verdicts}
    assert outcomes["sendmail"] is Decision.DEFER and outcomes["postfix"] is Decision.DELIVER
    assert "AAAA_SERVFAIL" in {f.code for f in d.findings} and d.exit_code == 2
    assert d.evidence.smtp, "smtp=True probes the exchanger"

    saved = tmp_path / "ev.json"
    mxdoctor.save_evidence(d.evidence, saved)
    again = mxdoctor.explain(saved, mtas=["sendmail"], knobs={"sendmail": ["WorkAroundBrokenAAAA"]})
    (v,) = again.verdicts
    assert v.mta == "sendmail" and v.outcome is Decision.DELIVER and v.knobs == ("WorkAroundBrokenAAAA",)

    audited = mxdoctor.audit(lab.domains[0], mxdoctor.AuditOptions(root_hints=lab.root_hints,
                                                                    dns_port=lab.dns_port, timeout=0.5))
    assert audited.evidence.command == "audit" and audited.evidence.audit
    assert "AAAA_SERVFAIL" in {f.code for f in audited.findings} and audited.exit_code == 2

    smtp = mxdoctor.probe_smtp(lab.domains[0], mxdoctor.SmtpOptions(
        resolver=lab.resolver("internal").hostport, port=lab.smtp_port, timeout=2.0))
    assert [p.family for p in smtp.evidence.smtp] == [4]
    assert smtp_codes.SMTP_OK.code in {f.code for f in smtp.findings}


def test_read_queue_shapes_and_judges_a_listing() -> None:
    source = mxdoctor.queue_source(str(DATA / "queues" / "exchange2010-get-queue.csv"))
    report = mxdoctor.read_queue(source, limits=mxdoctor.Thresholds(crit_age=30 * 86400.0), now=1700100000.0)
    assert report.format == "exchange-csv" and report.exit_code == int(mxdoctor.ExitStatus.WARNING)
    assert [d.domain for d in report.shape.top(5)] == ["stuck.example"]
    with pytest.raises(mxdoctor.api.QueueError):
        mxdoctor.queue_source()


def test_demo_starts_the_lab_and_diagnoses_its_domain() -> None:
    result = mxdoctor.demo("mx-servfail")
    assert result.card.scenario == "mx-servfail"
    expected = lab.load("mx-servfail").expect
    assert {v.mta: v.outcome.value for v in result.diagnosis.verdicts}.items() >= expected.verdicts.items()


@pytest.mark.parametrize("name", ["audit", "scan"])
def test_mxdoctor_audit_is_the_function_even_when_the_subpackage_is_loaded_first(name: str) -> None:
    import subprocess
    import sys

    code = (f"import mxdoctor.{name}.run, mxdoctor; from mxdoctor.{name} import run; "
            f"print(callable(mxdoctor.{name}), run.__name__)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["True", f"mxdoctor.{name}.run"], out.stderr
