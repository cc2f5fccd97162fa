"""The engine entry point the audit sends through: ``Engine.exchange`` with a ``QueryShape``, against a
real lab name server on loopback. The query goes out as shaped and every attempt is recorded."""

from __future__ import annotations

import asyncio

from mxdoctor import evidence, lab
from mxdoctor.dns import exchange
from mxdoctor.evidence import Outcome, Transport


def _ask(card: lab.Card, qname: str, qtype: str, *shapes: exchange.QueryShape) -> list[evidence.Exchange]:
    endpoint = card.server("ns1.example.com")
    server = evidence.Server(endpoint.address, endpoint.port, endpoint.name)

    async def go() -> list[evidence.Exchange]:
        recorder = exchange.Recorder()
        engine = exchange.Engine(recorder, timeout=1.0)
        try:
            for shape in shapes:
                await engine.exchange("audit", server, qname, qtype, shape, probe="p")
        finally:
            await engine.close()
        return recorder.exchanges

    return asyncio.run(go())


def test_a_shaped_query_is_sent_as_given_and_recorded_in_full() -> None:
    with lab.running("healthy") as card:
        udp, tcp, badvers = _ask(
            card, "ExAmPlE.cOm.", "SOA",
            exchange.QueryShape(z=True, do=True),
            exchange.QueryShape(transport=Transport.TCP, edns=None),
            exchange.QueryShape(edns=1),
        )  # fmt: skip
        asked = [q for q in card.dns_server("ns1.example.com").queries if q[0].lower() == "example.com."]
    # the same question three times from one engine is sent three times: never from the cache
    assert len(asked) == 3 and {q[2] for q in asked} == {"udp", "tcp"}, asked
    assert (udp.qname, udp.transport, udp.do, udp.edns, udp.probe) == ("ExAmPlE.cOm.", Transport.UDP, True, 0, "p")
    assert udp.outcome is Outcome.NOERROR and "AA" in udp.flags and udp.size and udp.size > 12
    assert udp.reply_qname == "ExAmPlE.cOm."  # the lab echoes the question as asked
    assert (tcp.transport, tcp.edns, tcp.reply_edns, tcp.outcome) == (Transport.TCP, None, None, Outcome.NOERROR)
    assert tcp.size and tcp.size > 12
    # no EDNS fallback for a shaped query: BADVERS is the answer, recorded as such
    assert (badvers.rcode, badvers.reply_edns, badvers.attempt) == ("BADVERS", 0, 1)
