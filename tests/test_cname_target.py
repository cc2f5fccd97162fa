"""An MX target that is an alias into a provider's zone: when the provider breaks AAAA, the finding
names the provider's servers, not only the resolver. Lab servers on loopback."""

from __future__ import annotations

from mxdoctor import analysis, api, lab
from mxdoctor.lab import scenario

SCENARIO = """
description = "mail.example.com is an alias of mx.example.net, whose servers answer AAAA with SERVFAIL."
domains = ["example.com"]

[zones."example.com"]
text = '''
@     MX     10 mail
mail  CNAME  mx.example.net.
'''

[zones."example.net"]
text = '''
mx    A   127.0.0.25
'''

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]

[[servers]]
name = "ns1.example.net"
address = "127.0.0.13"
zones = ["example.net"]
faults = [{ kind = "rcode", rcode = "SERVFAIL", name = "mx.example.net.", qtype = "AAAA" }]

[[servers]]
name = "ns2.example.net"
address = "127.0.0.14"
zones = ["example.net"]
faults = [{ kind = "rcode", rcode = "SERVFAIL", name = "mx.example.net.", qtype = "AAAA" }]
"""


def test_servfail_behind_an_alias_names_the_providers_servers() -> None:
    sc = scenario.parse(SCENARIO, source="cname-servfail.toml", name="cname-servfail")
    with lab.running(sc) as card:
        ev = api.collect(card.domains[0], api.lab_options(card, timeout=0.5, deadline=20.0))
    d = analysis.analyse(ev)
    servfail = [f for f in d.findings if f.code == "AAAA_SERVFAIL"]
    assert len(servfail) == 1, [f.code for f in d.findings]
    named = {str(s.server).rsplit(":", 1)[0] for s in servfail[0].seen if s.view == "authoritative"}
    assert named == {"ns1.example.net. 127.0.0.13", "ns2.example.net. 127.0.0.14"}, named
    assert any("mx.example.net. AAAA" in r for r in servfail[0].reproduce), servfail[0].reproduce
    assert d.root_causes()[0].code == "AAAA_SERVFAIL"
