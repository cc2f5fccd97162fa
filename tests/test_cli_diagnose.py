"""The diagnose, explain and checks commands at the edge: bad input, unreachable resolvers, docs in step."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mxdoctor import cli
from mxdoctor.checks import _registry as registry
from mxdoctor.diagnosis import Severity
from mxdoctor.mta.models import MODELS
from mxdoctor.report import catalogue

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mxdoctor.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    "target",
    ["", "a..b", "x" * 300, "user@", "192.0.2.1", "exa\x01mple.com", "[::1]", "-x-.example"],
    ids=["empty", "empty-label", "300-chars", "no-domain", "ip-address", "control-char", "ipv6", "bad-label"],
)
def test_bad_targets_give_one_line_and_exit_3(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["diagnose", "--no-system", "--no-authoritative", "--", target])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith("mxdoctor: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_unreachable_resolver_is_a_finding_and_unknown_not_a_hang() -> None:
    start = time.monotonic()
    proc = run("diagnose", "example.com", "--resolver", "127.0.0.254:9", "--no-authoritative",
               "--timeout", "0.3", "--json")
    assert time.monotonic() - start < 15
    assert proc.returncode == 3, proc.stderr
    out = json.loads(proc.stdout)
    assert out["schema"] == "mxdoctor.diagnosis"
    assert {v["outcome"] for v in out["verdicts"]} == {"unknown"}
    assert "RESOLVER_UNREACHABLE" in {f["code"] for f in out["findings"]}


@pytest.mark.parametrize("content", ["", "not json", '{"schema": "other"}',
                                     '{"schema": "mxdoctor.evidence", "version": "9.0"}',
                                     '{"schema": "mxdoctor.evidence", "version": "1.0", "target": 3}'])
def test_explain_rejects_bad_evidence_in_one_line(tmp_path: Path, content: str) -> None:
    f = tmp_path / "ev.json"
    f.write_text(content)
    proc = run("explain", str(f))
    assert proc.returncode == 3
    assert proc.stderr.startswith("mxdoctor: ") and proc.stderr.count("\n") == 1, proc.stderr


def test_explain_missing_file(tmp_path: Path) -> None:
    proc = run("explain", str(tmp_path / "nope.json"))
    assert proc.returncode == 3 and "No such file" in proc.stderr


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--mta", "qmail"], f"unknown MTA model 'qmail' (known: {', '.join(MODELS)})"),
        (["--knob", "postfix:nonsense"], "--knob postfix:nonsense: postfix has no knob 'nonsense' (known: "),
        (["--knob", "qmail:x"], "--knob 'qmail:x': expected MTA:KNOB with MTA one of "),
    ],
    ids=["mta", "knob", "knob-mta"],
)
def test_unknown_mta_and_knob_are_input_errors_before_any_traffic(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str], no_network: list[object]
) -> None:
    # The system view and the authoritative iteration stay on: without the check, the probe would
    # send queries (which no_network records and refuses) and print a diagnosis, not this line.
    code = cli.main(["diagnose", "example.com", *argv, "--timeout", "0.2", "--deadline", "2"])
    err = capsys.readouterr().err
    assert err.startswith(f"mxdoctor: {error}") and err.count("\n") == 1, err
    assert code == 3
    assert no_network == []


def test_usage_errors_exit_3() -> None:
    proc = run("diagnose")
    assert proc.returncode == 3 and "required" in proc.stderr


def test_docs_checks_md_is_generated_from_the_registry() -> None:
    assert (ROOT / "docs" / "checks.md").read_text() == catalogue.markdown(), "run `make docs`"
    assert (ROOT / "docs" / "mta-behaviour.md").read_text() == catalogue.models_markdown(), "run `make docs`"


def test_catalogue_lint() -> None:
    specs = registry.catalogue()
    assert len({s.code for s in specs}) == len(specs)
    for s in specs:
        assert s.explanation and s.title and s.message and s.family, s.code
        assert s.rfcs, f"{s.code} cites no RFC"
        if s.severity.rank >= Severity.WARNING.rank:
            assert s.sender and s.receiver, f"{s.code} lacks a remedy for one side"
    positive = [s for s in specs if s.severity is Severity.INFO]
    assert positive, "a positive code must exist"


def test_emit_without_a_template_argument_fails_loudly() -> None:
    spec = registry.spec("AAAA_SERVFAIL")
    with pytest.raises(KeyError):
        spec.emit("x. AAAA")


def test_demo_offers_no_command_for_the_lab_it_stopped() -> None:
    """The card demo prints names no port of a stopped lab to try, and no line of it is folded."""
    proc = run("demo", "healthy", "--no-color", timeout=120)
    assert proc.returncode == 0, proc.stderr
    head = proc.stdout.split("\n\n")[0].splitlines()
    assert not any(line.strip().startswith("try:") for line in head)
    assert head[-1].strip() == ("(this lab has stopped; `mxdoctor lab serve healthy` runs it and prints the "
                                "diagnose command to try)")
