"""The rendering layer: one registry keyed by (kind, format), one JSON encoder whose documents match
docs/json.md, ``--format``/``--json``/``--output`` on every command, and Markdown that shows untrusted
text as written."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO

import pytest

from mxdoctor import analysis, api, cli, evidence, report
from mxdoctor.errors import ConfigError
from mxdoctor.report import Kind, _registry, markdown

ROOT = Path(__file__).resolve().parent.parent
EVIDENCE = ROOT / "tests" / "data" / "evidence"
AUDITED = ROOT / "tests" / "audit" / "data"  # evidence recorded by ``mxdoctor audit``


def test_every_kind_has_text_and_json_and_the_extra_formats_are_registered() -> None:
    for kind in Kind:
        assert report.formats(kind)[0] == "text" and "json" in report.formats(kind), kind
    assert "markdown" in report.formats(Kind.DIAGNOSIS) and "markdown" in report.formats(Kind.AUDIT)
    assert "nagios" in report.formats(Kind.QUEUE)
    with pytest.raises(ConfigError, match="--format html: no such output for smtp"):
        report.render(Kind.SMTP, "html", None, __import__("io").StringIO())
    with pytest.raises(ValueError, match="two renderers"):
        _registry.renderer(Kind.DIAGNOSIS, "text")(lambda result, out, options: None)


def test_a_new_format_is_one_registration_and_every_cli_offers_it(capsys: pytest.CaptureFixture[str]) -> None:
    @_registry.renderer(Kind.DIAGNOSIS, "codes")
    def codes(d: api.Diagnosis, out: IO[str], options: report.Options) -> None:
        out.write(" ".join(f.code for f in d.findings) + "\n")

    try:
        assert cli.main(["explain", str(EVIDENCE / "aaaa-servfail.json"), "--format", "codes"]) == 2
        assert capsys.readouterr().out.split()[0] == "AAAA_SERVFAIL"
    finally:
        del _registry.RENDERERS[(Kind.DIAGNOSIS, "codes")]


@pytest.mark.parametrize("path", [EVIDENCE / "aaaa-servfail.json", AUDITED / "audit-edns-version.json"],
                         ids=["diagnose", "audit"])
def test_json_alias_format_json_and_output_file_agree(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audited = path.parent == AUDITED
    code = cli.main(["explain", str(path), "--json"])
    alias = capsys.readouterr().out
    assert cli.main(["explain", str(path), "--format", "json"]) == code
    assert capsys.readouterr().out == alias
    out = tmp_path / "report.json"
    assert cli.main(["explain", str(path), "--format", "json", "--output", str(out)]) == code
    assert capsys.readouterr().out == "" and out.read_text(encoding="utf-8") == alias
    assert json.loads(alias)["exit_code"] == code
    assert json.loads(alias)["schema"] == ("mxdoctor.audit" if audited else "mxdoctor.diagnosis")


def test_output_to_an_unwritable_place_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no-such-dir" / "report.md"
    assert cli.main(["explain", str(EVIDENCE / "null-mx.json"), "--format", "markdown", "--output", str(target)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"mxdoctor: --output {target}: ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == [], "no half-written file is left behind"


def _documented(section: str) -> set[str]:
    """The members a table of docs/json.md lists under the heading that starts with ``section``."""
    text = (ROOT / "docs" / "json.md").read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return {m for row in re.findall(r"^\| `([^|]+)` \|", body, re.M) for m in re.findall(r"[a-z_]+", row)}


def test_diagnosis_json_has_exactly_the_documented_members() -> None:
    d = api.explain(EVIDENCE / "aaaa-servfail.json")
    doc = report.data(Kind.DIAGNOSIS, d)
    assert set(doc) == _documented("Top level")
    assert doc["version"] == "1.0"
    assert set(doc["verdicts"][0]) == _documented("`verdicts[]`")
    assert set(doc["findings"][0]) == _documented("`findings[]`")
    route = next(iter(doc["routes"].values()))
    assert set(route) == {"kind", "exchangers"}
    assert set(route["exchangers"][0]) == {"host", "preference", "implicit", "a", "aaaa", "addresses"}
    assert route["exchangers"][0]["aaaa"] == "SERVFAIL"
    assert doc["evidence"] == evidence.to_dict(d.evidence)


def test_one_encoder_round_trips_the_evidence_inside_a_report() -> None:
    d = api.explain(EVIDENCE / "multi-mx-partial.json")
    doc = json.loads(report.encode(report.data(Kind.DIAGNOSIS, d)))
    assert evidence.loads(json.dumps(doc["evidence"])) == d.evidence
    again = analysis.analyse(evidence.loads(json.dumps(doc["evidence"])))
    assert report.data(Kind.DIAGNOSIS, again) == report.data(Kind.DIAGNOSIS, d)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a | b", r"a \| b"),
        ("<script>alert(1)</script>", r"\<script\>alert(1)\</script\>"),
        ("**bold** _it_ [x](http://y)", r"\*\*bold\*\* \_it\_ \[x\](http://y)"),
        ("line one\nline two", "line one line two"),
    ],
)
def test_markdown_shows_untrusted_text_as_written(raw: str, shown: str) -> None:
    assert markdown.text(raw) == shown


@pytest.mark.parametrize(("raw", "shown"), [("abc", "`abc`"), ("a`b", "``a`b``"), ("`x`", "`` `x` ``")])
def test_markdown_code_spans_hold_backticks(raw: str, shown: str) -> None:
    assert markdown.code(raw) == shown


def test_markdown_diagnosis_has_the_report_s_sections(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["explain", str(EVIDENCE / "aaaa-servfail.json"), "--format", "markdown"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("# mxdoctor diagnose example.com\n")
    for heading in ("## Verdicts per MTA", "## Findings", "### ERROR `AAAA_SERVFAIL`", "## Resolution"):
        assert f"\n{heading}" in out, heading
    assert "| `sendmail` | **DEFER** |" in out and out.rstrip().endswith("Exit status 2.")
    assert cli.main(["explain", str(EVIDENCE / "aaaa-servfail.json"), "--format", "markdown", "--brief"]) == 2
    assert "## Resolution" not in capsys.readouterr().out


def test_markdown_audit_has_a_matrix_per_zone(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["explain", str(AUDITED / "audit-edns-version.json"), "--format", "markdown"])
    out = capsys.readouterr().out
    assert out.startswith("# mxdoctor audit ") and "\n## Zone " in out and "| probe |" in out
    assert "**FAIL**" in out and out.rstrip().endswith(f"Exit status {code}.")


def test_checks_catalogue_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["checks", "--markdown"]) == 0
    md = capsys.readouterr().out
    assert cli.main(["checks", "--format", "markdown"]) == 0
    assert capsys.readouterr().out == md == (ROOT / "docs" / "checks.md").read_text(encoding="utf-8")
    assert cli.main(["checks", "--json"]) == 0
    codes = [c["code"] for c in json.loads(capsys.readouterr().out)]
    assert "AAAA_SERVFAIL" in codes and "SMTP_NO_ADDRESS" in codes
