"""The exchange layer against real servers on loopback: attempts, workarounds, classification, limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from _tree import DEAD, NS1, Tree, tree

from mxdoctor import evidence
from mxdoctor.dns.exchange import Engine, Recorder, ServerAnswer
from mxdoctor.evidence import Outcome, Transport
from mxdoctor.lab.faults import Fault

T = TypeVar("T")


def run_in_tree(
    tmp_path: Path,
    body: Callable[[Tree, Engine], Awaitable[T]],
    faults: Mapping[str, Sequence[Fault]] | None = None,
    *,
    timeout: float = 0.4,
    concurrency: int = 8,
    extra: Sequence[str] = (),
) -> tuple[T, Recorder]:
    async def main() -> tuple[T, Recorder]:
        async with tree(tmp_path, faults, extra) as t:
            recorder = Recorder()
            engine = Engine(recorder, timeout=timeout, per_server_concurrency=concurrency)
            try:
                return await body(t, engine), recorder
            finally:
                await engine.close()

    return asyncio.run(main())


def ask(
    qname: str, qtype: str, address: str = NS1, rd: bool = False
) -> Callable[[Tree, Engine], Awaitable[ServerAnswer]]:
    async def body(t: Tree, engine: Engine) -> ServerAnswer:
        return await engine.ask("test", t.server(address), qname, qtype, rd=rd)

    return body


def test_plain_answer_is_one_udp_exchange_with_edns(tmp_path: Path) -> None:
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "AAAA"))
    assert answer.outcome is Outcome.NOERROR
    assert answer.records == ("2001:db8::1",)
    assert answer.aa
    [x] = rec.exchanges
    assert (x.transport, x.edns, x.attempt, x.workaround) == (Transport.UDP, 0, 1, None)
    assert x.rcode == "NOERROR" and "AA" in x.flags and x.reply_edns == 0
    assert x.answer and "2001:db8::1" in x.answer[0]
    assert answer.exchanges == (x.id,)


def test_nodata_and_nxdomain(tmp_path: Path) -> None:
    async def body(t: Tree, engine: Engine) -> tuple[ServerAnswer, ServerAnswer]:
        nodata = await engine.ask("v", t.server(NS1), "ns1.example.test.", "AAAA", rd=False)
        nx = await engine.ask("v", t.server(NS1), "nope.example.test.", "A", rd=False)
        return nodata, nx

    (nodata, nx), _ = run_in_tree(tmp_path, body)
    assert nodata.outcome is Outcome.NODATA and nodata.records == ()
    assert nx.outcome is Outcome.NXDOMAIN


def test_truncation_retries_over_tcp(tmp_path: Path) -> None:
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "A"), {NS1: [Fault("truncate", transport="udp")]})
    assert answer.outcome is Outcome.NOERROR and answer.records == ("192.0.2.1",)
    first, second = rec.exchanges
    assert first.transport is Transport.UDP and "TC" in first.flags
    assert (second.transport, second.workaround, second.attempt) == (Transport.TCP, "TcpOnTruncation", 2)


def test_tcp_refused_after_truncation_is_recorded(tmp_path: Path) -> None:
    faults = {NS1: [Fault("truncate", transport="udp"), Fault("tcp-refuse")]}
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "A"), faults)
    assert answer.outcome is Outcome.NETWORK_ERROR
    assert [x.transport for x in rec.exchanges] == [Transport.UDP, Transport.TCP]
    assert rec.exchanges[1].error


def test_edns_formerr_falls_back_without_edns(tmp_path: Path) -> None:
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "A"), {NS1: [Fault("edns-formerr")]})
    assert answer.outcome is Outcome.NOERROR
    first, second = rec.exchanges
    assert (first.edns, first.outcome, first.rcode) == (0, Outcome.FORMERR, "FORMERR")
    assert (second.edns, second.workaround, second.outcome) == (
        None,
        "RetryWithoutEdnsOnFormerr",
        Outcome.NOERROR,
    )


def test_edns_silence_is_a_timeout_with_a_plain_dns_diagnostic(tmp_path: Path) -> None:
    # resolvers retry with EDNS and fail; the query without EDNS only tells why
    started = time.monotonic()
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "A"), {NS1: [Fault("edns-drop")]}, timeout=0.3)
    assert answer.outcome is Outcome.TIMEOUT
    assert answer.detail == "no reply to queries with EDNS; answers NOERROR without EDNS"
    by = {x.workaround: x for x in rec.exchanges}
    assert set(by) == {None, "RetryOnTimeout", "DiagnosticWithoutEdns"}
    assert (by[None].edns, by[None].outcome) == (0, Outcome.TIMEOUT)
    assert (by["RetryOnTimeout"].edns, by["RetryOnTimeout"].outcome) == (0, Outcome.TIMEOUT)
    assert (by["DiagnosticWithoutEdns"].edns, by["DiagnosticWithoutEdns"].outcome) == (None, Outcome.NOERROR)
    assert set(answer.exchanges) == {x.id for x in rec.exchanges}
    assert time.monotonic() - started < 1.5  # the diagnostic runs beside the retry, not after it


def test_silence_is_a_bounded_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "A"), {NS1: [Fault("drop")]}, timeout=0.25)
    elapsed = time.monotonic() - started
    assert answer.outcome is Outcome.TIMEOUT and answer.detail is None
    first, second, plain = sorted(rec.exchanges, key=lambda x: (x.attempt, x.edns is None))
    assert (first.outcome, second.outcome, plain.outcome) == (Outcome.TIMEOUT,) * 3
    assert (second.workaround, plain.workaround) == ("RetryOnTimeout", "DiagnosticWithoutEdns")
    # the retry waits twice as long, and the first attempt listens all along
    assert 0.7 < first.duration < 0.9 and 0.45 < second.duration < 0.65
    assert first.error is not None and "no reply within 0.25 s" in first.error
    assert second.error is not None and "no reply within 0.5 s" in second.error
    assert elapsed < 2.0


def test_late_reply_to_the_first_attempt_is_taken_and_said_late(tmp_path: Path) -> None:
    answer, rec = run_in_tree(
        tmp_path, ask("mx.example.test.", "A"), {NS1: [Fault("delay", seconds=0.4)]}, timeout=0.25
    )
    assert answer.outcome is Outcome.NOERROR
    first, second = sorted((x for x in rec.exchanges if x.edns is not None), key=lambda x: x.attempt)
    assert (first.edns, first.outcome) == (0, Outcome.NOERROR)  # the EDNS query was answered, late
    assert first.error is not None and "after the 0.25 s timeout" in first.error
    assert (second.workaround, second.outcome) == ("RetryOnTimeout", Outcome.TIMEOUT)
    assert answer.exchanges == (first.id, second.id)  # the diagnostic was cancelled: EDNS got an answer


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault("wrong-id"), "unexpected ID"),
        (Fault("garbage", size=40), "do not parse"),
        (Fault("wrong-question", qname="elsewhere.test."), "another question"),
    ],
    ids=["wrong-id", "garbage", "wrong-question"],
)
def test_replies_that_are_not_ours_are_malformed(tmp_path: Path, fault: Fault, words: str) -> None:
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "A"), {NS1: [fault]}, timeout=0.25)
    assert answer.outcome is Outcome.MALFORMED
    assert answer.detail is not None and words in answer.detail
    assert rec.exchanges[0].outcome is Outcome.MALFORMED
    assert rec.exchanges[0].error is not None and words in rec.exchanges[0].error


def test_four_byte_aaaa_is_broken(tmp_path: Path) -> None:
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "AAAA"), {NS1: [Fault("broken-aaaa")]})
    assert answer.outcome is Outcome.BROKEN
    assert answer.detail is not None and "AAAA rdata of 4 bytes" in answer.detail
    assert len(rec.exchanges) == 1  # a broken reply is an answer: no retry hides it


def test_records_of_another_type_are_broken(tmp_path: Path) -> None:
    faults = {NS1: [Fault("wrong-type", qtype="AAAA", rtype="A")]}
    answer, _ = run_in_tree(tmp_path, ask("mx.example.test.", "AAAA"), faults)
    assert answer.outcome is Outcome.BROKEN
    assert answer.detail is not None and "A at mx.example.test." in answer.detail


def test_rcodes_pass_through(tmp_path: Path) -> None:
    faults = {NS1: [Fault("rcode", rcode="SERVFAIL", qtype="AAAA")]}
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "AAAA"), faults)
    assert answer.outcome is Outcome.SERVFAIL and answer.rcode == "SERVFAIL"
    assert len(rec.exchanges) == 1


def test_same_question_is_sent_once_per_run(tmp_path: Path) -> None:
    async def body(t: Tree, engine: Engine) -> list[ServerAnswer]:
        q = [engine.ask(v, t.server(NS1), "mx.example.test.", "A", rd=False) for v in ("a", "b", "a")]
        first = await asyncio.gather(*q)
        again = await engine.ask("c", t.server(NS1), "mx.example.test.", "A", rd=False)
        assert t.queries(NS1).count(("mx.example.test.", "A", "udp")) == 1
        return [*first, again]

    answers, rec = run_in_tree(tmp_path, body)
    assert len(rec.exchanges) == 1
    assert len({a.exchanges for a in answers}) == 1


@pytest.mark.parametrize(("limit", "waves"), [(2, 3), (8, 1)])
def test_per_server_concurrency_is_bounded(tmp_path: Path, limit: int, waves: int) -> None:
    delay = 0.2

    async def body(t: Tree, engine: Engine) -> float:
        started = time.monotonic()
        names = [f"n{i}.example.test." for i in range(6)]
        await asyncio.gather(*(engine.ask("v", t.server(NS1), n, "A", rd=False) for n in names))
        return time.monotonic() - started

    elapsed, _ = run_in_tree(tmp_path, body, {NS1: [Fault("delay", seconds=delay)]}, timeout=2.0, concurrency=limit)
    assert waves * delay <= elapsed < (waves + 0.9) * delay


def test_port_unreachable_is_a_network_error(tmp_path: Path) -> None:
    started = time.monotonic()
    answer, rec = run_in_tree(tmp_path, ask("mx.example.test.", "A", address=DEAD), timeout=1.0)
    assert answer.outcome is Outcome.NETWORK_ERROR
    assert not answer.replied
    assert rec.exchanges[0].error
    assert time.monotonic() - started < 1.0


def test_ipv6_server(tmp_path: Path) -> None:
    async def body(t: Tree, engine: Engine) -> ServerAnswer:
        return await engine.ask("v", evidence.Server("::1", t.port), "mx.example.test.", "A", rd=True)

    answer, rec = run_in_tree(tmp_path, body, extra=["::1"])
    assert answer.outcome is Outcome.NOERROR
    assert rec.exchanges[0].server == evidence.Server("::1", answer.server.port)
