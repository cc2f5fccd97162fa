"""The lab recursive resolver against real lab servers on loopback: iteration, caching, failure passing."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from _resolver_lab import DEAD, FORWARDING, NS1, NS2, RESOLVER, ROOT, TLD, MiniLab, mini_lab, rdtexts

import mxdoctor.lab
from _helpers import ask
from mxdoctor.lab import dnsserver, resolver
from mxdoctor.lab.faults import Fault

MX_HOST = "mx.example.test."


def run(
    scenario: Callable[[MiniLab], Awaitable[None]],
    faults: dict[str, list[Fault]] | None = None,
    **options: object,
) -> None:
    async def main() -> None:
        async with mini_lab(faults, **options) as lab:
            await scenario(lab)

    asyncio.run(main())


def on_both(fault: Fault) -> dict[str, list[Fault]]:
    return {"ns1": [fault], "ns2": [fault]}


def test_iterates_from_the_root_for_a_aaaa_mx() -> None:
    async def scenario(lab: MiniLab) -> None:
        mx = await lab.ask("example.test.", "MX")
        a = await lab.ask(MX_HOST, "A")
        aaaa = await lab.ask("mx6.example.test.", "AAAA")
        assert rdtexts(mx, "MX") == ["10 mx.example.test."]
        assert rdtexts(a, "A") == ["127.0.77.25"]
        assert rdtexts(aaaa, "AAAA") == ["2001:db8::25"]
        for reply in (mx, a, aaaa):
            assert reply.rcode() == dns.rcode.NOERROR
            assert reply.flags & dns.flags.RA and not reply.flags & dns.flags.AA
        # It really walked down: root and TLD were asked, then the zone's server.
        servers = [q.server for q in lab.resolver.upstream if q.qname == "example.test." and q.qtype == "MX"]
        assert servers[:2] == ["127.0.77.1", "127.0.77.2"] and servers[2] in (NS1, NS2)

    run(scenario)


def test_follows_cname_across_zones_through_a_glueless_delegation() -> None:
    async def scenario(lab: MiniLab) -> None:
        reply = await lab.ask("www.example.test.", "A")
        assert reply.rcode() == dns.rcode.NOERROR
        assert [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in reply.answer] == [
            ("www.example.test.", "CNAME"),
            ("web.other.test.", "A"),
        ]
        assert rdtexts(reply, "A") == ["127.0.77.80"]
        # other.test.'s name server has no glue: the resolver had to look its address up itself.
        assert any(q.qname == "ns3.example.test." and q.qtype == "A" for q in lab.resolver.upstream)
        assert lab.upstream_count("web.other.test.", "A") >= 1

    run(scenario)


def test_a_name_server_that_cannot_be_found_gives_servfail_quickly() -> None:
    async def scenario(lab: MiniLab) -> None:
        started = time.monotonic()
        reply = await lab.ask("www.loop.test.", "A")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - started < 1.0

    run(scenario)


def test_cname_loop_gives_servfail() -> None:
    async def scenario(lab: MiniLab) -> None:
        reply = await lab.ask("ring1.example.test.", "A")
        assert reply.rcode() == dns.rcode.SERVFAIL

    run(scenario)


def test_positive_answers_are_cached_for_their_ttl() -> None:
    async def scenario(lab: MiniLab) -> None:
        first = await lab.ask(MX_HOST, "A")
        second = await lab.ask(MX_HOST, "A")
        assert rdtexts(first, "A") == rdtexts(second, "A") == ["127.0.77.25"]
        assert lab.upstream_count(MX_HOST, "A") == 1
        assert second.answer[0].ttl <= first.answer[0].ttl <= 300

        await lab.ask("short.example.test.", "A")
        await lab.ask("short.example.test.", "A")
        assert lab.upstream_count("short.example.test.", "A") == 1
        await asyncio.sleep(1.1)  # its TTL is 1 s
        again = await lab.ask("short.example.test.", "A")
        assert rdtexts(again, "A") == ["127.0.77.26"]
        assert lab.upstream_count("short.example.test.", "A") == 2

    run(scenario)


def test_nxdomain_and_nodata_are_cached_for_the_negative_ttl() -> None:
    async def scenario(lab: MiniLab) -> None:
        nx1 = await lab.ask("nope.example.test.", "A")
        nx2 = await lab.ask("nope.example.test.", "A")
        # RFC 2308 §5: NXDOMAIN says the name does not exist, whatever the type.
        nx3 = await lab.ask("nope.example.test.", "AAAA")
        nodata1 = await lab.ask(MX_HOST, "TXT")
        nodata2 = await lab.ask(MX_HOST, "TXT")
        for reply in (nx1, nx2, nx3):
            assert reply.rcode() == dns.rcode.NXDOMAIN
        for reply in (nodata1, nodata2):
            assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
        for reply in (nx1, nodata1):
            soa = reply.authority[0]
            assert soa.rdtype == dns.rdatatype.SOA and soa.name == dns.name.from_text("example.test.")
            assert soa.ttl == 1  # min(SOA TTL, MINIMUM): the negative TTL
        assert lab.upstream_count("nope.example.test.", "A") == 1
        assert lab.upstream_count("nope.example.test.", "AAAA") == 0
        assert lab.upstream_count(MX_HOST, "TXT") == 1

        await asyncio.sleep(1.1)
        await lab.ask("nope.example.test.", "A")
        await lab.ask(MX_HOST, "TXT")
        assert lab.upstream_count("nope.example.test.", "A") == 2
        assert lab.upstream_count(MX_HOST, "TXT") == 2

    run(scenario)


# Each kind of misbehaviour of *every* server of the MX host's zone, for the AAAA query only, and what
# the resolver must tell its client: what BIND and Unbound answer (RFC 4074 §4, RFC 2308, RFC 6891).
AAAA_FAULTS = [
    pytest.param(Fault("rcode", qtype="AAAA", rcode="SERVFAIL"), dns.rcode.SERVFAIL, id="servfail"),
    pytest.param(Fault("rcode", qtype="AAAA", rcode="REFUSED"), dns.rcode.SERVFAIL, id="refused"),
    pytest.param(Fault("rcode", qtype="AAAA", rcode="NOTIMP"), dns.rcode.SERVFAIL, id="notimp"),
    pytest.param(Fault("rcode", qtype="AAAA", rcode="FORMERR"), dns.rcode.SERVFAIL, id="formerr"),
    pytest.param(Fault("rcode", qtype="AAAA", rcode="NXDOMAIN"), dns.rcode.NXDOMAIN, id="nxdomain"),
    pytest.param(Fault("drop", qtype="AAAA"), dns.rcode.SERVFAIL, id="dropped"),
    pytest.param(Fault("no-aa", qtype="AAAA"), dns.rcode.SERVFAIL, id="lame"),
    pytest.param(Fault("broken-aaaa", qtype="AAAA"), dns.rcode.SERVFAIL, id="4-byte-aaaa"),
    pytest.param(Fault("wrong-type", qtype="AAAA"), dns.rcode.SERVFAIL, id="wrong-type"),
    pytest.param(Fault("garbage", qtype="AAAA"), dns.rcode.SERVFAIL, id="garbage"),
    pytest.param(Fault("wrong-id", qtype="AAAA"), dns.rcode.SERVFAIL, id="wrong-id"),
    pytest.param(Fault("wrong-question", qtype="AAAA"), dns.rcode.SERVFAIL, id="wrong-question"),
    pytest.param(Fault("edns-drop", qtype="AAAA"), dns.rcode.SERVFAIL, id="edns-dropped"),
    pytest.param(Fault("edns-formerr", qtype="AAAA"), dns.rcode.NOERROR, id="edns-formerr-retried-plain"),
    pytest.param(Fault("delay", qtype="AAAA", seconds=0.2), dns.rcode.NOERROR, id="slow-but-in-time"),
]


@pytest.mark.parametrize(("fault", "expected"), AAAA_FAULTS)
def test_every_server_misbehaving_on_aaaa(fault: Fault, expected: dns.rcode.Rcode) -> None:
    async def scenario(lab: MiniLab) -> None:
        started = time.monotonic()
        aaaa = await lab.ask(MX_HOST, "AAAA")
        elapsed = time.monotonic() - started
        a_after = await lab.ask(MX_HOST, "A")
        lab.resolver.flush()
        a = await lab.ask(MX_HOST, "A")
        assert dns.rcode.to_text(aaaa.rcode()) == dns.rcode.to_text(expected)
        assert not aaaa.answer
        # The A query is untouched by the AAAA fault: the seed case's split.
        assert a.rcode() == dns.rcode.NOERROR and rdtexts(a, "A") == ["127.0.77.25"]
        if expected == dns.rcode.NXDOMAIN:
            # RFC 2308 §5 / RFC 4074 §4.2: the cached NXDOMAIN denies the name for A too.
            assert a_after.rcode() == dns.rcode.NXDOMAIN
        else:
            assert rdtexts(a_after, "A") == ["127.0.77.25"]
        assert elapsed < 2 * 0.5 + 0.5  # two servers, one bounded try each
        # Both servers were tried before giving up; a definite answer (even NXDOMAIN) ends at the first.
        asked = {q.server for q in lab.resolver.upstream if q.qname == MX_HOST and q.qtype == "AAAA"} - {
            ROOT,
            TLD,
        }
        assert asked == ({NS1, NS2} if expected == dns.rcode.SERVFAIL else {NS1})

    run(scenario, on_both(fault), query_timeout=0.5)


@pytest.mark.parametrize(
    "fault",
    [
        Fault("rcode", qtype="AAAA", rcode="SERVFAIL"),
        Fault("drop", qtype="AAAA"),
        Fault("no-aa", qtype="AAAA"),
        Fault("garbage", qtype="AAAA"),
        Fault("truncate", qtype="AAAA"),  # TC, then TCP works: not a failure at all
    ],
    ids=lambda f: f.kind,
)
def test_one_of_two_servers_failing_the_other_answers(fault: Fault) -> None:
    async def scenario(lab: MiniLab) -> None:
        reply = await lab.ask("mx6.example.test.", "AAAA")
        assert reply.rcode() == dns.rcode.NOERROR
        assert rdtexts(reply, "AAAA") == ["2001:db8::25"]
        # ns1 (tried first) really was asked and misbehaved.
        assert any(name == "mx6.example.test." for name, _, _ in lab.servers["ns1"].queries)

    run(scenario, {"ns1": [fault]}, query_timeout=0.5)


def test_truncated_udp_and_refused_tcp_everywhere_gives_servfail() -> None:
    faults = on_both(Fault("truncate", qtype="AAAA"))
    for fault_list in faults.values():
        fault_list.append(Fault("tcp-refuse", qtype="AAAA"))

    async def scenario(lab: MiniLab) -> None:
        reply = await lab.ask(MX_HOST, "AAAA")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert {q.transport for q in lab.resolver.upstream if q.server in (NS1, NS2)} == {"tcp"}

    run(scenario, faults, query_timeout=0.5)


def test_servfail_is_cached_only_briefly() -> None:
    async def scenario(lab: MiniLab) -> None:
        await lab.ask(MX_HOST, "AAAA")
        await lab.ask(MX_HOST, "AAAA")
        assert lab.upstream_count(MX_HOST, "AAAA") == 2  # one round: ns1 and ns2
        await asyncio.sleep(resolver.SERVFAIL_TTL + 0.1)
        again = await lab.ask(MX_HOST, "AAAA")
        assert again.rcode() == dns.rcode.SERVFAIL
        assert lab.upstream_count(MX_HOST, "AAAA") == 4

    run(scenario, on_both(Fault("rcode", qtype="AAAA", rcode="SERVFAIL")))


def test_the_overall_budget_bounds_a_client_query() -> None:
    everything_dropped = {"root": [Fault("drop")]}

    async def scenario(lab: MiniLab) -> None:
        started = time.monotonic()
        reply = await lab.ask(MX_HOST, "A")
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - started < 1.5 + 0.3

    run(scenario, everything_dropped, query_timeout=1.0, budget=1.5)


@pytest.mark.parametrize("dead", ["nothing-listening", "silent"])
def test_dead_forwarder_gives_servfail_within_the_bound(dead: str) -> None:
    async def scenario(lab: MiniLab) -> None:
        if dead == "silent":
            target = NS1
            lab.servers["ns1"].faults = (Fault("drop"),)
        else:
            target = DEAD
        forwarding = resolver.RecursiveResolver(
            (), lab.port, forwarders=[(target, lab.port)], query_timeout=0.5
        )
        server = dnsserver.DnsServer("forwarding", FORWARDING, lab.port, forwarding.handle)
        await server.start()
        try:
            started = time.monotonic()
            reply = await lab.ask(MX_HOST, "A", address=FORWARDING)
            elapsed = time.monotonic() - started
        finally:
            await server.stop()
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert elapsed < 0.5 + 0.3
        assert [q.server for q in forwarding.upstream] == [target]

    run(scenario)


def test_forwarder_mode_sends_recursive_queries_and_caches() -> None:
    async def scenario(lab: MiniLab) -> None:
        forwarding = resolver.RecursiveResolver(
            (), lab.port, forwarders=[(DEAD, lab.port), (RESOLVER, lab.port)], query_timeout=0.3
        )
        server = dnsserver.DnsServer("forwarding", FORWARDING, lab.port, forwarding.handle)
        await server.start()
        try:
            first = await lab.ask("www.example.test.", "A", address=FORWARDING)
            second = await lab.ask("www.example.test.", "A", address=FORWARDING)
            nx = await lab.ask("nope.example.test.", "MX", address=FORWARDING)
        finally:
            await server.stop()
        assert rdtexts(first, "A") == rdtexts(second, "A") == ["127.0.77.80"]
        assert nx.rcode() == dns.rcode.NXDOMAIN
        # The dead first forwarder was skipped; the second one was asked once for www (then cache).
        www = [q for q in forwarding.upstream if q.qname == "www.example.test."]
        assert [(q.server, q.outcome) for q in www][-1] == (RESOLVER, "NOERROR")
        assert len([q for q in www if q.server == RESOLVER]) == 1
        assert not any(q.server in (NS1, NS2) for q in forwarding.upstream)

    run(scenario)


def test_stale_record_is_served_whatever_the_authority_says() -> None:
    stale = [resolver.StaleRecord(MX_HOST, "A", "192.0.2.99", ttl=600)]

    async def scenario(lab: MiniLab) -> None:
        through_resolver = await lab.ask(MX_HOST, "A")
        direct = await lab.ask(MX_HOST, "A", address=NS1)
        assert rdtexts(through_resolver, "A") == ["192.0.2.99"]
        assert through_resolver.answer[0].ttl == 600
        assert rdtexts(direct, "A") == ["127.0.77.25"]
        assert lab.upstream_count(MX_HOST, "A") == 1  # only our direct question
        lab.resolver.flush()
        assert rdtexts(await lab.ask(MX_HOST, "A"), "A") == ["192.0.2.99"]

    run(scenario, stale=stale)


def test_a_malformed_stale_record_is_a_one_line_error() -> None:
    from mxdoctor import errors

    with pytest.raises(errors.ConfigError, match="stale record mx.example.test. A 'not-an-address'"):
        resolver.RecursiveResolver((), 53, stale=[resolver.StaleRecord(MX_HOST, "A", "not-an-address")])


def test_without_rd_only_the_cache_answers() -> None:
    async def scenario(lab: MiniLab) -> None:
        cold = await lab.ask(MX_HOST, "A", rd=False)
        assert cold.rcode() == dns.rcode.NOERROR and not cold.answer
        assert cold.authority[0].rdtype == dns.rdatatype.NS  # a referral to what it knows: the root
        assert lab.upstream_count(MX_HOST, "A") == 0
        await lab.ask(MX_HOST, "A")
        warm = await lab.ask(MX_HOST, "A", rd=False)
        assert rdtexts(warm, "A") == ["127.0.77.25"]
        assert not warm.flags & dns.flags.RD
        assert lab.upstream_count(MX_HOST, "A") == 1

    run(scenario)


def test_large_answer_is_truncated_over_udp_and_whole_over_tcp() -> None:
    async def scenario(lab: MiniLab) -> None:
        query = dns.message.make_query("big.example.test.", "TXT")  # no EDNS: 512-byte limit
        udp = await dns.asyncquery.udp(query, RESOLVER, timeout=5, port=lab.port)
        tcp = await dns.asyncquery.tcp(query, RESOLVER, timeout=5, port=lab.port)
        assert udp.flags & dns.flags.TC and not udp.answer
        assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 1
        assert len(tcp.to_wire()) > 512
        edns = dns.message.make_query("big.example.test.", "TXT", use_edns=0, payload=4096)
        big_buffer = await dns.asyncquery.udp(edns, RESOLVER, timeout=5, port=lab.port)
        assert not big_buffer.flags & dns.flags.TC and big_buffer.answer

    run(scenario)


def test_edns_is_answered_and_bad_requests_get_error_codes() -> None:
    async def scenario(lab: MiniLab) -> None:
        edns = dns.message.make_query(MX_HOST, "A", use_edns=0, payload=1232)
        reply = await dns.asyncquery.udp(edns, RESOLVER, timeout=5, port=lab.port)
        assert reply.edns == 0 and reply.payload == resolver.UPSTREAM_PAYLOAD
        assert rdtexts(reply, "A") == ["127.0.77.25"]
        axfr = dns.message.make_query("example.test.", "AXFR")
        assert (
            await dns.asyncquery.tcp(axfr, RESOLVER, timeout=5, port=lab.port)
        ).rcode() == dns.rcode.REFUSED
        chaos = dns.message.make_query("version.bind.", "TXT", rdclass="CH")
        assert (
            await dns.asyncquery.udp(chaos, RESOLVER, timeout=5, port=lab.port)
        ).rcode() == dns.rcode.REFUSED

    run(scenario)


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig (dnsutils) not installed")
def test_dig_sees_the_seed_case_through_the_resolver() -> None:
    async def dig(port: int, qtype: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "dig",
            f"@{RESOLVER}",
            "-p",
            str(port),
            MX_HOST,
            qtype,
            "+tries=1",
            "+time=5",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        return out.decode()

    async def scenario(lab: MiniLab) -> None:
        aaaa = await dig(lab.port, "AAAA")
        a = await dig(lab.port, "A")
        assert "status: SERVFAIL" in aaaa
        assert "status: NOERROR" in a and "127.0.77.25" in a
        assert " ra" in a.split("flags:")[1].split(";")[0]

    run(scenario, on_both(Fault("rcode", name=MX_HOST, qtype="AAAA", rcode="SERVFAIL")))


# -- the reading of one reply, without sockets ------------------------------------------------------


def _reply(text: str) -> dns.message.Message:
    return dns.message.from_text(text)


def test_classify_requires_aa_from_an_authority_but_not_from_a_forwarder() -> None:
    reply = _reply(
        """id 1
opcode QUERY
rcode NOERROR
flags QR
;QUESTION
mx.example.test. IN A
;ANSWER
mx.example.test. 300 IN A 127.0.77.25
"""
    )
    zone = dns.name.from_text("example.test.")
    qname = dns.name.from_text(MX_HOST)
    assert resolver.classify(reply, qname, dns.rdatatype.A, zone).kind is resolver.Kind.LAME
    forwarded = resolver.classify(reply, qname, dns.rdatatype.A, dns.name.root, require_aa=False)
    assert forwarded.kind is resolver.Kind.ANSWER


def test_classify_rejects_out_of_bailiwick_data_and_sideways_referrals() -> None:
    qname = dns.name.from_text(MX_HOST)
    zone = dns.name.from_text("example.test.")
    poisoned = _reply(
        """id 1
opcode QUERY
rcode NOERROR
flags QR AA
;QUESTION
mx.example.test. IN A
;ANSWER
mx.example.test. 300 IN CNAME victim.other.
victim.other. 300 IN A 192.0.2.66
"""
    )
    result = resolver.classify(poisoned, qname, dns.rdatatype.A, zone)
    assert result.kind is resolver.Kind.CNAME and len(result.rrsets) == 1
    sideways = _reply(
        """id 1
opcode QUERY
rcode NOERROR
flags QR
;QUESTION
mx.example.test. IN A
;AUTHORITY
test. 300 IN NS ns.nic.test.
"""
    )
    assert resolver.classify(sideways, qname, dns.rdatatype.A, zone).kind is resolver.Kind.LAME


# -- the resolver as the lab runs it, on the built-in scenarios ---------------------------------------


def test_seed_case_through_the_lab_internal_resolver() -> None:
    with mxdoctor.lab.running("aaaa-servfail") as card:
        internal = card.resolver("internal")
        mx = ask(internal, card.domains[0], "MX")
        aaaa = ask(internal, "mail.example.net.", "AAAA")
        a = ask(internal, "mail.example.net.", "A")
        direct = ask(card.server("ns1.example.net"), "mail.example.net.", "AAAA")
    assert rdtexts(mx, "MX") == ["10 mail.example.net."]
    assert aaaa.rcode() == dns.rcode.SERVFAIL
    assert a.rcode() == dns.rcode.NOERROR and rdtexts(a, "A") == ["127.0.0.25"]
    assert direct.rcode() == dns.rcode.SERVFAIL


def test_broken_forwarder_scenario_fails_inside_and_works_outside() -> None:
    with mxdoctor.lab.running("internal-forwarder-broken") as card:
        started = time.monotonic()
        inside = ask(card.resolver("internal"), card.domains[0], "MX")
        elapsed = time.monotonic() - started
        outside = ask(card.resolver("external"), card.domains[0], "MX")
    assert inside.rcode() == dns.rcode.SERVFAIL
    assert elapsed < resolver.DEFAULT_BUDGET + 0.5
    assert rdtexts(outside, "MX") == ["10 mx1.example.com."]


def test_stale_scenario_serves_the_old_address_inside_only() -> None:
    with mxdoctor.lab.running("internal-resolver-stale") as card:
        inside = ask(card.resolver("internal"), "mx1.example.com.", "A")
        outside = ask(card.resolver("external"), "mx1.example.com.", "A")
    assert rdtexts(inside, "A") == ["127.0.0.99"]
    assert rdtexts(outside, "A") == ["127.0.0.25"]


def test_ds_is_asked_of_the_parent_zone() -> None:
    async def scenario(lab: MiniLab) -> None:
        reply = await lab.ask("example.test.", "DS")
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
        # NODATA from test.'s server (the parent side of the cut), not from example.test.'s.
        assert reply.authority[0].name == dns.name.from_text("test.")
        assert lab.upstream_count("example.test.", "DS") == 0

    run(scenario)


def test_the_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolver, "MAX_CACHE_ENTRIES", 10)
    now = [0.0]
    cache = resolver._Cache(lambda: now[0])
    for i in range(50):
        cache.put_rrset(dns.rrset.from_text(f"h{i}.example.test.", 60, "IN", "A", "127.0.0.1"))
        assert cache._size() <= 10
    # Expired entries go first: live ones survive a sweep while there is room.
    cache.clear()
    for i in range(5):
        cache.put_rrset(dns.rrset.from_text(f"old{i}.example.test.", 1, "IN", "A", "127.0.0.1"))
    now[0] = 5.0
    for i in range(6):
        cache.put_rrset(dns.rrset.from_text(f"new{i}.example.test.", 60, "IN", "A", "127.0.0.1"))
    key = (dns.name.from_text("new0.example.test."), dns.rdatatype.A)
    assert cache.rrset(key) is not None
    assert cache._size() == 6
