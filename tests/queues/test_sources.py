"""Queue sources that run commands: timeouts, failures and partial output, with real processes."""

from __future__ import annotations

import sys
import time

import pytest

from mxdoctor.errors import QueueError
from mxdoctor.queues import exchange_csv, formats
from mxdoctor.queues.record import Malformed, Mta, QueuedMessage

LINE = ('{"queue_name": "deferred", "queue_id": "A1", "arrival_time": 1700000000, "message_size": 1, '
        '"sender": "", "recipients": [{"address": "x@y.example", "delay_reason": "z"}]}')


def test_command_output_is_streamed_and_a_timeout_ends_it() -> None:
    script = f"import sys, time; print({LINE!r}, flush=True); time.sleep(30)"
    started = time.monotonic()
    items = list(formats.guard(formats.FORMATS["postfix-json"].read(
        formats.run([sys.executable, "-c", script], timeout=1.0))))
    assert time.monotonic() - started < 10
    assert isinstance(items[0], QueuedMessage) and items[0].queue_id == "A1"
    assert isinstance(items[1], Malformed) and "did not finish within 1 s" in items[1].problem


def test_command_that_times_out_before_any_output_is_an_error() -> None:
    with pytest.raises(QueueError, match="did not finish"):
        list(formats.guard(formats.FORMATS["postfix-json"].read(
            formats.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5))))


def test_failing_command_reports_its_stderr() -> None:
    script = ("import sys; sys.stderr.write('postqueue: fatal: Queue report unavailable - mail system is down\\n');"
              " sys.exit(69)")
    with pytest.raises(QueueError, match="mail system is down"):
        list(formats.guard(formats.FORMATS["postfix-json"].read(formats.run([sys.executable, "-c", script], 5))))


def test_missing_command_is_one_clear_error() -> None:
    with pytest.raises(QueueError, match="cannot run"):
        formats.run(["/nonexistent/postqueue", "-j"], 5)


def test_exchange_command_only_on_windows() -> None:
    if sys.platform == "win32":
        pytest.skip("this checks the message given elsewhere")
    with pytest.raises(QueueError, match="Windows only"):
        formats.read(formats.Source(mta=Mta.EXCHANGE))


def test_postfix_config_dir_and_forced_text_format_pick_the_command() -> None:
    source = formats.Source(mta=Mta.POSTFIX, config_dir="/etc/postfix-out", format="postfix-text")
    assert formats.command_for(source) == ["postqueue", "-c", "/etc/postfix-out", "-p"]
    with pytest.raises(QueueError, match="not what"):
        formats.command_for(formats.Source(mta=Mta.POSTFIX, format="exim"))


def test_exchange_csv_quoted_field_over_two_lines_keeps_line_numbers() -> None:
    lines = [
        '"Identity","FromAddress","DateReceived","LastError","Recipients"\r\n',
        '"S\\1\\1","a@x.example","11/14/2023 10:13:20 PM","451 4.4.0 DNS query failed.\r\n',
        'second line","b@stuck.example"\r\n',
        '"S\\1\\2","a@x.example","not a date","",""\r\n',
    ]
    items = list(exchange_csv.read(lines))
    first, bad = items
    assert isinstance(first, QueuedMessage) and first.recipients[0].domain == "stuck.example"
    assert first.recipients[0].delay_reason == "451 4.4.0 DNS query failed.\r\nsecond line"
    assert isinstance(bad, Malformed) and bad.line == 4 and "date not understood" in bad.problem


def test_nagios_mode_reports_source_errors_as_unknown_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    from mxdoctor import cli

    code = cli.main(["queue", "--opensmtpd", "--nagios", "--timeout", "5s"])
    out = capsys.readouterr().out
    assert code == 3 and out.startswith("MXDOCTOR QUEUE UNKNOWN - ") and "smtpctl" in out
