"""Shared fixtures: ``lab`` runs a lab scenario on loopback for one test and yields its card.

Pick the scenario with an indirect parameter, e.g.
``@pytest.mark.parametrize("lab", ["aaaa-servfail"], indirect=True)``; without one it runs ``healthy``.
The parameter may also be a loaded ``mxdoctor.lab.scenario.Scenario``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mxdoctor import lab as lab_mod


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[lab_mod.Card]:
    scenario = getattr(request, "param", "healthy")
    with lab_mod.running(scenario) as card:
        yield card
