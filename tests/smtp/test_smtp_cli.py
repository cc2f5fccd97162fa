"""``mxdoctor smtp`` end to end: lab scenarios (DNS and SMTP on loopback) and loopback servers, text at
80 columns without colour, JSON, and the exit codes 0/1/2/3."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from smtp_servers import Script, conversation, scripted_server

from _helpers import free_port
from mxdoctor import lab as lab_mod
from mxdoctor.checks import smtp as codes
from mxdoctor.cli import smtp as _cli
from mxdoctor.errors import MxdoctorError


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The command as the dispatcher runs it: parse, call, MxdoctorError -> exit 3."""
    parser = argparse.ArgumentParser(prog="mxdoctor")
    _cli.register(parser.add_subparsers())
    args = parser.parse_args(["smtp", *argv])
    try:
        code = args.func(args)
    except MxdoctorError as exc:
        print(f"mxdoctor: {exc}")
        code = 3
    return code, capsys.readouterr().out


def lab_args(card: lab_mod.Card) -> list[str]:
    return ["--resolver", card.resolver("internal").hostport, "--port", str(card.smtp_port), "--timeout", "2"]


def as_json(out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.mark.parametrize("lab", ["aaaa-servfail"], indirect=True)
def test_aaaa_servfail_probes_ipv4_and_says_why_there_is_no_ipv6(
    lab: lab_mod.Card, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli([lab.domains[0], *lab_args(lab), "--json"], capsys)
    data = as_json(out)
    assert code == 0 and data["exit_code"] == 0
    (p,) = data["probes"]
    assert p["family"] == 4 and p["host"] == "mail.example.net"
    assert [s["stage"] for s in p["stages"]][:3] == ["connect", "greeting", "ehlo"]
    assert all(s["ok"] for s in p["stages"])
    found = {f["code"]: f for f in data["findings"]}
    assert codes.SMTP_OK.code in found
    why = found[codes.SMTP_ADDRESS_NOT_PROBED.code]
    assert "AAAA" in why["message"] and "SERVFAIL" in why["message"]


@pytest.mark.parametrize("lab", ["aaaa-servfail"], indirect=True)
def test_ipv6_only_finds_nothing_to_probe_and_says_why(
    lab: lab_mod.Card, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli([lab.domains[0], *lab_args(lab), "-6", "--no-color"], capsys)
    assert code == 2
    assert "nothing to probe" in out and "SMTP_ADDRESS_NOT_PROBED" in out and "SERVFAIL" in out
    assert codes.SMTP_NO_ADDRESS.code in out  # the DNS gives no IPv6 address: a finding, CRITICAL


@pytest.mark.parametrize("lab", ["smtp-tempfail"], indirect=True)
def test_greeting_421_exits_2_with_the_servers_words(
    lab: lab_mod.Card, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    code, out = run_cli([lab.domains[0], *lab_args(lab)], capsys)
    assert code == 2
    assert "SMTP_GREETING_TEMPFAIL" in out and "421" in out and "too many connections" in out
    assert "\x1b[" not in out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80


@pytest.mark.parametrize("lab", ["smtp-tempfail"], indirect=True)
def test_host_mode_probes_the_hosts_own_addresses(
    lab: lab_mod.Card, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(["mx1.example.com", "--host", *lab_args(lab), "--json"], capsys)
    data = as_json(out)
    assert code == 2
    assert [p["address"] for p in data["probes"]] == ["127.0.0.25"]
    assert "A NOERROR 127.0.0.25" in data["note"]


@pytest.mark.parametrize("lab", ["healthy"], indirect=True)
def test_user_at_domain_sets_the_recipient(lab: lab_mod.Card, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli([f"postmaster@{lab.domains[0]}", *lab_args(lab), "--json"], capsys)
    data = as_json(out)
    stages = [s["stage"] for p in data["probes"] for s in p["stages"]]
    assert "rcpt" in stages and "mail" in stages and "data" not in stages
    assert code in (0, 1), data["findings"]


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> Iterator[int]:
    """A scripted server in a thread of its own (the command runs its own event loop)."""
    script: Script = request.param
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    stop = asyncio.Event()

    async def main() -> None:
        async with scripted_server(script) as p:
            port.append(p)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()


_TLS_BROKEN = conversation(
    b"220 t ESMTP\r\n", {b"EHLO": b"250-t\r\n250 STARTTLS\r\n", b"STARTTLS": b"454 4.7.0 TLS not available\r\n"}
)


@pytest.mark.parametrize("scripted", [_TLS_BROKEN], indirect=True)
def test_a_warning_exits_1(scripted: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["127.0.0.1", "--port", str(scripted), "--timeout", "1", "--json"], capsys)
    data = as_json(out)
    assert code == 1 and data["exit_code"] == 1
    assert [f["code"] for f in data["findings"]] == [codes.STARTTLS_FAILED.code]
    assert data["probes"][0]["stages"][-1]["stage"] == "quit"


def test_connection_refused_by_address_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port("127.0.0.1")
    code, out = run_cli(["127.0.0.1", "--port", str(port), "--timeout", "1", "--no-color"], capsys)
    assert code == 2 and "SMTP_UNREACHABLE" in out and "refused" in out


@pytest.mark.parametrize(
    "argv",
    [["exa mple.com"], ["127.0.0.1", "--port", "0"], ["127.0.0.1", "--rcpt", "a b@c"], ["127.0.0.1", "--timeout", "0"],
     ["127.0.0.1", "--helo", "two words"]],
    ids=["bad-domain", "bad-port", "bad-rcpt", "bad-timeout", "bad-helo"],
)
def test_bad_input_is_one_line_and_exit_3(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(argv, capsys)
    assert code == 3 and out.startswith("mxdoctor: ") and len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("lab", ["multi-mx-partial"], indirect=True)
def test_probe_evidence_fills_smtp_from_one_views_route(lab: lab_mod.Card) -> None:
    from mxdoctor import probe as dns_probe
    from mxdoctor.errors import InvalidTarget
    from mxdoctor.smtp import probe

    options = dns_probe.ProbeOptions(resolvers=(lab.resolver("internal").hostport,), authoritative=False,
                                     dns_port=lab.dns_port, timeout=1.0, deadline=10.0)
    ev = dns_probe.collect(lab.domains[0], options)
    filled = asyncio.run(probe.probe_evidence(ev, view="internal", port=lab.smtp_port))
    assert filled.lookups == ev.lookups and filled.exchanges == ev.exchanges
    assert filled.options["smtp_view"] == "internal" and filled.options["smtp_port"] == str(lab.smtp_port)
    # mx1 has no address (its lookups fail), so only mx2's address is probed
    assert [(p.host, p.address) for p in filled.smtp] == [("mx2.example.com", "127.0.0.26")]
    assert filled.smtp[0].stages[-1].stage == "quit" and all(s.ok for s in filled.smtp[0].stages)
    with pytest.raises(InvalidTarget):
        asyncio.run(probe.probe_evidence(ev, view="nonesuch"))


@pytest.mark.parametrize("lab", ["aaaa-servfail"], indirect=True)
def test_diagnose_with_smtp_ties_the_missing_ipv6_to_the_aaaa_servfail(lab: lab_mod.Card) -> None:
    from mxdoctor import analysis, api

    ev = api.collect(lab.domains[0], api.DiagnoseOptions(
        resolvers=(lab.resolver("internal").hostport,), use_system=False, authoritative=False,
        dns_port=lab.dns_port, timeout=1.0, deadline=10.0, smtp=True, smtp_port=lab.smtp_port,
    ))
    d = analysis.analyse(ev)
    by_code = {f.code: f for f in d.findings}
    ok = by_code[codes.SMTP_OK.code]
    assert "127.0.0.25" in ok.message and [p.family for p in ev.smtp] == [4]
    why = by_code[codes.SMTP_ADDRESS_NOT_PROBED.code]
    assert why.args["qtype"] == "AAAA" and why.args["rcode"] == "SERVFAIL"
    assert "AAAA_SERVFAIL" in by_code


_RCPT_GREYLISTED = conversation(
    b"220 t ESMTP\r\n", {b"EHLO": b"250 t\r\n", b"RCPT": b"451 4.7.1 greylisted, try again later\r\n"}
)


@pytest.mark.parametrize("scripted", [_RCPT_GREYLISTED], indirect=True)
def test_a_deferred_recipient_is_an_error_and_exits_2(scripted: int, capsys: pytest.CaptureFixture[str]) -> None:
    # Senders defer the mail: the finding is ERROR, and ERROR exits 2 as in every command.
    argv = ["127.0.0.1", "--port", str(scripted), "--timeout", "1", "--rcpt", "a@example.com", "--json"]
    code, out = run_cli(argv, capsys)
    data = as_json(out)
    assert code == 2 and data["exit_code"] == 2
    (found,) = [f for f in data["findings"] if f["code"] == codes.RCPT_TEMPFAIL.code]
    assert found["severity"] == "ERROR" and "greylisted" in found["message"]


@pytest.mark.parametrize("lab", ["domain-nxdomain"], indirect=True)
def test_no_address_in_the_dns_is_a_critical_finding(lab: lab_mod.Card, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli([lab.domains[0], *lab_args(lab), "--json"], capsys)
    data = as_json(out)
    assert code == 2 and data["probes"] == []
    (found,) = data["findings"]
    assert found["code"] == codes.SMTP_NO_ADDRESS.code and found["severity"] == "CRITICAL"
    assert "NXDOMAIN" in found["message"]


def test_a_resolver_that_does_not_answer_leaves_it_untested(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port("127.0.0.1")  # nothing listens there: no reply comes
    code, out = run_cli(["example.com", "--resolver", f"127.0.0.1:{port}", "--timeout", "0.5", "--json"], capsys)
    data = as_json(out)
    assert code == 3 and data["exit_code"] == 3
    assert data["probes"] == [] and codes.SMTP_NO_ADDRESS.code not in {f["code"] for f in data["findings"]}


def test_a_dead_resolver_is_named_with_the_lookup_that_failed(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        code, out = run_cli(["example.com", "--resolver", f"127.0.0.1:{port}", "--timeout", "1"], capsys)
    assert code != 0
    assert f"MX lookup for example.com through 127.0.0.1:{port} timed out" in " ".join(out.split())
