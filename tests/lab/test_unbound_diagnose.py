"""The same verdicts when the MTA's internal resolver is real Unbound over the lab, not the lab's own."""

from __future__ import annotations

import pytest
from _resolver_unbound import lab_on_port_53, running_unbound, skip_unless_unbound_can_run

from mxdoctor import analysis, api
from mxdoctor.lab import scenario as scenario_mod

pytestmark = [pytest.mark.unbound, pytest.mark.root]


@pytest.mark.parametrize("name", ["aaaa-servfail", "healthy", "mx-servfail", "ns-disagree"])
def test_verdicts_hold_through_real_unbound(name: str) -> None:
    skip_unless_unbound_can_run()
    sc = scenario_mod.load(name)
    with lab_on_port_53(name) as card, running_unbound(card) as unbound:
        ev = api.collect(card.domains[0], api.DiagnoseOptions(
            resolvers=(f"{unbound.address}:{unbound.port}",),
            use_system=False,
            root_hints=card.root_hints,
            dns_port=card.dns_port,
            timeout=2.0,
            deadline=30.0,
        ))
    d = analysis.analyse(ev)
    verdicts = {v.mta: v.outcome.value for v in d.verdicts}
    assert verdicts == {**verdicts, **sc.expect.verdicts}, unbound.log_text()[-2000:]
    codes = {f.code for f in d.findings}
    for code in sc.expect.findings:
        assert code in codes, (code, sorted(codes))
    if name == "aaaa-servfail":
        aaaa = next(f for f in d.findings if f.code == "AAAA_SERVFAIL")
        assert "internal" in {s.view for s in aaaa.seen}, "Unbound passes the SERVFAIL on"


def test_dropped_aaaa_through_unbound_is_a_timeout_and_exchange2013_defers() -> None:
    """Unlike the lab resolver, Unbound keeps retrying a dropped AAAA query well past an MTA's wait, so
    the MTA sees a time-out, not SERVFAIL: Exchange 2013 then defers (ErrorTimeout) where it would
    fall back to A after a SERVFAIL. The verdict follows what the resolver really does."""
    skip_unless_unbound_can_run()
    with lab_on_port_53("aaaa-dropped") as card, running_unbound(card) as unbound:
        ev = api.collect(card.domains[0], api.DiagnoseOptions(
            resolvers=(f"{unbound.address}:{unbound.port}",),
            use_system=False,
            root_hints=card.root_hints,
            dns_port=card.dns_port,
            timeout=1.0,
            deadline=30.0,
        ))
    d = analysis.analyse(ev)
    internal = [lk for lk in ev.lookups if lk.view == "internal" and lk.server is None and lk.qtype == "AAAA"]
    assert internal and internal[0].outcome.value == "TIMEOUT"
    verdicts = {v.mta: v for v in d.verdicts}
    assert verdicts["exchange2013"].outcome.value == "defer"
    assert "ErrorTimeout" in verdicts["exchange2013"].text
    assert verdicts["postfix"].outcome.value == "deliver"
    assert "AAAA_TIMEOUT" in {f.code for f in d.findings}
