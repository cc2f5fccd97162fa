"""Lookups the deadline cut off are not the servers' fault: with a per-query timeout longer than the
run's deadline nothing can time out on its own, so no finding may blame a server for a TIMEOUT, and
what the verdicts and the root cause name is DEADLINE_REACHED when nothing else failed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mxdoctor import api, evidence, lab
from mxdoctor.checks import address, coverage, resolver
from mxdoctor.checks._registry import Role, spec
from mxdoctor.diagnosis import Decision
from mxdoctor.evidence import Outcome

# server-blaming findings a dropped AAAA produces when it is waited for (its timeout ends first)
BLAMING = {address.AAAA_TIMEOUT.code, address.A_LOOKUP_FAILED.code, resolver.RESOLVER_UNREACHABLE.code}


def diagnose(card: lab.Card, *, timeout: float, deadline: float) -> api.Diagnosis:
    options = api.lab_options(card, timeout=timeout, deadline=deadline)
    return api.diagnose(card.domains[0], options)


@pytest.fixture
def dropped() -> Iterator[lab.Card]:
    # a fresh lab per test: its resolvers hold nothing (no cached failure) from an earlier test
    with lab.running("aaaa-dropped") as card:
        yield card


# 2 s: the probe stops at 1.5 s, after the resolvers' SERVFAIL (0.8 s) and before any of the
# authoritative servers' silence times out; 1.2 s: it stops at 0.7 s, before the resolvers answer.
@pytest.mark.parametrize("deadline", [2.0, 1.2], ids=["authoritative-cut", "every-view-cut"])
def test_no_finding_blames_a_server_for_what_was_not_waited_for(dropped: lab.Card, deadline: float) -> None:
    d = diagnose(dropped, timeout=3.0, deadline=deadline)
    codes = {f.code for f in d.findings}
    assert coverage.DEADLINE_REACHED.code in codes
    assert not codes & BLAMING, codes
    cut = [lk for lk in d.evidence.lookups if lk.outcome is Outcome.TIMEOUT]
    assert cut and all(lk.unfinished for lk in cut)
    # a TIMEOUT could only be the deadline's: no finding but DEADLINE_REACHED may show one
    for f in d.findings:
        if f.code != coverage.DEADLINE_REACHED.code:
            assert all("TIMEOUT" not in (s.detail or "") for s in f.seen), f
    # the same judgement from the saved evidence: the marker survives the JSON round trip
    again = evidence.loads(evidence.dumps(d.evidence))
    assert [lk.unfinished for lk in again.lookups] == [lk.unfinished for lk in d.evidence.lookups]


def test_deadline_is_the_root_cause_when_nothing_else_failed(dropped: lab.Card) -> None:
    d = diagnose(dropped, timeout=3.0, deadline=1.2)
    assert d.verdicts and {v.outcome for v in d.verdicts} == {Decision.UNKNOWN}
    assert all(coverage.DEADLINE_REACHED.code in v.because for v in d.verdicts)
    assert [f.code for f in d.root_causes()] == [coverage.DEADLINE_REACHED.code]
    assert spec(coverage.DEADLINE_REACHED.code).role is Role.UNTESTED
    assert api.summarise(d)["root_cause"] == coverage.DEADLINE_REACHED.code
    assert d.exit_code == 3  # UNKNOWN, not CRITICAL: nothing was found wrong


def test_a_waited_for_timeout_still_blames_the_server(dropped: lab.Card) -> None:
    """The control: with a timeout inside the deadline the dropped AAAA is the servers' fault."""
    d = diagnose(dropped, timeout=0.5, deadline=10.0)
    codes = {f.code for f in d.findings}
    assert address.AAAA_TIMEOUT.code in codes and coverage.DEADLINE_REACHED.code not in codes
    assert not any(lk.unfinished for lk in d.evidence.lookups)
