"""`audit` and `diagnose` on the same lab (real servers on loopback) give every MTA model the same
verdict: the audit has no resolver view, so it reads the authoritative answers as validating resolvers
do (docs/audit.md), and the diagnosis goes through the lab's validating resolver."""

from __future__ import annotations

import pytest

from _helpers import LB_NXDOMAIN
from mxdoctor import analysis, api, lab
from mxdoctor.audit import run
from mxdoctor.lab import scenario
from mxdoctor.lab.scenario import Scenario

LB_VERDICTS = {"exchange2010": "bounce", "exchange2013": "bounce", "postfix": "deliver", "exim": "bounce",
               "sendmail": "bounce", "opensmtpd": "defer"}

SCENARIOS = [
    "edns-dropped", "edns-intolerant", "aaaa-servfail", "aaaa-nxdomain", "lame-delegation", "lb-nxdomain",
    *(n for n in scenario.builtin_names() if n.startswith("dnssec-")),
]  # fmt: skip
# Where the two must differ: the internal resolver does not validate, so the diagnosis (through it)
# delivers what every validating resolver, and so the audit, defers.
DIFFER = {"dnssec-internal-nonvalidating"}


def _scenario(name: str) -> Scenario | str:
    return scenario.parse(LB_NXDOMAIN, source="lb-nxdomain.toml", name=name) if name == "lb-nxdomain" else name


@pytest.mark.parametrize("name", SCENARIOS)
def test_audit_and_diagnose_give_the_same_verdicts(name: str) -> None:
    with lab.running(_scenario(name)) as card:
        options = api.lab_options(card, timeout=0.5, deadline=20, smtp=card.smtp_port > 0)
        diagnosed = analysis.analyse(api.collect(card.domains[0], options))
        audited = analysis.analyse(run.collect(card.domains[0], run.AuditOptions(
            root_hints=card.root_hints, dns_port=card.dns_port, timeout=0.5, deadline=20)))
    by_diagnose = {v.mta: v.outcome.value for v in diagnosed.verdicts}
    by_audit = {v.mta: v.outcome.value for v in audited.verdicts}
    assert len(by_audit) == 6 and set(by_audit) == set(by_diagnose)
    # DANE (Exim's default) turns on the TLSA records and the certificate: audit neither connects to the
    # exchangers nor asks TLSA per server, so a verdict diagnose bases on a DANE finding is not its to give.
    dane = {v.mta for v in diagnosed.verdicts if any(c.startswith("DANE_") for c in v.because)}
    for mta in dane:
        del by_audit[mta], by_diagnose[mta]
    if name in DIFFER:
        assert set(by_diagnose.values()) == {"deliver"} and set(by_audit.values()) == {"defer"}
        return
    assert by_audit == by_diagnose
    # and both are right: the built-in scenarios say so; the load balancer's NXDOMAIN as Unbound, BIND and
    # PowerDNS Recursor pass it on (research/real-dns.md, docs/realdns.md)
    want = LB_VERDICTS if name == "lb-nxdomain" else dict(scenario.load(name).expect.verdicts)
    assert {mta: by_audit[mta] for mta in want if mta not in dane} == {m: v for m, v in want.items() if m not in dane}
