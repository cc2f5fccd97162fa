"""Hostile queue input through ``mxdoctor queue``: every known crasher, endless and silent sources,
over-long lines and terminal escapes end with a count or a one-line error, never a traceback."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mxdoctor import cli
from mxdoctor.queues import _lines, formats, record
from mxdoctor.queues.record import Format, Malformed, Mta, QueuedMessage

REPRO = Path(__file__).parent.parent / "data" / "queues" / "reliability"
NOW = 1700100000.0
GOOD = ('{"queue_name": "deferred", "queue_id": "A%d", "arrival_time": 1700099000, "message_size": 1, '
        '"sender": "", "recipients": [{"address": "x@y.example", "delay_reason": "z"}]}\n')


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} in JSON output")


def run_queue(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str, float]:
    """Exit code, stdout, stderr and CPU seconds of one ``mxdoctor queue`` run in this process."""
    started = time.process_time()
    code = cli.main(["queue", *argv, "--now", str(NOW)])
    cpu = time.process_time() - started
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err, cpu


def strict_json(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constants)


# (file, records read, malformed records, exit code, a fragment of the first problem)
REPRODUCERS = [
    ("q01-postfix-json-arrival-huge-int.jsonl", 0, 1, 3, "arrival_time out of range"),
    ("q02-postfix-json-size-1e400.jsonl", 0, 1, 3, "message_size out of range"),
    ("q03-postfix-json-deep-nesting.jsonl", 0, 1, 3, "nested too deeply"),
    ("q04-postfix-json-reason-object.jsonl", 0, 1, 3, "delay_reason is not text"),
    ("q05-exchange-json-deep-nesting.json", 0, 1, 3, "nested too deeply"),
    ("q06-exchange-json-date-huge.json", 0, 1, 3, "out of range"),
    ("q07-exchange-json-date-huge-number.json", 0, 1, 3, "out of range"),
    ("q08-exim-age-huge.txt", 0, 1, 3, "out of range"),
    ("q09-exim-size-huge.txt", 0, 1, 3, "not a finite number"),
    ("q10-postfix-json-arrival-minus-infinity.jsonl", 0, 1, 3, "Infinity is not a JSON number"),
    ("q11-postfix-json-reason-bool.jsonl", 0, 1, 3, "delay_reason is not text"),
    ("q12-exchange-json-size-infinity.json", 0, 1, 3, "Infinity is not a JSON number"),
    # One good message 25 minutes old (OK) and the 100 KB line that took 25 s: skipped, counted.
    ("q13-exim-long-line-quadratic.txt", 1, 1, 0, "too long"),
]


@pytest.mark.parametrize(("name", "n_ok", "n_bad", "code", "problem"), REPRODUCERS, ids=[r[0][:3] for r in REPRODUCERS])
def test_reproducer_is_counted_not_fatal(capsys: pytest.CaptureFixture[str], name: str, n_ok: int, n_bad: int,
                                         code: int, problem: str) -> None:
    got, out, err, cpu = run_queue(capsys, str(REPRO / name), "--json")
    doc = strict_json(out)
    assert (got, doc["exit_code"]) == (code, code)
    assert doc["records"] == n_ok and doc["malformed"]["count"] == n_bad
    assert problem in doc["malformed"]["examples"][0]["problem"]
    assert doc["malformed"]["examples"][0]["line"] >= 1
    if code == 3:
        assert err.count("\n") == 1 and "nothing readable" in err
    assert cpu < 5


@pytest.mark.parametrize("fmt", ["exim", "postfix-text", "sendmail", "postfix-json"])
def test_megabyte_line_is_linear(capsys: pytest.CaptureFixture[str], tmp_path: Path, fmt: str) -> None:
    # q13 with a 1 MB line (it did not finish in 11 minutes), and the same line for other readers.
    head = (REPRO / "q13-exim-long-line-quadratic.txt").read_text().splitlines(keepends=True)[:3]
    path = tmp_path / "long.txt"
    path.write_text("".join(head) + "  1h  1.2K 1rAbCd-000123-AB <d@e.example>" + " " * 1_000_000 + "x\n")
    code, out, _, cpu = run_queue(capsys, str(path), "--json", "--format", fmt)
    doc = strict_json(out)
    assert doc["malformed"]["count"] >= 1
    assert code == (0 if fmt == "exim" else 3)
    assert cpu < 5


# The entry lines of every reader, each followed by long runs that made patterns backtrack.
PREFIXES = ["ABC 100 Thu Nov 16 01:00:00", "ABC 100 Thu Nov 16 01:00", "25m 2.9K 1rAbCd-0001Xy-7Q <a@b>",
            "00000000000000aa|local|mta||a@b|c@d|c@d|1|2|3|1|pending|5|", '{"queue_id": "', '"Identity","',
            "8BITMIME", "/var/spool/mqueue"]
FILLERS = [" ", "A ", "a@b ", " (", "name=", "{", "(1 "]


@pytest.mark.parametrize("fmt", sorted(formats.FORMATS))
def test_long_lines_cost_linear_time_in_every_reader(fmt: str) -> None:
    lines = [p + f * (200_000 // len(f)) + "x\n" for p in PREFIXES for f in FILLERS]
    lines += [p + " " * 100_000 + "y" + " " * 100_000 + "x\n" for p in PREFIXES]  # two runs, one word
    started = time.process_time()
    items = list(formats.records(formats.FORMATS[fmt], iter(["\n", *lines])))
    assert time.process_time() - started < 5  # quadratic backtracking here took minutes
    assert all(type(i) in (QueuedMessage, Malformed) for i in items)


def test_over_long_line_is_skipped_with_its_number(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(GOOD % 1 + '{"queue_id": "' + "a" * (3 * _lines.MAX_LINE) + '"}\n' + GOOD % 3)
    code, out, _, cpu = run_queue(capsys, str(path), "--json")
    doc = strict_json(out)
    assert code == 0 and doc["records"] == 2 and doc["malformed"]["count"] == 1
    assert doc["malformed"]["examples"][0]["line"] == 2
    assert "longer than 1 Mi" in doc["malformed"]["examples"][0]["problem"]
    assert doc["total"]["oldest_queue_id"] in ("A1", "A3")
    assert cpu < 5


@pytest.mark.parametrize("fmt", [None, "postfix-json", "exchange-json"])
def test_dev_zero_ends_with_one_line(capsys: pytest.CaptureFixture[str], fmt: str | None) -> None:
    argv = ["/dev/zero", "--json"] + (["--format", fmt] if fmt else [])
    code, out, err, cpu = run_queue(capsys, *argv)
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "not a queue listing" in err
    assert cpu < 5


def test_binary_file_is_counted_line_by_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "random.bin"
    path.write_bytes(os.urandom(2_000_000))
    for fmt in formats.FORMATS:
        code, out, _, _ = run_queue(capsys, str(path), "--json", "--format", fmt)
        doc = strict_json(out)
        assert code == 3 and doc["records"] == 0 and doc["malformed"]["count"] >= 1, fmt


def test_fifo_without_writer_times_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    code, out, err, _ = run_queue(capsys, str(fifo), "--timeout", "1s")
    assert time.monotonic() - started < 10
    assert code == 3 and "nothing more within 1 s" in err and err.count("\n") == 1


def test_fifo_that_stalls_keeps_what_it_sent(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    stop = threading.Event()

    def writer() -> None:
        with open(fifo, "w") as fh:
            fh.write(GOOD % 1)
            fh.flush()
            stop.wait(20)  # holds the FIFO open without writing more

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        code, out, _, _ = run_queue(capsys, str(fifo), "--timeout", "1s", "--json")
    finally:
        stop.set()
        thread.join()
    doc = strict_json(out)
    assert code == 0 and doc["records"] == 1 and doc["malformed"]["count"] == 1
    assert "nothing more within 1 s" in doc["malformed"]["examples"][0]["problem"]


def test_one_bad_record_among_good_ones_keeps_the_status(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    good = "".join(GOOD % i for i in range(3))
    path.write_text(good)
    clean = run_queue(capsys, str(path), "--nagios")[0]
    for name, *_ in REPRODUCERS[:12]:
        bad = (REPRO / name).read_text()
        if not bad.startswith('{"queue_id"'):
            continue
        path.write_text(GOOD % 0 + bad + GOOD % 1 + GOOD % 2)
        code, out, _, _ = run_queue(capsys, str(path), "--nagios")
        assert code == clean == 0, name
        assert "'malformed'=1;" in out


def test_terminal_escapes_are_printed_escaped(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    evil = "\x1b]0;owned\x07\x1b[31mred"
    line = json.dumps({"queue_name": "deferred", "queue_id": "Q\x1b[2J", "arrival_time": 1700099000,
                       "recipients": [{"address": f"u@{evil}.example", "delay_reason": f"4.4.1 {evil}"},
                                                      {"address": "v@[red]y.example"}]})
    path = tmp_path / "q.jsonl"
    path.write_text(line + "\n")
    for mode in ([], ["--nagios"]):
        _, out, _, _ = run_queue(capsys, str(path), *mode)
        assert "\x1b" not in out and "\x07" not in out
        assert "\\x1b]0;owned\\x07\\x1b[31mred" in out
    _, out, _, _ = run_queue(capsys, str(path))
    assert "[red]y.example" in out  # shown as written, not read as markup


def test_nagios_text_cannot_open_perfdata(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rcpt = {"address": "u@a|'messages'=0.example", "delay_reason": "connect to x: Connection refused"}
    line = json.dumps({"queue_id": "A", "arrival_time": 1700000000, "recipients": [rcpt]})
    path = tmp_path / "q.jsonl"
    path.write_text(line + "\n")
    _, out, _, _ = run_queue(capsys, str(path), "--nagios")
    assert out.count("|") == 1


@pytest.mark.parametrize("argv", [["--warn-age", "9" * 400], ["--crit-age", "99999999999w"]])
def test_durations_out_of_range_are_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err, _ = run_queue(capsys, str(REPRO / "q13-exim-long-line-quadratic.txt"), "--json", *argv)
    assert code == 3 and out == "" and "not a duration" in err


def test_a_reader_that_raises_loses_one_line_only() -> None:
    def brittle(lines: Any, *, now: float | None = None) -> Any:
        for line in lines:
            if "boom" in line:
                raise RuntimeError("a reader bug")
            yield QueuedMessage(Mta.POSTFIX, line.strip(), "", None, None, "", (), None, None)

    fmt = Format("brittle", Mta.POSTFIX, (), lambda head: False, brittle, 99)
    items = list(formats.records(fmt, iter(["a\n", "boom\n", "b\n", "boom\n"])))
    assert [i.queue_id for i in items if isinstance(i, QueuedMessage)] == ["a", "b"]
    bad = [i for i in items if isinstance(i, Malformed)]
    assert [b.line for b in bad] == [2, 4] and all("RuntimeError" in b.problem for b in bad)


def test_record_bounds() -> None:
    ok = QueuedMessage(Mta.EXIM, "id", "input", 1700000000.0, 10, "", (record.recipient("a@b.example", "r" * 5000),))
    assert record.check(ok).recipients[0].delay_reason == "r" * record.MAX_REASON + "..."
    for bad in (ok._replace(arrival=float("nan")), ok._replace(arrival=-1.0), ok._replace(size=2**64),
                ok._replace(sender={"a": 1}), ok._replace(recipients=(record.Recipient("a@b", "b", True),))):  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            record.check(bad)
    assert record.printable("a\x1bb\u202ec\x9b") == "a\\x1bb\\u202ec\\x9b"


def test_parallel_parts_skip_an_over_long_line_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mxdoctor.queues import parallel, shape

    path = tmp_path / "q.jsonl"
    long = '{"queue_id": "' + "\u00e9" * (2 * _lines.MAX_LINE) + '"}\n'  # two bytes a character
    path.write_text("".join(GOOD % i for i in range(500)) + long + "".join(GOOD % i for i in range(500, 1000)))
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)  # the parent decides; this file is small
    split = parallel.build_file(str(path), "postfix-json", now=NOW, jobs=2)
    whole = shape.build(formats.read(formats.Source(path=str(path)), now=NOW), now=NOW)
    assert split is not None
    assert (split.records, split.malformed) == (whole.records, whole.malformed) == (1000, 1)
    assert [m.line for m in split.malformed_examples] == [m.line for m in whole.malformed_examples] == [501]


def _fake_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, script: str) -> None:
    """A program named ``name`` first on PATH: a hostile stand-in for an MTA's listing command."""
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{path.parent}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize(("script", "problem"), [
    ("exec sleep 30", "did not finish within 1 s"),
    ("exec cat /dev/zero", "longer than 64 Mi"),
])
def test_hung_or_endless_command_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, script: str, problem: str) -> None:
    _fake_command(tmp_path, monkeypatch, "postqueue", script)
    started = time.monotonic()
    code, out, err, _ = run_queue(capsys, "--postfix", "--timeout", "1s", "--json")
    assert time.monotonic() - started < 10
    assert code == 3 and out == "" and problem in err and err.count("\n") == 1


def test_command_that_hangs_after_some_output_keeps_it(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_command(tmp_path, monkeypatch, "postqueue", f"echo '{GOOD.strip() % 1}'; exec sleep 30")
    code, out, _, _ = run_queue(capsys, "--postfix", "--timeout", "1s", "--json")
    doc = strict_json(out)
    assert code == 0 and doc["records"] == 1 and doc["malformed"]["count"] == 1
    assert "did not finish within 1 s" in doc["malformed"]["examples"][0]["problem"]
