"""Fixture of the conformance suite: the (scenario, MTA) cases the session selected, run concurrently.

Each case takes seconds of waiting (lab start, MTA start, DNS time-outs), so the first test to ask starts
every selected case on a thread pool and each test then waits for its own result.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from conformance_harness import WORKERS, Result, remove_stale_namespaces, run_case


class Table:
    def __init__(self, cases: list[tuple[str, str, str]]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="conformance")
        self._futures: dict[tuple[str, str, str], Future[Result]] = {
            case: self._pool.submit(run_case, *case) for case in dict.fromkeys(cases)
        }

    def result(self, case: tuple[str, str, str]) -> Result:
        if case not in self._futures:
            self._futures[case] = self._pool.submit(run_case, *case)
        return self._futures[case].result(timeout=600)

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True)


@pytest.fixture(scope="session")
def conformance_table(request: pytest.FixtureRequest) -> Iterator[Table]:
    if os.geteuid() != 0:
        pytest.skip("the conformance suite needs root (network namespaces, port 53)")
    for tool in ("ip", "postfix", "apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.skip(f"the conformance suite needs {tool}")
    cases = [
        item.callspec.params["case"]
        for item in request.session.items
        if hasattr(item, "callspec")
        and isinstance(item.callspec.params.get("case"), tuple)
        and item.get_closest_marker("conformance") is not None
    ]
    remove_stale_namespaces()
    table = Table(cases)
    try:
        yield table
    finally:
        table.close()
