"""An NXDOMAIN without the AA bit (what load balancers send) is evidence: the servers that gave it are
named, and the finding says what each resolver family makes of it. Lab servers on loopback."""

from __future__ import annotations

from _helpers import LB_NXDOMAIN as SCENARIO
from mxdoctor import analysis, api, lab
from mxdoctor.lab import scenario


def test_non_aa_nxdomain_names_both_servers_and_the_resolver_families() -> None:
    sc = scenario.parse(SCENARIO, source="lb-nxdomain.toml", name="lb-nxdomain")
    with lab.running(sc) as card:
        ev = api.collect(card.domains[0], api.lab_options(card, timeout=0.5, deadline=20.0))
    d = analysis.analyse(ev)
    nx = [f for f in d.findings if f.code == "AAAA_NXDOMAIN"]
    assert len(nx) == 1, [f.code for f in d.findings]
    servers = {s.server for s in nx[0].seen if s.view == "authoritative"}
    named = " ".join(str(s) for s in servers)
    assert "127.0.0.11" in named and "127.0.0.12" in named, servers
    assert all("without the AA bit and without SOA" in (s.detail or "") for s in nx[0].seen
               if s.view == "authoritative")
    assert "Knot Resolver turns such an answer into SERVFAIL" in nx[0].message
    codes = {f.code for f in d.findings}
    assert "RESOLVER_FAILS" not in codes and "LAME_DELEGATION" not in codes, codes
    assert d.root_causes() and d.root_causes()[0].code == "AAAA_NXDOMAIN"
