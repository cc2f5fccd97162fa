"""The one exit policy: the same worst severity gives the same exit status from diagnose, audit,
smtp and queue, and the README's table is the policy that diagnosis.exit_status implements."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from mxdoctor import api
from mxdoctor.diagnosis import (
    SEVERITY_STATUS,
    Decision,
    Diagnosis,
    ExitStatus,
    Finding,
    Severity,
    exit_status,
)
from mxdoctor.queues import shape, status
from mxdoctor.queues.record import Malformed, Mta, QueuedMessage, Recipient

ROOT = Path(__file__).resolve().parent.parent
NOW = 1700100000.0


def finding(severity: Severity) -> Finding:
    return Finding("SOME_FACT", severity, "example.com.", "a fact", "a fact was seen")


def delivering(d: Diagnosis, severity: Severity) -> Diagnosis:
    """``d`` with every MTA delivering and one finding of ``severity``."""
    verdicts = tuple(dataclasses.replace(v, outcome=Decision.DELIVER) for v in d.verdicts)
    return dataclasses.replace(d, verdicts=verdicts, findings=(finding(severity),))


def queue_of(age_minutes: float) -> shape.Shape:
    rcpt = Recipient("a@x.example", "x.example", "connect to mx.x.example[192.0.2.1]:25: Connection timed out")
    msg = QueuedMessage(Mta.POSTFIX, "A1", "deferred", NOW - age_minutes * 60, 100, "s@example.org", (rcpt,),
                        None, None, 1)
    return shape.build([msg], now=NOW)


@pytest.mark.parametrize("severity", list(Severity))
def test_the_same_worst_severity_gives_the_same_exit_status_everywhere(severity: Severity) -> None:
    expected = int(SEVERITY_STATUS[severity])
    diagnosed = api.explain(ROOT / "tests" / "data" / "evidence" / "healthy.json")
    audited = api.explain(ROOT / "tests" / "audit" / "data" / "audit-edns-version.json")
    assert audited.evidence.command == "audit" and diagnosed.evidence.smtp
    assert delivering(diagnosed, severity).exit_code == expected
    assert delivering(audited, severity).exit_code == expected
    smtp = api.SmtpResult("example.com", diagnosed.evidence, (finding(severity),), None)
    assert smtp.exit_code == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [(1, ExitStatus.OK), (31, ExitStatus.WARNING), (5 * 60, ExitStatus.CRITICAL)],
    ids=["young", "past-warn-age", "past-crit-age"],
)
def test_queue_thresholds_are_severities_through_the_same_policy(age: float, expected: ExitStatus) -> None:
    q = queue_of(age)
    limits = status.Thresholds()
    found = status.severity(q, limits)
    assert int(status.evaluate(q, limits)) == int(exit_status([found] if found else [])) == expected
    assert found in (None, Severity.WARNING, Severity.CRITICAL)


def test_a_queue_with_nothing_readable_is_untested() -> None:
    q = shape.Shape(NOW)
    q.malformed = 1
    q.malformed_examples.append(Malformed(1, "not a record", "garbage"))
    assert not q.readable
    assert int(status.evaluate(q, status.Thresholds())) == ExitStatus.UNKNOWN


def test_outcomes_and_untested_come_before_severities() -> None:
    info = [Severity.INFO]
    assert exit_status(info, outcomes=[Decision.DELIVER, Decision.DEFER]) == ExitStatus.CRITICAL
    assert exit_status(info, outcomes=[Decision.BOUNCE, Decision.UNKNOWN]) == ExitStatus.CRITICAL
    assert exit_status(info, outcomes=[Decision.DELIVER, Decision.UNKNOWN]) == ExitStatus.UNKNOWN
    assert exit_status([Severity.CRITICAL], outcomes=[Decision.DEFER], untested=True) == ExitStatus.UNKNOWN
    assert exit_status([]) == ExitStatus.OK


def test_the_readme_table_is_the_policy() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Exit status: one policy for every command", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (\d) \| ([A-Z]+) \|$", section, re.M)
    by_severity = {}
    for what, code, name in rows:
        assert ExitStatus[name] == int(code), what
        m = re.match(r"an? `([A-Z]+)` finding", what)
        if m:
            by_severity[Severity(m.group(1))] = ExitStatus(int(code))
    assert by_severity == SEVERITY_STATUS
    outcomes = {what: int(code) for what, code, _ in rows if "MTA model" in what}
    assert outcomes == {
        "some MTA model defers or bounces the mail": exit_status([], outcomes=[Decision.DEFER]),
        "some MTA model could not be judged": exit_status([], outcomes=[Decision.UNKNOWN]),
    }
    assert rows[0][1] == str(int(exit_status([Severity.CRITICAL], outcomes=[Decision.DEFER], untested=True)))
