"""Queue shape, thresholds and the ``mxdoctor queue`` command on recorded listings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mxdoctor import cli
from mxdoctor.queues import shape, status
from mxdoctor.queues.classify import Category
from mxdoctor.queues.record import Mta, QueuedMessage, Recipient

DATA = Path(__file__).parent.parent / "data" / "queues"
NOW = 1700100000.0


def msg(qid: str, age_min: float, *rcpts: tuple[str, str | None], messages: int = 1) -> QueuedMessage:
    return QueuedMessage(
        Mta.POSTFIX, qid, "deferred", NOW - age_min * 60, 100, "s@example.org",
        tuple(Recipient(a, a.rpartition("@")[2], r) for a, r in rcpts), None, None, messages,
    )


DNS = "Host or domain name not found. Name service error for name=mx.a.example type=AAAA: Host not found, try again"
CONN = "connect to mx.b.example[192.0.2.1]:25: Connection timed out"


def test_buckets_follow_qshape_columns() -> None:
    assert shape.BUCKET_LABELS == ("5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+")
    assert [shape.bucket_of(m * 60) for m in (0, 4.9, 5, 9, 10, 1279, 1280, 99999)] == [0, 0, 1, 1, 2, 8, 9, 9]


def test_shape_counts_domains_oldest_and_dominant_reason() -> None:
    items = [
        msg("A", 3, ("x@a.example", DNS), ("y@a.example", DNS), ("z@b.example", CONN)),
        msg("B", 50, ("w@a.example", DNS)),
        msg("C", 2000, ("v@b.example", CONN)),
        msg("D", 1, ("u@c.example", None)),
    ]
    s = shape.build(items, now=NOW)
    assert s.total.messages == 4 and s.total.buckets[0] == 2 and s.total.buckets[4] == 1
    a, b = s.domains["a.example"], s.domains["b.example"]
    assert a.messages == 2  # message A counts once for a.example though it has two recipients there
    assert a.oldest_id == "B" and a.oldest_age(NOW) == pytest.approx(3000)
    assert a.dominant is not None and a.dominant.category is Category.DNS_TEMP
    assert a.dominant.host == "mx.a.example" and a.dominant.record_type == "AAAA"
    assert b.dominant is not None and b.dominant.category is Category.CONNECT and b.buckets[9] == 1
    assert s.domains["c.example"].dominant is None
    # Equal counts: the domain holding the older message first.
    assert [d.domain for d in s.top(2)] == ["b.example", "a.example"]
    assert s.total.categories() == {Category.DNS_TEMP: 3, Category.CONNECT: 2}


def test_queue_summaries_weigh_by_message_count_and_filters_apply() -> None:
    items = [msg("Q", 60, ("", DNS), messages=14), msg("R", 1, ("a@z.example", None))]
    s = shape.build(items, now=NOW)
    assert s.total.messages == 15 and s.total.reasons.total() == 14
    assert shape.build(items, now=NOW, queues=["active"]).total.messages == 0


@pytest.mark.parametrize(("age_min", "count", "expected"), [
    (10, 1, status.Status.OK), (31, 1, status.Status.WARNING), (241, 1, status.Status.CRITICAL),
    (1, 50, status.Status.WARNING), (1, 100, status.Status.CRITICAL),
])
def test_thresholds(age_min: float, count: int, expected: status.Status) -> None:
    s = shape.build([msg("A", age_min, ("a@b.example", None), messages=count)], now=NOW)
    assert status.evaluate(s, status.Thresholds(warn_count=50, crit_count=100)) is expected


def test_durations() -> None:
    assert [status.parse_duration(t) for t in ("90s", "30m", "4h", "2d", "15")] == [90, 1800, 14400, 172800, 15]
    with pytest.raises(Exception, match="not a duration"):
        status.parse_duration("soon")
    assert status.format_age(3 * 86400 + 7200) == "3d02h"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["queue", *argv, "--now", str(NOW)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_is_readable_at_80_columns(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run(capsys, str(DATA / "exchange2016-get-message.json"))
    assert code == 2  # oldest is ~27 h old
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["domain", "T", "5"] and lines[2].split()[0] == "TOTAL"
    assert "stuck.example" in out and "dns-temp" in out and "ErrorRetry" in out


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(DATA / "exchange2010-get-queue.csv"), "--json", "--crit-age", "30d")
    doc = json.loads(out)
    assert code == 1 and doc["status"] == "WARNING" and doc["format"] == "exchange-csv"
    (dom,) = doc["domains"]
    assert dom["domain"] == "stuck.example" and dom["messages"] == 2
    assert dom["dominant_reason"]["category"] == "dns-temp" and dom["dominant_reason"]["detail"] == "ServerFailure"


def test_cli_nagios_perfdata(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(DATA / "opensmtpd-show-queue.txt"), "--nagios",
                       "--warn-count", "2", "--crit-count", "10", "--warn-age", "200d", "--crit-age", "300d")
    assert code == 1
    line, = out.splitlines()
    assert line.startswith("MXDOCTOR QUEUE WARNING - 3 message(s)")
    perf = line.split(" | ", 1)[1]
    assert "'messages'=3;2;10;0;" in perf and "'oldest_age'=100000s;17280000;25920000;0;" in perf
    assert "'deferrals_dns-temp'=1;;;0;" in perf and "'deferrals_connect'=1;;;0;" in perf


def test_cli_reads_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with open(DATA / "exim-bp.txt") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        code, out, _ = run(capsys, "-", "--json")
    doc = json.loads(out)
    assert doc["total"]["messages"] == 3 and doc["format"] == "exim" and code == 2


@pytest.mark.parametrize(("name", "fmt", "code", "fragment"), [
    ("malformed-truncated.jsonl", None, 0, "1 malformed line(s)"),
    ("malformed-binary.bin", None, 3, "not a queue listing mxdoctor knows"),
    ("malformed-binary.bin", "postfix-json", 3, "nothing readable"),
])
def test_cli_malformed(capsys: pytest.CaptureFixture[str], name: str, fmt: str | None, code: int,
                       fragment: str) -> None:
    extra = ["--format", fmt] if fmt else []
    got, out, err = run(capsys, str(DATA / name), "--warn-age", "1000d", "--crit-age", "2000d", *extra)
    assert got == code
    assert fragment in out + err
    assert "Traceback" not in err


def test_cli_usage_errors_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--warn-age", "soon", str(DATA / "exim-bp.txt"))[0] == 3
    assert run(capsys)[0] == 3
    code, _, err = run(capsys, "--sendmail", "--timeout", "5s")
    assert code == 3 and "mailq" in err  # no Sendmail here: the command cannot run


def test_parallel_shaping_matches_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mxdoctor.queues import formats as fmts
    from mxdoctor.queues import parallel

    lines = []
    for i in range(3000):
        lines.append(f'{{"queue_name": "deferred", "queue_id": "Q{i}", "arrival_time": {int(NOW) - i * 7}, '
                     f'"message_size": 10, "sender": "", "recipients": [{{"address": "u@d{i % 37}.example", '
                     f'"delay_reason": "{DNS if i % 3 else CONN}"}}]}}\n')
        if i in (5, 2900):
            lines.append("{broken\n")
    path = tmp_path / "q.jsonl"
    path.write_text("".join(lines))
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    one = shape.build(fmts.read(fmts.Source(path=str(path))), now=NOW)
    many = parallel.build_file(str(path), "postfix-json", now=NOW, jobs=3)
    assert many is not None
    assert [m.line for m in many.malformed_examples] == [m.line for m in one.malformed_examples] == [7, 2903]
    assert many.total.messages == one.total.messages == 3000 and many.total.buckets == one.total.buckets
    assert many.total.categories() == one.total.categories()
    for name, dom in one.domains.items():
        other = many.domains[name]
        assert (other.messages, other.buckets, other.oldest_arrival, other.dominant) == (
            dom.messages, dom.buckets, dom.oldest_arrival, dom.dominant)


def test_cli_jobs_gives_the_same_answer(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from mxdoctor.queues import parallel

    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    path = str(DATA / "postfix-3.7-postqueue-j-mixed.jsonl")
    one = json.loads(run(capsys, path, "--json")[1])
    two = json.loads(run(capsys, path, "--json", "--jobs", "2")[1])
    assert one["total"] == two["total"] and one["domains"] == two["domains"] and two["format"] == "postfix-json"
