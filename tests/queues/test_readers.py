"""Readers on recorded listings: every format gives the same records, and broken input is counted."""

from __future__ import annotations

import io
import itertools
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from mxdoctor.errors import QueueError
from mxdoctor.queues import exchange_json, formats, postfix_json, postfix_text
from mxdoctor.queues.record import Malformed, Mta, QueuedMessage

DATA = Path(__file__).parent.parent / "data" / "queues"
NOW = 1700100000.0  # 2023-11-16, after every sample's arrival


def read(name: str, fmt: str | None = None, now: float = NOW) -> tuple[list[QueuedMessage], list[Malformed]]:
    items = list(formats.read(formats.Source(path=str(DATA / name), format=fmt), now=now))
    return ([i for i in items if isinstance(i, QueuedMessage)], [i for i in items if isinstance(i, Malformed)])


DETECT = [
    ("postfix-3.7-postqueue-j.jsonl", "postfix-json"),
    ("postfix-3.7-postqueue-j-mixed.jsonl", "postfix-json"),
    ("postfix-3.7-postqueue-p.txt", "postfix-text"),
    ("postfix-3.7-postqueue-p-long-reason.txt", "postfix-text"),
    ("exim-bp.txt", "exim"),
    ("exim-4.96-bp.txt", "exim"),
    ("sendmail-mailq.txt", "sendmail"),
    ("opensmtpd-show-queue.txt", "opensmtpd"),
    ("opensmtpd-6.8-show-queue.txt", "opensmtpd"),
    ("exchange2010-get-message.csv", "exchange-csv"),
    ("exchange2010-get-queue.csv", "exchange-csv"),
    ("exchange2016-get-message.json", "exchange-json"),
    ("exchange2016-get-queue.json", "exchange-json"),
]


@pytest.mark.parametrize(("name", "fmt"), DETECT, ids=[d[0] for d in DETECT])
def test_detects_format_and_reads_cleanly(name: str, fmt: str) -> None:
    assert formats.detected_format(formats.Source(path=str(DATA / name))) == fmt
    messages, bad = read(name)
    assert messages and not bad
    assert all(m.mta is formats.FORMATS[fmt].mta for m in messages)


def test_postfix_text_carries_reason_and_reads_unindented_long_reason() -> None:
    messages, _ = read("postfix-3.7-postqueue-p-long-reason.txt")
    (msg,) = messages
    reasons = {r.address: r.delay_reason for r in msg.recipients}
    assert reasons["u1@dns.example"] == reasons["u2@dns.example"]
    assert reasons["u2@dns.example"] is not None and "type=AAAA" in reasons["u2@dns.example"]
    assert reasons["v@conn.example"] == "connect to 127.0.0.1[127.0.0.1]:1: Connection refused"
    assert msg.queue_name == "deferred" and msg.size == 262 and msg.sender == "a@example.org"


def test_postfix_text_and_json_agree() -> None:
    js, _ = read("postfix-3.7-postqueue-j-mixed.jsonl")
    # The text listing has no year: read it as of shortly after the capture.
    text, _ = read("postfix-3.7-postqueue-p-long-reason.txt", now=(js[0].arrival or 0) + 60)
    assert [m.recipients for m in text] == [m.recipients for m in js]
    assert [(m.queue_id, m.size, m.sender) for m in text] == [(m.queue_id, m.size, m.sender) for m in js]
    # mailq prints local time to the second, postqueue -j epoch seconds: the same instant.
    assert [m.arrival for m in text] == [m.arrival for m in js]


def test_postfix_json_ignores_unknown_members_and_reads_new_ones() -> None:
    line = ('{"queue_name": "hold", "queue_id": "4Xk2", "arrival_time": 1700000000, "message_size": 9, '
            '"forced_expire": true, "sender": "", "future_member": [1, 2], "recipients": '
            '[{"address": "x@Dom.Example", "orig_address": "y@a", "delay_reason": "", "bounce_reason": "z"}]}')
    (msg,) = list(postfix_json.read([line]))
    assert isinstance(msg, QueuedMessage)
    assert msg.queue_name == "hold" and msg.status == "expiring" and msg.sender == ""
    assert msg.recipients[0].domain == "dom.example" and msg.recipients[0].delay_reason is None
    assert msg.arrival_time is not None and msg.arrival_time.year == 2023


def test_exim_ages_sizes_frozen_and_delivered() -> None:
    messages, _ = read("exim-bp.txt")
    first, frozen, old = messages
    assert first.arrival == NOW - 25 * 60 and first.size == int(2.9 * 1024)
    assert [r.address for r in first.recipients] == ["bob@stuck.example"]  # carol was delivered (D)
    assert frozen.status == "frozen" and frozen.sender == ""
    assert old.queue_id == "16VDhn-000000001bo-D342" and old.arrival == NOW - 3 * 86400
    assert {r.domain for r in old.recipients} == {"far.example", "stuck.example"}


def test_real_exim_listing() -> None:
    messages, bad = read("exim-4.96-bp.txt")
    assert not bad and [m.queue_id for m in messages] == ["1xXQ0R-0005OG-1l", "1xXQ0R-0005OJ-1n", "1xXQ0R-0005OM-1o"]
    first, bounce, frozen = messages
    assert [r.address for r in first.recipients] == ["bob@stuck.example"]  # carol@ok.example delivered
    assert bounce.sender == "" and frozen.status == "frozen" and frozen.size == int(3.2 * 1024)
    assert all(m.arrival == NOW for m in messages)  # "0m": queued less than a minute before


def test_sendmail_status_line_applies_to_all_recipients() -> None:
    messages, _ = read("sendmail-mailq.txt")
    locked = messages[1]
    assert locked.status == "locked" and locked.queue_name == "mqueue"
    assert {r.delay_reason for r in locked.recipients} == {"host map: lookup (163.com): deferred"}
    assert messages[2].recipients[0].address == "dave@stuck.example"


def test_opensmtpd_fields() -> None:
    messages, _ = read("opensmtpd-show-queue.txt")
    first, _, bounce = messages
    assert first.retry_count == 4 and first.arrival == 1700000000
    assert first.recipients[0].delay_reason == "Temporary failure in MX lookup"
    assert first.status == "pending"
    assert bounce.sender == "" and bounce.status == "offline,bounce" and bounce.recipients[0].delay_reason is None


def test_real_opensmtpd_listing() -> None:
    messages, bad = read("opensmtpd-6.8-show-queue.txt")
    assert not bad and len(messages) == 3
    assert {m.recipients[0].address for m in messages} == {"bob@stuck.example", "carol@far.example",
                                                            "erin@stuck.example"}
    assert all(m.retry_count == 1 and m.status == "pending,auth" for m in messages)
    assert {m.recipients[0].delay_reason for m in messages} == {"Network error on destination MXs"}


def test_opensmtpd_error_line_may_hold_a_bar() -> None:
    line = "00000000000000aa|local|mta||a@b|c@d|c@d|1|2|3|1|pending|5|450 4.7.1 greylisted | retry later\n"
    (msg,) = list(formats.FORMATS["opensmtpd"].read([line]))
    assert isinstance(msg, QueuedMessage)
    assert msg.recipients[0].delay_reason == "450 4.7.1 greylisted | retry later"


def test_exchange_csv_recipient_info_and_dates() -> None:
    messages, _ = read("exchange2010-get-message.csv")
    first, second, ready = messages
    assert first.size == 4608 and first.retry_count == 3 and first.queue_name == "EXCH01\\12"
    # The recipient's own error wins over the message's LastError.
    assert first.recipients[0].delay_reason is not None
    assert first.recipients[0].delay_reason.endswith("ServerFailure")
    # joe has no error of his own: the message LastError is used.
    assert [r.delay_reason for r in second.recipients] == ["451 4.4.0 DNS query failed"] * 2
    assert ready.recipients[0].delay_reason is None and ready.status == "Ready"


def test_exchange_queue_exports_stand_for_many_messages() -> None:
    csv_queues, _ = read("exchange2010-get-queue.csv")
    json_queues, _ = read("exchange2016-get-queue.json")
    assert csv_queues[0].messages == 2 and csv_queues[0].recipients[0].domain == "stuck.example"
    assert json_queues[0].messages == 14 and json_queues[0].arrival == 1700000300.0
    assert json_queues[1].messages == 0


def test_exchange_json_dates_nested_recipients_and_compressed_form() -> None:
    messages, _ = read("exchange2016-get-message.json")
    assert messages[0].arrival == 1700000000.0 and messages[0].size == 8429
    assert messages[1].recipients[0].address == "ops@far.example"
    assert "SocketError" in (messages[1].recipients[0].delay_reason or "")
    compressed = '[{"Identity":"S\\\\1\\\\2","DateReceived":"\\/Date(1700000000000+0100)\\/",' \
                 '"Recipients":"a@x.example; b@y.example","LastError":"brace } in [text]"},{"Identity":"S\\\\1\\\\3"}]'
    items = list(exchange_json.read([compressed]))
    assert [type(i) for i in items] == [QueuedMessage, QueuedMessage]
    first = items[0]
    assert isinstance(first, QueuedMessage)
    assert [r.domain for r in first.recipients] == ["x.example", "y.example"]
    assert first.recipients[0].delay_reason == "brace } in [text]"


MALFORMED = [
    # (file, format forced or None, messages read, malformed count, problem fragment)
    ("malformed-truncated.jsonl", None, 1, 1, "not JSON"),
    ("malformed-truncated-exchange.json", None, 1, 1, "truncated JSON object"),
    ("malformed-binary.bin", "postfix-json", 0, None, "not JSON"),
    ("malformed-binary.bin", "exchange-json", 0, None, "outside JSON"),
    ("malformed-binary.bin", "postfix-text", 0, None, "not a queue entry line"),
    ("exim-bp.txt", "postfix-json", 0, 8, "not JSON"),
    ("sendmail-mailq.txt", "opensmtpd", 0, 13, "not 14"),
]


@pytest.mark.parametrize(("name", "fmt", "n_ok", "n_bad", "problem"), MALFORMED,
                         ids=[f"{m[0]}-{m[1]}" for m in MALFORMED])
def test_malformed_input_is_counted_not_fatal(
    name: str, fmt: str | None, n_ok: int, n_bad: int | None, problem: str
) -> None:
    messages, bad = read(name, fmt)
    assert len(messages) == n_ok
    assert bad and all(b.line >= 1 for b in bad)
    if n_bad is not None:
        assert len(bad) == n_bad
    assert problem in bad[0].problem


def test_unknown_format_is_one_clear_error() -> None:
    with pytest.raises(QueueError, match="not a queue listing mxdoctor knows"):
        read("malformed-binary.bin")


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(QueueError, match="No such file"):
        list(formats.read(formats.Source(path=str(tmp_path / "nope"))))


def test_empty_listing_reads_as_empty_queue(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("Mail queue is empty\n")
    assert list(formats.read(formats.Source(path=str(tmp_path / "empty")))) == []
    (tmp_path / "blank").write_text("")
    assert list(formats.read(formats.Source(path=str(tmp_path / "blank")))) == []


def _synthetic(n: int) -> Iterator[str]:
    for i in range(n):
        yield (f'{{"queue_name": "deferred", "queue_id": "Q{i:08X}", "arrival_time": {1700000000 + i}, '
               f'"message_size": 1000, "sender": "s@example.org", "recipients": [{{"address": '
               f'"u{i}@d{i % 100}.example", "delay_reason": "connect to mx[192.0.2.1]:25: Connection timed out"}}]}}\n')


def test_readers_stream_in_constant_memory() -> None:
    def peak(n: int) -> int:
        tracemalloc.start()
        try:
            for _ in postfix_json.read(_synthetic(n)):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(1_000), peak(50_000)
    assert large < small * 2 + 64 * 1024


def test_postfix_text_streams_from_a_text_stream() -> None:
    head = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
    body = "".join(
        f"{i:011X}     300 Thu Nov 16 01:00:00  s@example.org\n"
        f"                       (connect to x[192.0.2.1]:25: Connection timed out)\n"
        f"                                         r{i}@dom.example\n\n" for i in range(100)
    )
    items = list(itertools.islice(postfix_text.read(io.StringIO(head + body), now=NOW), 1000))
    assert len(items) == 100 and all(isinstance(i, QueuedMessage) for i in items)
    assert all(isinstance(i, QueuedMessage) and i.mta is Mta.POSTFIX for i in items)


def test_formats_are_found_by_import_in_their_declared_order() -> None:
    import importlib
    import pkgutil

    import mxdoctor.queues as package

    # Detection order, --<mta> commands and the --jobs formats as they were before discovery.
    assert list(formats.FORMATS) == ["postfix-json", "exchange-snapshot", "exchange-json", "exchange-csv",
                                     "opensmtpd", "postfix-text", "sendmail", "exim"]
    assert {mta: f.name for mta, f in formats.BY_MTA.items()} == {
        Mta.POSTFIX: "postfix-json", Mta.EXIM: "exim", Mta.SENDMAIL: "sendmail",
        Mta.OPENSMTPD: "opensmtpd", Mta.EXCHANGE: "exchange-json"}
    assert formats.LINE_FORMATS == {"postfix-json", "opensmtpd"}
    # Every public module with a read function is a registered format: none is listed by hand.
    readers = set()
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"mxdoctor.queues.{info.name}")
        if not info.name.startswith("_") and callable(getattr(module, "read", None)) and hasattr(module, "NAME"):
            readers.add(module.NAME)
            assert formats.FORMATS[module.NAME].read is module.read
    assert readers == set(formats.FORMATS)
