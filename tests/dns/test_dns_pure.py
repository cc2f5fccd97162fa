"""The I/O-free parts of the engine: attempt plan, reply classification, referrals, the walk, the
authoritative summary, and the parsing of server arguments, resolv.conf and root hints."""

from __future__ import annotations

from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from mxdoctor import evidence
from mxdoctor.dns import iterate, system, wire
from mxdoctor.dns.exchange import AttemptPlan, AttemptResult, ServerAnswer, classify
from mxdoctor.errors import ConfigError
from mxdoctor.evidence import Lookup, Outcome, Transport


def plan_after(*results: AttemptResult, edns: bool = True) -> list[tuple[Transport, int | None, str | None]]:
    plan = AttemptPlan(edns=edns)
    seen = []
    for result in results:
        attempt = plan.next()
        assert attempt is not None
        seen.append((attempt.transport, attempt.edns, attempt.workaround))
        plan.give(result)
    nxt = plan.next()
    if nxt is not None:
        seen.append((nxt.transport, nxt.edns, nxt.workaround))
    return seen


def test_plan_truncation_goes_to_tcp_keeping_edns() -> None:
    assert plan_after(AttemptResult(Outcome.NODATA, "NOERROR", truncated=True)) == [
        (Transport.UDP, 0, None),
        (Transport.TCP, 0, "TcpOnTruncation"),
    ]


@pytest.mark.parametrize(
    ("result", "workaround"),
    [
        (AttemptResult(Outcome.FORMERR, "FORMERR"), "RetryWithoutEdnsOnFormerr"),
        (AttemptResult(Outcome.NOTIMP, "NOTIMP"), "RetryWithoutEdnsOnNotimp"),
        (AttemptResult(Outcome.OTHER_RCODE, "BADVERS"), "RetryWithoutEdnsOnBadvers"),
    ],
    ids=["formerr", "notimp", "badvers"],
)
def test_plan_edns_fallbacks(result: AttemptResult, workaround: str) -> None:
    assert plan_after(result)[1] == (Transport.UDP, None, workaround)


def test_plan_retries_a_timeout_with_edns_as_resolvers_do() -> None:
    # DNS Flag Day 2019: silence is loss, not a reason to drop EDNS
    assert plan_after(AttemptResult(Outcome.TIMEOUT), AttemptResult(Outcome.TIMEOUT)) == [
        (Transport.UDP, 0, None),
        (Transport.UDP, 0, "RetryOnTimeout"),
    ]


def test_plan_gives_up_after_the_fallback_fails_too() -> None:
    timeouts = plan_after(AttemptResult(Outcome.TIMEOUT), AttemptResult(Outcome.TIMEOUT))
    assert len(timeouts) == 2
    formerr = plan_after(AttemptResult(Outcome.FORMERR, "FORMERR"), AttemptResult(Outcome.FORMERR, "FORMERR"))
    assert len(formerr) == 2


def test_plan_without_edns_retries_udp_once_on_timeout() -> None:
    seen = plan_after(AttemptResult(Outcome.TIMEOUT), AttemptResult(Outcome.TIMEOUT), edns=False)
    assert seen == [(Transport.UDP, None, None), (Transport.UDP, None, "RetryOnTimeout")]


@pytest.mark.parametrize("outcome", [Outcome.NOERROR, Outcome.SERVFAIL, Outcome.MALFORMED, Outcome.BROKEN])
def test_plan_stops_on_an_answer_or_failure_without_workaround(outcome: Outcome) -> None:
    assert len(plan_after(AttemptResult(outcome))) == 1


def reply(
    qname: str, qtype: str, *rrs: tuple[str, str, str], rcode: dns.rcode.Rcode = dns.rcode.NOERROR
) -> dns.message.Message:
    msg = dns.message.make_response(dns.message.make_query(qname, qtype))
    msg.set_rcode(rcode)
    for owner, rtype, rdata in rrs:
        msg.answer.append(dns.rrset.from_text(owner, 300, "IN", rtype, rdata))
    return msg


def test_classify_follows_cnames_to_the_data() -> None:
    msg = reply(
        "www.example.", "A", ("www.example.", "CNAME", "a.example."), ("a.example.", "CNAME", "b.other."),
        ("b.other.", "A", "192.0.2.7"),
    )  # fmt: skip
    c = classify(msg, "www.example.", "A")
    assert (c.outcome, c.records, c.cnames, c.ttl) == (Outcome.NOERROR, ("192.0.2.7",), ("a.example.", "b.other."), 300)


def test_classify_nodata_nxdomain_and_rcodes() -> None:
    assert classify(reply("x.example.", "AAAA"), "x.example.", "AAAA").outcome is Outcome.NODATA
    nx = reply("x.example.", "A", rcode=dns.rcode.NXDOMAIN)
    assert classify(nx, "x.example.", "A").outcome is Outcome.NXDOMAIN
    sf = reply("x.example.", "A", rcode=dns.rcode.SERVFAIL)
    assert classify(sf, "x.example.", "A").outcome is Outcome.SERVFAIL
    yx = reply("x.example.", "A", rcode=dns.rcode.YXDOMAIN)
    assert classify(yx, "x.example.", "A").outcome is Outcome.OTHER_RCODE


def test_classify_other_type_at_the_name_is_broken() -> None:
    c = classify(reply("mx.example.", "AAAA", ("mx.example.", "A", "192.0.2.1")), "mx.example.", "AAAA")
    assert c.outcome is Outcome.BROKEN
    assert c.detail == "answer holds A at mx.example. where AAAA was asked"


def test_decode_names_the_bad_aaaa_size() -> None:
    msg = reply("mx.example.", "AAAA", ("mx.example.", "A", "192.0.2.1"))
    raw = bytearray(msg.to_wire())
    at = raw.rfind(bytes([0, 1, 0, 1, 0, 0, 1, 44]))  # type A, class IN, TTL 300 of the answer
    raw[at : at + 2] = b"\x00\x1c"
    decoded = wire.decode(bytes(raw))
    assert isinstance(decoded, wire.Undecodable)
    assert decoded.qname == "mx.example." and decoded.qtype == "AAAA" and decoded.id == msg.id
    assert decoded.detail.startswith("AAAA rdata of 4 bytes")


def test_decode_flags_a_truncated_reply_cut_inside_a_record() -> None:
    msg = reply("big.example.", "TXT", ("big.example.", "TXT", '"' + "x" * 200 + '"'))
    msg.flags |= dns.flags.TC
    decoded = wire.decode(msg.to_wire()[:-50])
    assert isinstance(decoded, wire.Undecodable) and decoded.truncated and decoded.qname == "big.example."


def test_decode_garbage() -> None:
    decoded = wire.decode(b"\x12\x34\xff\xff\x00")
    assert isinstance(decoded, wire.Undecodable) and decoded.qname is None


def referral(qname: str, child: str, ns: dict[str, str]) -> dns.message.Message:
    msg = dns.message.make_response(dns.message.make_query(qname, "A"))
    msg.flags &= ~dns.flags.AA
    msg.authority.append(dns.rrset.from_text(child, 300, "IN", "NS", *ns))
    for host, address in ns.items():
        if address:
            msg.additional.append(dns.rrset.from_text(host, 300, "IN", "A", address))
    return msg


def test_read_referral_takes_ns_and_glue_below_the_zone_only() -> None:
    msg = referral("mx.example.test.", "example.test.", {"ns1.example.test.": "192.0.2.53", "ns.other.": ""})
    cut = iterate.read_referral(msg, "test.", "mx.example.test.")
    assert cut is not None
    assert (cut.name, cut.parent, cut.ns) == ("example.test.", "test.", ["ns1.example.test.", "ns.other."])
    assert cut.glue == {"ns1.example.test.": ("192.0.2.53",)}
    assert cut.unresolved() == ["ns.other."]
    # an upward referral (to the root or the same zone) is no delegation
    assert (
        iterate.read_referral(referral("mx.example.test.", "test.", {"a.": "192.0.2.1"}), "test.", "mx.example.test.")
        is None
    )
    assert iterate.read_referral(msg, "example.test.", "mx.example.test.") is None


def answer(outcome: Outcome, records: tuple[str, ...] = (), aa: bool = True, addr: str = "192.0.2.1") -> ServerAnswer:
    return ServerAnswer(evidence.Server(addr), "mx.example.test.", "AAAA", False, outcome, records=records, aa=aa)


def test_walk_descends_on_referrals_and_stops_on_an_authoritative_answer() -> None:
    root = iterate.Cut(".", None, ["a.root."], {"a.root.": ("192.0.2.1", "2001:db8::1")})
    table = iterate.ZoneTable(root)
    walk = iterate.Walk(table, "mx.example.test.", "AAAA")
    first = walk.step()
    assert first == iterate.AskServers(".", (("a.root.", "192.0.2.1"),))  # root: one first, IPv4 first
    ref = referral("mx.example.test.", "test.", {"ns1.nic.test.": "192.0.2.2", "ns2.nic.test.": "192.0.2.3"})
    walk.give(
        ".", ServerAnswer(evidence.Server("192.0.2.1"), "mx.example.test.", "AAAA", False, Outcome.NODATA, message=ref)
    )
    second = walk.step()
    assert isinstance(second, iterate.AskServers) and len(second.servers) == 2  # below the root: all at once
    auth = reply("mx.example.test.", "AAAA")
    auth.flags |= dns.flags.AA
    moves = walk.moves
    walk.give(".", answer(Outcome.NODATA))  # late answer of a zone left behind: ignored
    assert walk.moves == moves
    found = ServerAnswer(
        evidence.Server("192.0.2.2"), "mx.example.test.", "AAAA", False, Outcome.NODATA, aa=True, message=auth
    )
    walk.give("test.", found)
    assert walk.step() == iterate.Found("test.", found)
    assert [z.name for z in table.zones()] == [".", "test."]


def test_walk_asks_the_other_root_servers_together_after_the_first_fails() -> None:
    hints: dict[str, tuple[str, ...]] = {
        "a.root.": ("192.0.2.1",),
        "b.root.": ("192.0.2.2",),
        "c.root.": ("2001:db8::3",),
    }
    walk = iterate.Walk(iterate.ZoneTable(iterate.Cut(".", None, list(hints), hints)), "example.", "MX")
    assert walk.step() == iterate.AskServers(".", (("a.root.", "192.0.2.1"),))
    walk.give(".", answer(Outcome.TIMEOUT))
    assert walk.step() == iterate.AskServers(".", (("b.root.", "192.0.2.2"), ("c.root.", "2001:db8::3")))
    walk.give(".", answer(Outcome.TIMEOUT, addr="192.0.2.2"))
    walk.give(".", answer(Outcome.NETWORK_ERROR, addr="2001:db8::3"))
    assert walk.step() == iterate.Found(".", None)  # every root server tried: the root is all there is


def test_walk_asks_for_addresses_of_glueless_servers_then_reports_the_deepest_zone() -> None:
    table = iterate.ZoneTable(iterate.Cut(".", None, ["ns.elsewhere."], {}))
    walk = iterate.Walk(table, "example.", "MX")
    assert walk.step() == iterate.NeedAddresses(".", ("ns.elsewhere.",))
    walk.learn_addresses("ns.elsewhere.", ())
    assert isinstance(walk.step(), iterate.Failed)


def lk(outcome: Outcome, *records: str, server: str = "192.0.2.1") -> Lookup:
    return Lookup(
        "authoritative", evidence.Server(server), "mx.example.", "AAAA", outcome, records=records, exchanges=(1,)
    )


def test_summary_majority_answer_wins_over_one_broken_server() -> None:
    s = iterate.summarise(
        "authoritative", "mx.example.", "AAAA", [lk(Outcome.SERVFAIL), lk(Outcome.NOERROR, "2001:db8::1")]
    )
    assert s.outcome is Outcome.NOERROR and s.server is None and s.records == ("2001:db8::1",)
    assert s.detail == "1 of 2 servers"


def test_summary_all_broken_is_the_most_common_failure() -> None:
    s = iterate.summarise(
        "authoritative", "mx.example.", "AAAA", [lk(Outcome.TIMEOUT), lk(Outcome.SERVFAIL), lk(Outcome.SERVFAIL)]
    )
    assert s.outcome is Outcome.SERVFAIL and s.exchanges == (1, 1, 1)


def test_summary_majority_among_disagreeing_answers() -> None:
    s = iterate.summarise(
        "authoritative", "mx.example.", "AAAA",
        [lk(Outcome.NODATA), lk(Outcome.NOERROR, "2001:db8::1"), lk(Outcome.NOERROR, "2001:db8::1")],
    )  # fmt: skip
    assert s.outcome is Outcome.NOERROR


def test_judge_makes_unauthoritative_answers_and_referrals_lame() -> None:
    assert iterate.judge("a", "example.", answer(Outcome.REFUSED)).outcome is Outcome.REFUSED
    assert iterate.judge("a", "example.", answer(Outcome.NODATA, aa=False)).outcome is Outcome.LAME
    assert iterate.judge("a", "example.", answer(Outcome.SERVFAIL)).outcome is Outcome.SERVFAIL
    upward = referral("mx.example.test.", "test.", {"a.": "192.0.2.1"})
    judged = iterate.judge(
        "a",
        "example.test.",
        ServerAnswer(evidence.Server("192.0.2.1"), "mx.example.test.", "A", False, Outcome.NODATA, message=upward),
    )
    assert judged.outcome is Outcome.LAME and judged.detail is not None and "referral to test." in judged.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", evidence.Server("192.0.2.1", 5300)),
        ("192.0.2.1:53", evidence.Server("192.0.2.1", 53)),
        ("::1", evidence.Server("::1", 5300)),
        ("[::1]:5353", evidence.Server("::1", 5353)),
        ("[2001:DB8::1]", evidence.Server("2001:db8::1", 5300)),
    ],
)
def test_parse_server(text: str, expected: evidence.Server) -> None:
    assert system.parse_server(text, 5300) == expected


@pytest.mark.parametrize("text", ["dns.example", "192.0.2.1:0", "192.0.2.1:x", "[::1", "[::1]x", "", "1.2.3.4:70000"])
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        system.parse_server(text)


def test_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\nsearch example\nnameserver 127.0.0.53 # local\nnameserver fe80::1%eth0\nnameserver bogus\n"
        "options edns0\nnameserver 127.0.0.2\nnameserver 127.0.0.3\n"
    )
    servers = system.resolv_conf_servers(conf, 5300)
    assert [s.address for s in servers] == ["127.0.0.53", "fe80::1", "127.0.0.2"]
    assert {s.port for s in servers} == {5300}
    assert system.resolv_conf_servers(tmp_path / "missing") == (evidence.Server("127.0.0.1"),)  # as glibc


def test_resolv_conf_timer_as_glibc_reads_it(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    assert system.resolv_conf_timer(tmp_path / "missing") == system.StubTimer(5.0, 2)  # glibc's defaults
    conf.write_text("nameserver 127.0.0.53\noptions edns0 timeout:3 attempts:4 # local\n")
    assert system.resolv_conf_timer(conf) == system.StubTimer(3.0, 4)
    assert system.resolv_conf_timer(conf).wait == 12.0
    # the last value wins; glibc caps timeout at 30 s and attempts at 5; junk is ignored
    conf.write_text("options timeout:1\noptions timeout:99 attempts:9 attempts:x\n")
    assert system.resolv_conf_timer(conf) == system.StubTimer(30.0, 5)


def test_root_hints(tmp_path: Path) -> None:
    builtin = system.load_root_hints(None)
    assert len(builtin) == 13 and builtin["a.root-servers.net."] == ("198.41.0.4", "2001:503:ba3e::2:30")
    hints = tmp_path / "named.root"
    hints.write_text("; lab\n.  3600000 IN NS A.ROOT.LAB.\nA.ROOT.LAB. 3600000 A 127.0.0.1\n")
    assert system.load_root_hints(hints) == {"a.root.lab.": ("127.0.0.1",)}
    hints.write_text("; nothing\n")
    with pytest.raises(ConfigError):
        system.load_root_hints(hints)
    with pytest.raises(ConfigError):
        system.load_root_hints(tmp_path / "missing")
