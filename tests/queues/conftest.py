"""Fixtures of the queue tests: one real Postfix per module, its queue emptied for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from postfix_instance import PostfixInstance, empty_queue, start_postfix, stop_postfix


@pytest.fixture(scope="module")
def postfix_server() -> Iterator[PostfixInstance]:
    instance = start_postfix()
    try:
        yield instance
    finally:
        stop_postfix(instance)


@pytest.fixture
def postfix(postfix_server: PostfixInstance) -> PostfixInstance:
    empty_queue(postfix_server)
    return postfix_server


@pytest.fixture(autouse=True)
def queue_commands_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the CLI with the queue and watch commands only, so these tests depend on nothing else."""
    from mxdoctor import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ("mxdoctor.cli.queue", "mxdoctor.cli.watch"))
