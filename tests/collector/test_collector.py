"""The Exchange collector script: nothing newer than PowerShell 2.0 and the Exchange 2010 cmdlets,
read-only, and the sample snapshots under tests/data/queues in its exact output format.

PowerShell cannot run here, so the script is checked as text against closed lists; the snapshot
reader is checked on the samples, through the same code that `mxdoctor queue` and `watch` use.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from mxdoctor import collector
from mxdoctor.cli import main
from mxdoctor.queues import exchange_snapshot, formats
from mxdoctor.queues.record import QueuedMessage

DATA = Path(__file__).parents[1] / "data" / "queues"
SAMPLES = {"exchange2010": DATA / "exchange2010-snapshot.txt", "exchange2016": DATA / "exchange2016-snapshot.txt"}

# PowerShell 2.0's own cmdlets that the script may use, and the Exchange 2010 Management Shell's.
PS2_CMDLETS = {
    "Add-PSSnapin", "ConvertTo-Csv", "ForEach-Object", "Get-Command", "Get-Content", "Get-Date", "Get-PSSnapin",
    "Get-WmiObject", "New-Object", "Remove-Item", "Rename-Item", "Select-Object", "Split-Path", "Test-Path",
    "Where-Object",
}
EXCHANGE_2010_CMDLETS = {"Get-ExchangeServer", "Get-Message", "Get-Queue", "Get-SendConnector", "Get-TransportServer"}
# Newer than 2010: allowed only behind a Get-Command test, with the 2010 cmdlet as the other branch.
GUARDED = {"Get-TransportService": "Get-TransportServer"}
# Syntax and cmdlets of PowerShell 3.0 and later.
NEWER = [
    r"ConvertTo-Json", r"ConvertFrom-Json", r"Invoke-WebRequest", r"Invoke-RestMethod", r"Get-CimInstance",
    r"\[ordered\]", r"\[pscustomobject\]", r"\$PSItem\b", r"\s-(?:not)?in\s", r"\.ForEach\(", r"\.Where\(",
    r"::new\(", r"^\s*class\s", r"^\s*using\s", r"\$using:", r"\s-sh[lr]\s", r"\$PSScriptRoot", r"\?\?",
]


def code_of(script: str, *, blank_strings: bool = True) -> str:
    """The script without comments, and with string contents blanked (so words in messages don't count)."""
    script = re.sub(r"<#.*?#>", "", script, flags=re.S)
    out = []
    for line in script.splitlines():
        kept, quote = [], ""
        for ch in line:
            if quote:
                if ch == quote:
                    quote = ""
                    kept.append(ch)
                elif not blank_strings:
                    kept.append(ch)
                continue
            if ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            kept.append(ch)
        out.append("".join(kept))
    return "\n".join(out)


SCRIPT = collector.script()
CODE = code_of(SCRIPT)
UNCOMMENTED = code_of(SCRIPT, blank_strings=False)
FUNCTIONS = set(re.findall(r"^\s*function\s+([A-Za-z]+-[A-Za-z]+)", CODE, re.M))


def test_uses_only_powershell_2_and_exchange_2010_cmdlets() -> None:
    used = set(re.findall(r"\b([A-Z][a-z]+-[A-Z][A-Za-z]+)\b", CODE)) - FUNCTIONS
    allowed = PS2_CMDLETS | EXCHANGE_2010_CMDLETS | set(GUARDED)
    assert used - allowed == set(), f"cmdlets outside PowerShell 2.0 / Exchange 2010: {sorted(used - allowed)}"
    assert {"Get-Queue", "Get-Message", "Get-TransportServer", "Get-SendConnector"} <= used


def test_newer_cmdlets_are_guarded() -> None:
    for newer, older in GUARDED.items():
        guard = rf"if \(Get-Command {newer} -ErrorAction SilentlyContinue\) "
        pattern = guard + rf"\{{\s*[^}}]*{newer}[^}}]*\}} else \{{\s*[^}}]*{older}"
        assert re.search(pattern, CODE), f"{newer} is used without a Get-Command guard falling back to {older}"


@pytest.mark.parametrize("pattern", NEWER)
def test_no_syntax_newer_than_powershell_2(pattern: str) -> None:
    assert not re.search(pattern, CODE, re.M | re.I), f"PowerShell 3.0+ construct {pattern!r}"


def test_read_only() -> None:
    cmdlets = set(re.findall(r"\b([A-Z][a-z]+)-([A-Z][A-Za-z]+)\b", CODE))
    exchange = {f"{v}-{n}" for v, n in cmdlets} & (EXCHANGE_2010_CMDLETS | set(GUARDED))
    assert all(c.startswith("Get-") for c in exchange)
    # The only file it removes or renames is its own output, written beside the target first.
    for line in CODE.splitlines():
        if re.search(r"\b(Remove|Rename)-Item\b", line):
            assert re.search(r"-LiteralPath \$(OutFile|partial)\b", line), line
    assert "Set-" not in CODE and "Retry-Queue" not in CODE and "Restart-" not in CODE


def test_refuses_plain_http_unless_told() -> None:
    assert 'StartsWith("https://")' in UNCOMMENTED and "$AllowHttp" in CODE
    assert "Authorization" in SCRIPT and "Bearer" in SCRIPT


def _script_sections() -> dict[str, list[str]]:
    """Each section's columns, as the script's Select-Object lists name them, in order."""
    names = re.findall(r'Get-Section "([a-z-]+)"', UNCOMMENTED)
    # Select-Object lists (one may span lines ending in ','), except `Select-Object -First 1`.
    lists = re.findall(r"Select-Object\s+((?:[^\n]*,\s*\n)*[^\n]*)", UNCOMMENTED)
    columns = []
    for text in lists:
        if text.lstrip().startswith("-"):
            continue
        cols = []
        for item in re.finditer(r'@\{Name = "([A-Za-z]+)"|\b([A-Z][A-Za-z]+)\b(?=\s*(?:,|\)|$))', text, re.M):
            cols.append(item.group(1) or item.group(2))
        columns.append(cols)
    assert len(names) == len(columns), (names, columns)
    return dict(zip(names, columns, strict=True))


def _sample_sections(path: Path) -> dict[str, list[str]]:
    _, sections = exchange_snapshot._sections(path.read_text(encoding="utf-8").splitlines(keepends=True))
    return {name: next(csv.reader([rows[0][1]])) for name, rows in sections.items()}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_samples_are_in_the_scripts_exact_format(sample: str) -> None:
    raw = SAMPLES[sample].read_bytes()
    assert raw.startswith(b"#mxdoctor-snapshot 1\r\n") and raw.endswith(b"\r\n")  # Join("`r`n") + "`r`n"
    assert b"\r\n" in raw and raw.count(b"\n") == raw.count(b"\r\n")
    assert _sample_sections(SAMPLES[sample]) == _script_sections()
    header = [line for line in raw.decode().splitlines() if line.startswith("#") and not line.startswith("#section")]
    assert [h.split(" ", 1)[0] for h in header] == ["#mxdoctor-snapshot", "#host", "#server", "#exchange", "#collected"]


def test_exchange2010_snapshot_reads() -> None:
    snap, items = exchange_snapshot.parse(SAMPLES["exchange2010"].read_text().splitlines(keepends=True))
    assert snap.host == "sbs1" and snap.version == "1" and snap.exchange.startswith("Version 14.3")
    assert snap.collected is not None
    records = [i for i in items if isinstance(i, QueuedMessage)]
    queues = [i for i in records if i.queue_id.count("\\") == 1]  # SERVER\QUEUE: a Get-Queue row
    # The held queue is counted by its two messages, not once more by its Get-Queue row.
    assert [q.queue_id for q in queues] == ["SBS1\\13", "SBS1\\Submission"]
    messages = [i for i in records if i.queue_id.count("\\") == 2]  # SERVER\QUEUE\ID: a Get-Message row
    assert len(messages) == 2 and "ServerFailure" in (messages[0].recipients[0].delay_reason or "")
    assert {r.domain for m in messages for r in m.recipients} == {"example.com"}
    assert all(m.arrival for m in messages)  # DateReceived gives the age Exchange 2010's Get-Queue lacks
    # SBS default: adapter DNS on both paths, the connector does not use the external list.
    assert snap.dns.internal == ("192.168.16.2",) and snap.dns.external == ("192.168.16.2",)
    assert snap.dns.uses_external is False


def test_exchange2010_queue_rows_alone_age_from_last_retry() -> None:
    text = SAMPLES["exchange2010"].read_text()
    only_queues = text.split("#section get-message")[0] + "#section transport-server" + text.split(
        "#section transport-server")[1]
    _, items = exchange_snapshot.parse(only_queues.splitlines(keepends=True))
    held = [i for i in items if isinstance(i, QueuedMessage) and i.queue_id == "SBS1\\12"]
    assert held and held[0].messages == 2 and held[0].arrival is not None  # from LastRetryTime
    assert "ServerFailure" in (held[0].recipients[0].delay_reason or "")


def test_exchange2016_snapshot_reads() -> None:
    snap, items = exchange_snapshot.parse(SAMPLES["exchange2016"].read_text().splitlines(keepends=True))
    assert snap.dns.internal == ("10.1.0.10", "10.1.0.11")
    assert snap.dns.external == ("192.0.2.53", "198.51.100.53")
    assert snap.dns.uses_external is True
    assert any(isinstance(i, QueuedMessage) and "ErrorTimeout" in (i.recipients[0].delay_reason or "") for i in items)


def test_detected_and_read_by_queue_command(capsys: pytest.CaptureFixture[str]) -> None:
    head = SAMPLES["exchange2010"].read_text().splitlines()[:40]
    fmt = formats.detect(head)
    assert fmt is not None and fmt.name == exchange_snapshot.NAME
    code = main(["queue", str(SAMPLES["exchange2010"]), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == exchange_snapshot.NAME
    assert code in (0, 1, 2)
    assert any(d["domain"] == "example.com" for d in doc["domains"])


def test_command_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exchange-collector"]) == 0
    assert capsys.readouterr().out == SCRIPT
