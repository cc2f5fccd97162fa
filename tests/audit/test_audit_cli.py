"""``mxdoctor audit`` from the command line: matrix at 80 columns, --json, --save-evidence read back by
``explain``, monitoring exit codes, bad input in one line, and the per-server limit on in-flight queries."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mxdoctor import cli, evidence, lab
from mxdoctor.audit import run
from mxdoctor.checks import address
from mxdoctor.dns import probeset
from mxdoctor.mta.models import MODELS

TIMEOUT = "0.3"


def audit_args(card: lab.Card, *extra: str) -> list[str]:
    return ["audit", card.domains[0], "--root-hints", card.root_hints, "--dns-port", str(card.dns_port),
            "--timeout", TIMEOUT, *extra]


@pytest.mark.parametrize(("scenario", "status"), [("healthy", 0), ("audit-edns-version", 1), ("aaaa-servfail", 2)])
def test_exit_status_follows_monitoring_conventions(
    scenario: str, status: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    with lab.running(scenario) as card:
        assert cli.main(audit_args(card)) == status
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    # dig commands are printed whole, to be copied; everything else fits 80 columns
    assert max(len(line) for line in out.splitlines() if not line.startswith("    dig ")) <= 80
    assert "Zone example.com." in out and "What it means for senders" in out and "opcode" in out


def test_json_and_saved_evidence_read_back_by_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "audit.json"
    with lab.running("aaaa-servfail") as card:
        status = cli.main(audit_args(card, "--json", "--save-evidence", str(saved)))
    data = json.loads(capsys.readouterr().out)
    assert status == 2 and data["exit_code"] == 2 and data["schema"] == "mxdoctor.audit"
    assert {z["zone"] for z in data["zones"]} == {"example.com.", "example.net."}
    failing = {(p["probe"], p["address"], p["rcode"], p["code"]) for p in data["probes"] if p["status"] != "pass"}
    assert failing == {("aaaa", "127.0.0.13", "SERVFAIL", "AAAA_SERVFAIL"),
                       ("aaaa", "127.0.0.14", "SERVFAIL", "AAAA_SERVFAIL")}
    assert address.AAAA_SERVFAIL.code in {f["code"] for f in data["findings"]}
    assert {v["mta"]: v["outcome"] for v in data["verdicts"]}["exchange2010"] == "defer"
    ev = evidence.loads(saved.read_text(encoding="utf-8"))
    assert ev.command == "audit" and ev.audit
    # offline: the same matrix and findings, the same exit status
    assert cli.main(["explain", str(saved), "--no-color"]) == 2
    out = capsys.readouterr().out
    assert "Zone example.net." in out and "FAIL SERVFAIL" in out and "AAAA_SERVFAIL" in out
    assert cli.main(["explain", str(saved), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["exit_code"] == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "not a domain"],
        ["audit", "example.com", "--per-server", "0"],
        ["audit", "example.com", "--dns-port", "70000"],
        ["audit", "example.com", "--timeout", "0"],
        ["audit", "example.com", "--root-hints", "/nonexistent/named.root"],
    ],
)
def test_bad_input_is_one_line_and_exit_3(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("mxdoctor: ")


def test_unknown_mta_is_one_line_before_any_traffic(
    capsys: pytest.CaptureFixture[str], no_network: list[object]
) -> None:
    # Without the check the audit would iterate from the real root (refused here by no_network).
    assert cli.main(["audit", "example.com", "--mta", "qmail", "--timeout", "0.2", "--deadline", "2"]) == 3
    err = capsys.readouterr().err
    assert err == f"mxdoctor: unknown MTA model 'qmail' (known: {', '.join(MODELS)})\n"
    assert no_network == []


def test_unreachable_root_is_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hints = tmp_path / "named.root"
    with lab.running("healthy") as card:
        hints.write_text(Path(card.root_hints).read_text(encoding="utf-8"), encoding="utf-8")
        port = card.dns_port
    # the lab is gone: nothing answers on its port any more
    argv = ["audit", "example.com", "--root-hints", str(hints), "--dns-port", str(port), "--timeout", "0.2",
            "--deadline", "5", "--json"]
    assert cli.main(argv) == 3
    assert json.loads(capsys.readouterr().out)["exit_code"] == 3


Answer = Callable[[bytes, str], Awaitable[object]]


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_per_server_limit_is_respected_at_the_server(limit: int) -> None:
    """Count the queries each lab server is answering at once (each held 20 ms): never above the limit,
    and the limit is reached, so the audit does run probes concurrently."""
    in_flight: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)
    with lab.running("healthy") as card:
        for name in ("ns1.example.com", "ns2.example.com"):
            server = card.dns_server(name)
            original: Answer = server.answer

            def counting(wire: bytes, transport: str, _orig: Answer = original, _name: str = name) -> Awaitable[object]:
                async def wrapped() -> object:
                    in_flight[_name] += 1
                    peak[_name] = max(peak[_name], in_flight[_name])
                    try:
                        await asyncio.sleep(0.02)
                        return await _orig(wire, transport)
                    finally:
                        in_flight[_name] -= 1

                return wrapped()

            server.answer = counting  # type: ignore[method-assign]
        ev = run.collect(card.domains[0], run.AuditOptions(root_hints=card.root_hints, dns_port=card.dns_port,
                                                          timeout=2.0, per_server=limit))
    assert len(ev.audit) >= 2 * len([p for p in probeset.PROBES if not p.dnssec])  # an unsigned zone
    assert dict(peak) == {"ns1.example.com": limit, "ns2.example.com": limit}


MANY_SERVERS = """
description = "example.com served by four name servers, the fourth of which answers nothing at all."
domains = ["example.com"]

[zones."example.com"]
text = '''
@        MX  10 mx1
mx1      A   127.0.0.25
'''
""" + "".join(
    f"""
[[servers]]
name = "ns{i}.example.com"
address = "127.0.0.{10 + i}"
zones = ["example.com"]
""" + ('faults = [{ kind = "drop" }]\n' if i == 4 else "")
    for i in range(1, 5)
)


def test_many_servers_split_the_matrix_and_a_dead_one_is_one_finding(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mxdoctor.lab import scenario

    monkeypatch.setenv("COLUMNS", "80")
    sc = scenario.parse(MANY_SERVERS, source="many-servers", name="many-servers")
    with lab.running(sc) as card:
        status = cli.main(audit_args(card, "--no-color", "--timeout", "0.1"))
    out = capsys.readouterr().out
    assert "Zone example.com. (servers 1-3 of 4)" in out and "Zone example.com. (servers 4-4 of 4)" in out
    assert max(len(line) for line in out.splitlines() if not line.startswith("    dig ")) <= 80
    assert "-- TIMEOUT" in out
    assert "NS_UNREACHABLE  ns4.example.com. 127.0.0.14" in out
    # the dead server is one finding, not one per probe: nothing else at WARNING or above
    assert status == 2
    for code in ("EDNS_INTOLERANT", "TCP_UNSUPPORTED", "QUERY_FAILED", "OPCODE_MISHANDLED"):
        assert code not in out


def test_one_deadline_bounds_the_whole_audit(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from mxdoctor.lab import scenario

    sc = scenario.parse(MANY_SERVERS, source="many-servers", name="many-servers")
    with lab.running(sc) as card:
        start = time.monotonic()
        ev = run.collect(card.domains[0], run.AuditOptions(root_hints=card.root_hints, dns_port=card.dns_port,
                                                          timeout=0.3, deadline=3.0))
        elapsed = time.monotonic() - start
    assert ev.deadline_hit and elapsed < 4.0
    # what finished is kept: the live servers' probes are there
    assert {p.server.address for p in ev.audit} >= {"127.0.0.11", "127.0.0.12", "127.0.0.13"}


def test_dnssec_probes_in_json_and_the_trust_anchor_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "audit.json"
    with lab.running("dnssec-expired") as card:
        status = cli.main(audit_args(card, "--json", "--trust-anchor", card.trust_anchor,
                                     "--save-evidence", str(saved)))
        data = json.loads(capsys.readouterr().out)
        bad = tmp_path / "anchor.key"
        bad.write_text(". 3600 IN DS 12345 13 2 nothex\n", encoding="utf-8")
        assert cli.main(audit_args(card, "--trust-anchor", str(bad))) == 3
    assert status == 2
    failing = {(p["probe"], p["qname"], p["code"]) for p in data["probes"] if p["status"] != "pass"}
    assert failing == {("rrsig-a", "mail.example.net.", "DNSSEC_SERVER_RRSIG_EXPIRED")}
    # every DNSSEC probe went to the signed zone's server; only the expired signature fails
    sent = {p["probe"] for p in data["probes"] if p["zone"] == "example.net."}
    assert {p.name for p in probeset.PROBES if p.dnssec} <= sent
    assert {v["outcome"] for v in data["verdicts"]} == {"defer"}
    assert evidence.loads(saved.read_text(encoding="utf-8")).trust_anchor
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trust-anchor" in err and "Traceback" not in err
