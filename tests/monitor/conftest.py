"""Fixtures of the watch tests: a loopback webhook receiver and queue listings written on demand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from watch_helpers import WebhookReceiver


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
