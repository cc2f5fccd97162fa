"""Real validating Unbound over the signed lab, with the lab's trust anchor: it finds the healthy zones
secure and the broken ones bogus, exactly where the lab resolver does, with the same EDE codes."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from _resolver_unbound import lab_on_port_53, running_unbound, skip_unless_unbound_can_run

pytestmark = [pytest.mark.unbound, pytest.mark.root]

QUESTIONS = [("example.com.", "MX"), ("mail.example.net.", "A"), ("mail.example.net.", "AAAA")]


def _shape(reply: dns.message.Message) -> tuple[str, bool, tuple[int, ...]]:
    ede = tuple(sorted(int(o.code) for o in reply.options if isinstance(o, dns.edns.EDEOption)))
    return dns.rcode.to_text(reply.rcode()), bool(reply.flags & dns.flags.AD), ede


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("dnssec-healthy", [("NOERROR", True, ()), ("NOERROR", True, ()), ("NOERROR", True, ())]),
        ("dnssec-expired", [("NOERROR", True, ()), ("SERVFAIL", False, (7,)), ("NOERROR", True, ())]),
        ("dnssec-aaaa-nodata-bogus", [("NOERROR", True, ()), ("NOERROR", True, ()), ("SERVFAIL", False, (6,))]),
        ("dnssec-ds-mismatch", [("NOERROR", True, ()), ("SERVFAIL", False, (9,))]),
    ],
)
def test_unbound_and_the_lab_resolver_validate_alike(
    scenario: str, expected: list[tuple[str, bool, tuple[int, ...]]]
) -> None:
    skip_unless_unbound_can_run()
    with lab_on_port_53(scenario) as card, running_unbound(card) as unbound:
        internal = card.resolver("internal")
        ours = [
            dns.query.udp(dns.message.make_query(q, t, want_dnssec=True), internal.address, port=internal.port,
                          timeout=8)
            for q, t in QUESTIONS[: len(expected)]
        ]
        # (After a DS mismatch Unbound marks the keys bad and says only EDE 6 for later questions.)
        theirs = [unbound.ask(q, t, dnssec=True) for q, t in QUESTIONS[: len(expected)]]
        log = unbound.log_text()
    assert [_shape(r) for r in theirs] == expected, log
    assert [_shape(r) for r in ours] == expected
