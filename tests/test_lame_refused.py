"""A server that refuses every question of its zone (PowerDNS without the zone) is one finding,
LAME_DELEGATION, not a lookup failure per question. Lab servers on loopback."""

from __future__ import annotations

from mxdoctor import analysis, api, lab
from mxdoctor.lab import scenario

SCENARIO = """
description = "ns2 of example.com does not serve the zone: REFUSED to everything."
domains = ["example.com"]

[zones."example.com"]
text = '''
@     MX  10 mx1
mx1   A   127.0.0.25
'''

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]

[[servers]]
name = "ns2.example.com"
address = "127.0.0.12"
zones = ["example.com"]
faults = [{ kind = "rcode", rcode = "REFUSED" }]
"""


def test_refusing_server_is_one_lame_delegation_finding() -> None:
    sc = scenario.parse(SCENARIO, source="lame-refused.toml", name="lame-refused")
    with lab.running(sc) as card:
        ev = api.collect(card.domains[0], api.lab_options(card, timeout=0.5, deadline=20.0))
    d = analysis.analyse(ev)
    codes = [f.code for f in d.findings]
    assert codes.count("LAME_DELEGATION") == 1, codes
    lame = next(f for f in d.findings if f.code == "LAME_DELEGATION")
    assert "127.0.0.12" in lame.subject
    assert not {"AAAA_UNEXPECTED_RCODE", "A_LOOKUP_FAILED", "MX_LOOKUP_FAILED", "NS_DISAGREE"} & set(codes), codes
    assert {v.outcome.value for v in d.verdicts} == {"deliver"}
