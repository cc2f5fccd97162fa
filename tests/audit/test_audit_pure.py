"""The pure parts of the audit: probe names, empty non-terminals, dig commands, owner zones."""

from __future__ import annotations

import subprocess

import pytest

from mxdoctor import evidence
from mxdoctor.audit import probes, run
from mxdoctor.checks import _registry
from mxdoctor.checks import audit as audit_checks
from mxdoctor.dns import exchange, probeset
from mxdoctor.evidence import Outcome, Transport


def test_mixed_case_alternates_letters_only() -> None:
    assert probes.mixed_case("mx-1.example.com.") == "Mx-1.ExAmPlE.cOm."
    assert probes.mixed_case("1.2.") == "1.2."


@pytest.mark.parametrize(
    ("zone", "names", "ents"),
    [
        ("example.com.", ["example.com.", "mx1.example.com."], []),
        ("example.com.", ["mx1.mail.example.com."], ["mail.example.com."]),
        ("example.com.", ["a.b.c.example.com.", "x.c.example.com."], ["b.c.example.com.", "c.example.com."]),
        ("example.com.", ["mx.example.net."], []),
    ],
)
def test_empty_nonterminals_lie_strictly_between_zone_and_name(zone: str, names: list[str], ents: list[str]) -> None:
    assert probes.empty_nonterminals(zone, names) == ents


def test_every_probe_has_an_expectation_and_a_catalogued_finding() -> None:
    known = _registry.catalogue()
    for p in probeset.PROBES:
        assert p.expects and p.rfc.startswith("RFC")
        if p.dnssec:  # judged by the DNSSEC validation, each fault its own finding
            assert p.shape.do and p.name in probeset.WITHOUT_DO
            assert set(audit_checks.DNSSEC_SPECS.values()) <= set(known)
        else:
            assert audit_checks._FAILURE_SPECS[p.name] in known


@pytest.mark.parametrize("spec", probeset.PROBES, ids=lambda p: p.name)
def test_dig_commands_parse(spec: probeset.ProbeSpec) -> None:
    """dig accepts every reproduction command (sent to a closed port: only the parsing matters)."""
    cmd = probeset.dig_command(spec, "127.0.0.1", 9, "example.com.", spec.qtype) + " +time=1 +tries=1"
    proc = subprocess.run(cmd.split(), capture_output=True, text=True, timeout=10)
    assert "Invalid option" not in proc.stderr and "unknown option" not in proc.stderr.lower(), proc.stderr
    assert "example.com" in proc.stdout + proc.stderr


def test_owner_zone_is_the_deepest_enclosing_zone() -> None:
    zones = tuple(evidence.Zone(n, None) for n in (".", "com.", "example.com.", "sub.example.com."))
    assert run.owner_zone(zones, "mx.sub.example.com.").name == "sub.example.com."  # type: ignore[union-attr]
    assert run.owner_zone(zones, "example.com.").name == "example.com."  # type: ignore[union-attr]
    assert run.owner_zone(zones, "mail.example.org.").name == "."  # type: ignore[union-attr]


def _attempts(shape: exchange.QueryShape, outcomes: list[Outcome]) -> list[tuple[int, str, str | None]]:
    plan = exchange.ShapedPlan(shape)
    seen = []
    for outcome in outcomes:
        attempt = plan.next()
        if attempt is None:
            break
        seen.append((attempt.number, attempt.transport.value, attempt.workaround))
        plan.give(exchange.AttemptResult(outcome, truncated=True))
    assert plan.next() is None
    return seen


def test_a_shaped_query_is_resent_once_on_udp_silence_and_never_worked_around() -> None:
    udp, tcp = exchange.QueryShape(), exchange.QueryShape(transport=Transport.TCP)
    timeout = Outcome.TIMEOUT
    assert _attempts(udp, [timeout, timeout, timeout]) == [(1, "udp", None), (2, "udp", "RetryOnTimeout")]
    # no TCP on truncation, no EDNS fallback on FORMERR: the probe wants the server's own answer
    assert _attempts(exchange.QueryShape(edns=1), [Outcome.FORMERR, timeout]) == [(1, "udp", None)]
    assert _attempts(tcp, [timeout, timeout]) == [(1, "tcp", None)]
