"""Shared fixtures: ``lab`` runs a lab scenario on loopback for one test and yields its card.

Pick the scenario with an indirect parameter, e.g.
``@pytest.mark.parametrize("lab", ["aaaa-servfail"], indirect=True)``; without one it runs ``healthy``.
The parameter may also be a loaded ``mxdoctor.lab.scenario.Scenario``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from mxdoctor import lab as lab_mod


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[lab_mod.Card]:
    scenario = getattr(request, "param", "healthy")
    with lab_mod.running(scenario) as card:
        yield card


# Socket operations that put traffic on a network; an audit hook sees every one of them, whichever
# library makes it, so a test can prove that a command failed before it sent anything.
_NETWORK_EVENTS = ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo")
_network_log: list[tuple[str, tuple[object, ...]]] | None = None
_hook_installed = False


def _network_hook(event: str, args: tuple[object, ...]) -> None:
    if _network_log is not None and event in _NETWORK_EVENTS:
        _network_log.append((event, args))
        raise OSError(f"test forbids network traffic: {event}")


@pytest.fixture
def no_network() -> Iterator[list[tuple[str, tuple[object, ...]]]]:
    """Fail every socket connect/send/name lookup in this test and record each attempt: a test asserts
    the list is empty to prove no traffic was even tried (audit hooks cannot be removed, so the hook
    is installed once and armed per test)."""
    global _network_log, _hook_installed
    if not _hook_installed:
        sys.addaudithook(_network_hook)
        _hook_installed = True
    _network_log = []
    try:
        yield _network_log
    finally:
        _network_log = None
