"""DNSViz side by side with mxdoctor on every dnssec-* lab scenario (tests/dnssec/dnsviz_compare.py):
mxdoctor names every DNSSEC fault DNSViz names on the mail path; DNSViz validates from the lab's anchor
and asks only the lab's servers. The matcher itself is tested on made-up issues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dnsviz_compare as dc
import pytest

import mxdoctor.lab

NAMES = ["example.com.", "mail.example.net.", "_25._tcp.mail.example.net."]
ZONES = [".", "com.", "net.", "example.com.", "example.net."]
# The whole comparison takes about 40 s; a hung DNSViz must not hold the suite.
RUN_TIMEOUT = 300


def _issue(code: str, qname: str = "", qtype: str = "", name: str = "", zone: str = "") -> dc.Issue:
    return dc.Issue(name or qname, "queries", code, "", "error", qname, qtype, zone)


def test_a_fault_dnsviz_names_on_the_path_and_mxdoctor_does_not_is_a_miss() -> None:
    expired = _issue("EXPIRATION_IN_PAST", "mail.example.net.", "A", zone="example.net.")
    named = [{"code": "DNSSEC_RRSIG_EXPIRED", "severity": "ERROR", "subject": "example.net. mail.example.net. A"}]
    assert dc.judge([expired], NAMES, ZONES, named)[0].matched_by == "DNSSEC_RRSIG_EXPIRED"
    # The same finding for another zone, or another fault for this zone, does not name it.
    other_zone = [{**named[0], "subject": "example.com. example.com. MX"}]
    assert dc.judge([expired], NAMES, ZONES, other_zone)[0].matched_by == ""
    other_fault = [{**named[0], "code": "DNSSEC_RRSIG_MISSING"}]
    (judged,) = dc.judge([expired], NAMES, ZONES, other_fault)
    assert judged.on_path and judged.matched_by == ""
    row = dc.Row("x", NAMES, on_path=[{"code": "EXPIRATION_IN_PAST", "at": "mail.example.net. A", "matched_by": ""}])
    assert row.missed and row.outcome.startswith("mismatch: mxdoctor misses EXPIRATION_IN_PAST")


def test_dnsviz_reports_off_the_mail_path_are_not_counted() -> None:
    issues = [
        _issue("SNAME_NOT_COVERED", "_tcp.mail.example.net.", "NS"),  # DNSViz's own ancestor query
        _issue("NO_NSEC_MATCHING_SNAME", "example.com.", "TXT"),  # a type no MTA asks
        _issue("NS_NAME_PRIVATE_IP", name="example.net."),  # the lab lives on loopback
        _issue("NO_SEP", name="example.org."),  # a zone the route does not pass
    ]
    judged = dc.judge(issues, NAMES, [*ZONES, "example.org."], [])
    assert [j.on_path for j in judged] == [False, False, False, False]
    assert "loopback" in judged[2].reason
    # A zone the route passes is on it, and an unknown code on the path counts as a miss.
    (j,) = dc.judge([_issue("SOME_NEW_DNSVIZ_ERROR", name="example.net.")], NAMES, ZONES, [])
    assert j.on_path and not j.matched_by


def test_grok_walk_finds_errors_at_every_depth() -> None:
    doc = {
        "mail.example.net.": {"queries": {"mail.example.net./IN/A": {"answer": [{"id": "mail.example.net./IN/A",
            "rrsig": [{"id": "example.net./13/4711", "errors": [{"code": "EXPIRATION_IN_PAST"}]}]}]},
            "_25._tcp.mail.example.net./IN/TLSA": {"error": [{"code": "INVALID_RCODE"}]}}},
        "example.net.": {"delegation": {"errors": [{"code": "NO_SEP"}]}, "zone": {"warnings": [{"code": "W"}]}},
    }
    found = {(i.code, i.qname, i.qtype, i.zone, i.level) for i in dc.walk_grok(doc)}
    assert found == {("EXPIRATION_IN_PAST", "mail.example.net.", "A", "example.net.", "error"),
                     ("INVALID_RCODE", "_25._tcp.mail.example.net.", "TLSA", "", "error"),
                     ("NO_SEP", "", "", "", "error"), ("W", "", "", "", "warning")}


def test_docs_table_covers_every_dnssec_scenario() -> None:
    text = dc.DOCS.read_text(encoding="utf-8")
    section = text.split(dc.BEGIN, 1)[1].split(dc.END, 1)[0]
    for name in dc.scenarios():
        assert f"| `{name}` |" in section, name


def _skip_reason() -> str | None:
    if not dc.DNSVIZ.exists():
        return f"DNSViz not installed ({dc.DNSVIZ}; pip install -e '.[dnsviz]')"
    if os.geteuid() != 0:
        return "needs root: the comparison runs in a network namespace of its own (unshare --net)"
    return None


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    keep = tmp_path_factory.mktemp("dnsviz")
    out = subprocess.run([sys.executable, str(Path(dc.__file__)), "--json", "--keep", str(keep)],
                         capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    assert out.returncode == 0, out.stderr[-4000:]
    yield json.loads(out.stdout)


@pytest.mark.dnsviz
@pytest.mark.root
def test_mxdoctor_names_every_fault_dnsviz_names_on_the_mail_path(rows: list[dict[str, Any]]) -> None:
    assert sorted(r["scenario"] for r in rows) == dc.scenarios()
    missed = {r["scenario"]: r["missed"] for r in rows if r["missed"]}
    assert not missed


@pytest.mark.dnsviz
@pytest.mark.root
def test_dnsviz_validates_from_the_lab_anchor_and_finds_the_faults(rows: list[dict[str, Any]]) -> None:
    by = {r["scenario"]: r for r in rows}
    # A trust anchor DNSViz did not take would grade everything INSECURE.
    for healthy in ("dnssec-healthy", "dnssec-nsec3"):
        assert by[healthy]["statuses"]["mail.example.net. A"] == "SECURE"
        assert by[healthy]["statuses"]["example.com. MX"] == "SECURE"
        assert not by[healthy]["on_path"]
    assert by["dnssec-expired"]["statuses"]["mail.example.net. A"] == "BOGUS"
    assert {i["code"] for i in by["dnssec-expired"]["on_path"]} == {"EXPIRATION_IN_PAST"}
    assert by["dnssec-unsupported-algorithm"]["statuses"]["mail.example.net. A"] == "INSECURE"
    bogus = mxdoctor.lab.load("dnssec-missing-rrsig").expect.findings
    assert "DNSSEC_RRSIG_MISSING" in bogus
    assert {i["code"] for i in by["dnssec-missing-rrsig"]["on_path"]} == {"MISSING_RRSIG"}


@pytest.mark.dnsviz
@pytest.mark.root
def test_dnsviz_asked_only_loopback(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        assert r["addresses"], r["scenario"]
        assert all(a.startswith("127.") or a == "::1" for a in r["addresses"]), (r["scenario"], r["addresses"])
