"""mxdoctor on Windows: the CLI and the pure parts of diagnose, audit, smtp, queue and watch import
and run with the POSIX-only modules missing; the lab says in one line that it needs a POSIX host;
the system view reads the Windows DNS client configuration through dnspython (simulated here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dns.resolver
import pytest

from mxdoctor.dns import system
from mxdoctor.errors import ConfigError, LabError
from mxdoctor.lab import runner

ROOT = Path(__file__).parents[1]
POSIX_ONLY = ("fcntl", "resource", "pwd", "grp", "termios")

PRELUDE = f"""
import sys
for name in {POSIX_ONLY!r}:
    sys.modules[name] = None  # import raises ImportError, as on Windows
"""

SCRIPT = PRELUDE + """
import io, json, contextlib
from mxdoctor.cli import build_parser, main
build_parser()
def run(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()
results = {}
results["explain"] = run("explain", sys.argv[1], "--json")[0]
results["audit-explain"] = run("explain", sys.argv[2], "--json")[0]
results["queue"] = run("queue", sys.argv[3], "--json")[0]
results["checks"] = run("checks")[0]
results["lab-list"] = run("lab", "list")[0]
import mxdoctor.smtp.probe, mxdoctor.monitor.watch, mxdoctor.monitor.state, mxdoctor.monitor.notify
import mxdoctor.probe, mxdoctor.audit.run
try:
    import fcntl  # noqa: F401
    results["fcntl"] = "importable"
except ImportError:
    results["fcntl"] = "missing"
print(json.dumps(results))
"""


def test_imports_and_pure_parts_without_posix_modules() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT,
         str(ROOT / "tests/data/evidence/aaaa-servfail.json"),
         str(ROOT / "tests/audit/data/aaaa-servfail.json"),
         str(ROOT / "tests/data/queues/exchange2010-snapshot.txt")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["fcntl"] == "missing"
    assert results["explain"] == 2 and results["audit-explain"] == 2  # the seed case: some MTA defers
    assert results["queue"] in (0, 1, 2) and results["checks"] == 0 and results["lab-list"] == 0


def test_lab_says_it_needs_posix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner.os, "name", "nt")
    with pytest.raises(LabError, match="needs a POSIX host"), runner.running("healthy"):
        pass


class _WindowsResolver:
    """What dnspython's Resolver holds after reading the Windows registry (dns.win32util)."""

    def __init__(self, configure: bool = True) -> None:
        self.nameservers = ["10.1.0.10", "fe80::1%12", "https://dns.example/dns-query"]


def test_system_view_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.sys, "platform", "win32")
    monkeypatch.setattr(dns.resolver, "Resolver", _WindowsResolver)
    servers = system.system_servers()
    assert [s.address for s in servers] == ["10.1.0.10", "fe80::1"]
    # A resolv.conf given on purpose is still read as such.
    assert system.system_servers(ROOT / "tests/data/queues/README.md") == (system.evidence.Server("127.0.0.1"),)


def test_windows_without_dns_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    class Empty(_WindowsResolver):
        def __init__(self, configure: bool = True) -> None:
            self.nameservers = []

    monkeypatch.setattr(system.sys, "platform", "win32")
    monkeypatch.setattr(dns.resolver, "Resolver", Empty)
    with pytest.raises(ConfigError, match="names no DNS server"):
        system.system_servers()
