"""Fixtures of the watch tests: a loopback webhook receiver, and the watch daemons a test starts
(killed at its end whatever happens)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from watch_helpers import WebhookReceiver


@pytest.fixture
def daemons() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            if p.stderr:
                p.stderr.close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@pytest.fixture(autouse=True)
def watch_commands_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the CLI with the queue and watch commands only, so these tests depend on nothing else."""
    from mxdoctor import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("mxdoctor.cli.queue", "mxdoctor.cli.watch"))
