"""The per-run bounds, without sockets: the NS-resolution budget driving the walk through a glueless
fan-out, records kept per answer, replies parsed in part, and the slim copy of a reply kept."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rrset
import pytest

from mxdoctor import evidence
from mxdoctor.dns import iterate, wire
from mxdoctor.dns.exchange import Engine, Limits, Recorder, ServerAnswer, classify, slim
from mxdoctor.evidence import Outcome


@dataclass
class FanOut:
    """The glueless fan-out of the reliability reproducer, as a pure function: every question gets a
    referral of the name's top zone to ``k`` name servers without glue, each in a zone never seen
    (so no cut learnt for one name serves another: the worst case the budget must bound)."""

    k: int = 13
    zones: int = 0
    walks: int = 0
    deepest: int = 0
    depths: list[int] = field(default_factory=list)

    def reply(self, qname: str) -> dns.message.Message:
        self.zones += 1
        labels = dns.name.from_text(qname).labels
        child = dns.name.Name(labels[-2:])
        msg = dns.message.make_response(dns.message.make_query(qname, "A"))
        msg.flags &= ~dns.flags.AA
        names = [f"ns{i}.z{self.zones}x{i}." for i in range(self.k)]
        msg.authority.append(dns.rrset.from_text(child, 300, "IN", "NS", *names))
        return msg


def drive(table: iterate.ZoneTable, budget: iterate.NsBudget, server: FanOut, qname: str, depth: int) -> None:
    """What ``views.AuthoritativeView._walk`` does, with the server's replies given synchronously."""
    server.walks += 1
    walk = iterate.Walk(table, qname, "A")
    while True:
        step = walk.step()
        if isinstance(step, iterate.Found | iterate.Failed):
            return
        if isinstance(step, iterate.AskServers):
            for ns, address in step.servers:
                msg = server.reply(qname)
                walk.give(step.zone, ServerAnswer(evidence.Server(address, 53, ns), qname, "A", False,
                                                  Outcome.NOERROR, message=msg))  # fmt: skip
            continue
        for ns in step.names:
            if budget.admit(depth + 1):
                server.depths.append(depth + 1)
                for _ in ("A", "AAAA"):
                    drive(table, budget, server, ns, depth + 1)
            walk.learn_addresses(ns, ())


def fan_out(names: int, depth: int) -> tuple[iterate.NsBudget, FanOut]:
    table = iterate.ZoneTable(iterate.Cut(".", None, ["a.root."], {"a.root.": ("192.0.2.1",)}))
    budget, server = iterate.NsBudget(names, depth), FanOut()
    drive(table, budget, server, "hostile.test.", 0)
    return budget, server


def test_the_ns_budget_bounds_a_glueless_fan_out_in_count_and_depth() -> None:
    budget, server = fan_out(names=64, depth=3)
    assert budget.spent == 64 and max(server.depths) <= 3
    assert budget.refused_count > 0 and budget.refused_depth > 0  # both bounds did refuse, and say so
    assert server.walks == 1 + 2 * 64  # the question itself, then A and AAAA of each resolution allowed


def test_without_a_count_the_fan_out_grows_with_every_level() -> None:
    # the same tree with the depth bound alone: 13 new names for each name resolved, level after level
    shallow, _ = fan_out(names=10**6, depth=1)
    deeper, server = fan_out(names=10**6, depth=2)
    assert shallow.spent == 13
    assert deeper.spent == 13 + 13 * 13 and server.walks == 1 + 2 * deeper.spent


def test_the_walk_asks_for_glueless_addresses_a_few_at_a_time() -> None:
    table = iterate.ZoneTable(iterate.Cut(".", None, [f"ns{i}.elsewhere." for i in range(5)], {}))
    walk = iterate.Walk(table, "example.", "MX")
    first = walk.step()
    assert isinstance(first, iterate.NeedAddresses) and len(first.names) == iterate.NS_BATCH
    for ns in first.names:
        walk.learn_addresses(ns, ())
    second = walk.step()
    assert isinstance(second, iterate.NeedAddresses) and not set(second.names) & set(first.names)
    walk.learn_addresses(second.names[0], ("192.0.2.7",))
    for ns in second.names[1:]:
        walk.learn_addresses(ns, ())
    assert walk.step() == iterate.AskServers(".", ((second.names[0], "192.0.2.7"),))  # one that resolves will do


def big_mx(n: int) -> dns.message.Message:
    msg = dns.message.make_response(dns.message.make_query("example.", "MX"))
    msg.flags |= dns.flags.AA
    records = [f"{(n - i) * 10} mx{i}.example." for i in range(n)]
    msg.answer.append(dns.rrset.from_text("example.", 300, "IN", "MX", *records))
    return msg


def test_classify_keeps_the_lowest_preferences_of_a_huge_mx_set() -> None:
    c = classify(big_mx(250), "example.", "MX", max_records=32)
    assert len(c.records) == 32 and c.dropped == 218
    assert c.records[0] == "10 mx249.example." and c.records[-1] == "320 mx218.example."
    assert classify(big_mx(20), "example.", "MX", max_records=32).dropped == 0
    # servers rotate their records: the same set is kept whatever the order on the wire
    shuffled = big_mx(250)
    shuffled.answer[0] = dns.rrset.from_rdata_list("example.", 300, list(reversed(list(shuffled.answer[0]))))
    assert classify(shuffled, "example.", "MX", max_records=32).records == c.records


def test_a_reply_is_parsed_only_up_to_the_record_limit() -> None:
    data = big_mx(1000).to_wire(max_size=65535)
    cut = wire.first_records(data, 100)
    assert cut is not None and len(cut) < len(data) / 5
    decoded = wire.decode(data, max_records=100)
    assert isinstance(decoded, dns.message.Message) and len(decoded.answer[0]) == 100
    assert wire.first_records(data, 5000) is None  # no more than the limit: left whole
    assert wire.first_records(data[:40], 100) is None  # record headers cut short: the full parse says why


@pytest.mark.parametrize("limit", [3, 32])
def test_section_text_keeps_the_first_lines(limit: int) -> None:
    assert len(wire.section_text(big_mx(100).answer, limit)) == limit


def test_the_slim_reply_keeps_what_the_walk_reads() -> None:
    msg = dns.message.make_response(dns.message.make_query("mx.example.test.", "A"))
    msg.flags &= ~dns.flags.AA
    names = [f"ns{i}.example.test." for i in range(40)]
    msg.authority.append(dns.rrset.from_text("example.test.", 300, "IN", "NS", *names))
    for i, host in enumerate(names):
        msg.additional.append(dns.rrset.from_text(host, 300, "IN", "A", f"192.0.2.{i + 1}"))
    kept = slim(msg, 8)
    assert len(kept.authority[0]) == 8 and len(kept.additional) == 8
    cut = iterate.read_referral(kept, "test.", "mx.example.test.")
    assert cut is not None and cut.name == "example.test." and len(cut.addresses()) == 8
    small = big_mx(3)
    assert slim(small, 8) is small


def test_questions_past_the_exchange_limit_are_not_sent_and_say_why() -> None:
    async def ask() -> tuple[ServerAnswer, Recorder]:
        recorder = Recorder()
        engine = Engine(recorder, limits=Limits(exchanges=0))
        try:
            return await engine.ask("internal", evidence.Server("127.0.0.1", 9), "example.", "MX", rd=True), recorder
        finally:
            await engine.close()

    answer, recorder = asyncio.run(ask())
    assert answer.outcome is Outcome.TIMEOUT and answer.detail is not None and "not sent" in answer.detail
    assert not recorder.exchanges and recorder.limits["exchanges"].count == 1


def test_the_limits_reached_round_trip_and_older_evidence_loads_without_them() -> None:
    cut = evidence.LimitReached("ns-names", "glueless NS names past 64 in the run not resolved", 209)
    ev = evidence.Evidence("hostile.test", "hostile.test", limits_reached=(cut,))
    assert evidence.loads(evidence.dumps(ev)) == ev and tuple(map(int, ev.version.split("."))) >= (1, 1)
    data = evidence.to_dict(ev) | {"version": "1.0"}
    del data["limits_reached"]
    assert evidence.from_dict(data).limits_reached == ()
