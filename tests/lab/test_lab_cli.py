"""The ``mxdoctor lab`` commands, run as a user runs them."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _labwire import query, texts

from mxdoctor.cli import main
from mxdoctor.lab import runner, scenario

READY_WAIT = 15.0


def mxdoctor(*args: str) -> list[str]:
    return [sys.executable, "-m", "mxdoctor.cli", *args]


def test_lab_list_names_every_builtin_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == scenario.builtin_names()
    seed = next(line for line in lines if line.startswith("aaaa-servfail "))
    assert "SERVFAIL" in seed


def test_lab_show_prints_servers_faults_and_expected_diagnosis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "show", "aaaa-servfail", "--zones"]) == 0
    out = capsys.readouterr().out
    assert "fault rcode (name=mail.example.net., qtype=AAAA, rcode=SERVFAIL)" in out
    assert "findings:  AAAA_SERVFAIL" in out
    assert "exchange2010 defer" in out
    assert "; zone example.net." in out and "mail.example.net. 3600 IN A 127.0.0.25" in out


def test_malformed_scenario_is_one_line_and_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('description = "x"\ndomains = ["example.com"]\n[[servers]]\nname = "ns1"\nrole = "cache"\n')
    assert main(["lab", "show", str(path)]) == 3
    assert main(["lab", "serve", str(path)]) == 3
    err = capsys.readouterr().err.splitlines()
    problem = "expected one of authoritative, recursive, forwarder; got 'cache'"
    assert err == [f"mxdoctor: {path}: servers[0].role: {problem}"] * 2


def test_lab_without_subcommand_is_usage_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab"]) == 3
    assert "list" in capsys.readouterr().err


def _serve(tmp_path: Path, scenario_name: str, port: int) -> tuple[subprocess.Popen[str], Path, dict[str, object]]:
    ready = tmp_path / "ready.json"
    process = subprocess.Popen(
        mxdoctor("lab", "serve", scenario_name, "--port", str(port), "--ready-file", str(ready)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + READY_WAIT
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate(timeout=5)
            pytest.fail(f"lab serve never got ready: {out} {err}")
        time.sleep(0.05)
    return process, ready, json.loads(ready.read_text())


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_lab_serve_writes_the_ready_file_serves_and_stops_on_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    port = runner._free_port()
    process, ready, card = _serve(tmp_path, "aaaa-servfail", port)
    try:
        assert card["dns_port"] == port
        assert isinstance(card["smtp_port"], int) and card["smtp_port"] > 0
        assert Path(str(card["root_hints"])).is_file()
        assert card["domains"] == ["example.com"]
        resolvers = {r["name"]: r for r in card["resolvers"]}  # type: ignore[attr-defined]
        internal = resolvers["internal"]
        assert (internal["address"], internal["port"]) == ("127.0.0.10", port)
        assert texts(query("127.0.0.10", port, "mail.example.net", "A"), "A") == ["127.0.0.25"]
        assert query("127.0.0.10", port, "mail.example.net", "AAAA").rcode() == 2  # SERVFAIL
    finally:
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "mxdoctor diagnose example.com --resolver 127.0.0.10:" in out
    assert f"root.hints --dns-port {port} --smtp --smtp-port {card['smtp_port']}" in out
    assert "lab stopped" in err
    assert not ready.exists()
    assert not Path(str(card["root_hints"])).exists()
    for address in ("127.0.0.2", "127.0.0.10", "127.0.0.13"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((address, port))


def test_lab_serve_on_a_taken_port_is_one_line_exit_3(tmp_path: Path) -> None:
    port = runner._free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.11", port))
        done = subprocess.run(
            mxdoctor("lab", "serve", "healthy", "--port", str(port)), capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"mxdoctor: cannot start the lab DNS servers on port {port}")
