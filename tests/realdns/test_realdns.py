"""mxdoctor against real DNS software: each fault × resolver cell names the expected root cause, side and
servers (docs/realdns.md shows the table). One namespace and one set of daemons serve the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import realdns_harness as harness
import realdns_servers as servers


class Table:
    """Every selected cell, run concurrently in one world; each test waits for its own cell."""

    def __init__(self, cells: list[tuple[str, str]]) -> None:
        self._world = harness.world()
        self.world = self._world.__enter__()
        self._pool = ThreadPoolExecutor(max_workers=harness.WORKERS, thread_name_prefix="realdns")
        self._futures: dict[tuple[str, str], Future[harness.Cell]] = {
            c: self._pool.submit(harness.run_cell, self.world, *c) for c in dict.fromkeys(cells)
        }

    def cell(self, case: tuple[str, str]) -> harness.Cell:
        if case not in self._futures:
            self._futures[case] = self._pool.submit(harness.run_cell, self.world, *case)
        return self._futures[case].result(timeout=300)

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True)
        self._world.__exit__(None, None, None)


@pytest.fixture(scope="session")
def realdns_table(request: pytest.FixtureRequest) -> Iterator[Table]:
    why = harness.missing()
    if why:
        pytest.skip(why)
    cells = [
        item.callspec.params["case"]
        for item in request.session.items
        if hasattr(item, "callspec") and item.get_closest_marker("realdns") is not None
        and isinstance(item.callspec.params.get("case"), tuple)
    ]
    harness.remove_stale_namespaces()
    table = Table(cells)
    try:
        yield table
    finally:
        table.close()


def _param(case: tuple[str, str]) -> object:
    marks = [pytest.mark.xfail(reason=harness.KNOWN[case], strict=True)] if case in harness.KNOWN else []
    return pytest.param(case, id=f"{case[0]}-{case[1]}", marks=marks)


@pytest.mark.realdns
@pytest.mark.root
@pytest.mark.parametrize("case", [_param(c) for c in harness.all_cells()])
def test_diagnosis_through_real_resolver(case: tuple[str, str], realdns_table: Table) -> None:
    c = realdns_table.cell(case)
    assert not c.error, c.error
    f = c.spec
    where = f"{f.title} through {c.resolver} (resolver answered {harness._answers(c)})"
    assert c.code in f.expect_codes, f"{where}: root cause {c.code} ({c.message}), expected {f.expect_codes}"
    assert c.side == f.expect_side, f"{where}: side {c.side!r}, expected {f.expect_side!r}"
    assert set(c.servers) == set(servers.expected_servers(f)), (
        f"{where}: names {c.servers}, expected {servers.expected_servers(f)}"
    )


def test_every_fault_has_its_own_servers_and_an_expectation() -> None:
    seen: set[str] = set()
    for f in servers.FAULTS:
        mine = set(servers.addresses(f).values())
        assert not mine & seen, f.key
        seen |= mine
        assert f.expect_codes
        assert len(servers.expected_servers(f)) == len(f.expect_servers)
    zone = servers.net_zone(next(f for f in servers.FAULTS if f.key == "sfall"))
    assert "mail.example-sfall.net. A 10.53.11.25" in zone and "AAAA" not in zone
