"""mxdoctor against real DNS software: each fault × resolver cell names the expected root cause, side and
servers (docs/realdns.md shows the table). One namespace and one set of daemons serve the whole session."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import realdns_harness as harness
import realdns_servers as servers

from mxdoctor.dns import anchor


class Table:
    """Every selected cell, run concurrently in one world; each test waits for its own cell."""

    def __init__(self, cells: list[tuple[str, str]]) -> None:
        self.started = time.monotonic()
        self._world = harness.world()
        self.world = self._world.__enter__()
        self._pool = ThreadPoolExecutor(max_workers=harness.WORKERS, thread_name_prefix="realdns")
        self._futures: dict[tuple[str, str], Future[harness.Cell]] = {
            c: self._pool.submit(harness.run_cell, self.world, *c) for c in harness.schedule(list(dict.fromkeys(cells)))
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

    def write_docs(self) -> None:
        """docs/realdns.md from this run, when it ran the whole table (MXDOCTOR_REALDNS_WRITE_DOCS=1)."""
        if set(self._futures) != set(harness.all_cells()):
            return
        done = {c: f.result() for c, f in self._futures.items() if f.done() and not f.cancelled()}
        if set(done) == set(self._futures):
            cells = [done[c] for c in harness.all_cells()]
            harness.DOCS.write_text(harness.render(cells, time.monotonic() - self.started), encoding="utf-8")


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
        if os.environ.get("MXDOCTOR_REALDNS_WRITE_DOCS"):
            table.write_docs()
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
    if f.signed:
        assert c.zone == f.zone, f"{where}: names zone {c.zone!r}, expected {f.zone!r}"
        assert not set(f.expect_also) - set(c.findings), f"{where}: findings {c.findings}"
        assert harness._failing(c) == harness.expected_mtas(c), f"{where}: {harness._failing(c)}"
        assert "view" not in c.problems, f"{where}: mxdoctor says the view {c.validation or 'is undetermined'}"


@pytest.mark.realdns
@pytest.mark.root
def test_signed_zones_carry_the_faults_the_table_names(realdns_table: Table) -> None:
    """The signed zone files as the signers and the edits left them: what each fault's row says was done."""
    zones = realdns_table.world.work / "zones"

    def records(fault: str, zone: str = "net") -> list[list[str]]:
        text = (zones / f"example-{fault}.{zone}.zone").read_text()
        return [line.split() for line in text.splitlines() if line and not line.startswith(";")]

    def has(rrs: list[list[str]], owner: str, rdtype: str, covered: str = "") -> bool:
        return any(r[0].lower() == owner and r[3] == rdtype and (not covered or r[4] == covered) for r in rrs)

    healthy = records("shealthy")
    mail = "mail.example-{}.net."
    assert has(healthy, mail.format("shealthy"), "RRSIG", "A") and has(healthy, mail.format("shealthy"), "NSEC")
    assert not has(records("snosig"), mail.format("snosig"), "RRSIG", "A")
    assert has(records("snosig"), mail.format("snosig"), "A")
    assert not has(records("snodata"), mail.format("snodata"), "NSEC")
    assert not has(records("snxdomain"), "example-snxdomain.net.", "NSEC")
    dnskey_sigs = [r for r in records("sdnskey") if r[3] == "RRSIG" and r[4] == "DNSKEY"]
    assert len(dnskey_sigs) == 1  # the ZSK's; the KSK's is gone
    nsec3 = [r for r in records("s3nodata") if r[3] == "NSEC3"]
    assert len(nsec3) == 3  # apex, ns1, ns2: the MX host's is gone
    expired = [int(r[8]) for r in records("sexpired") if r[3] == "RRSIG"]
    assert expired and max(expired) < int(time.strftime("%Y%m%d%H%M%S", time.gmtime()))
    tld = [line.split() for line in (zones / "net.zone").read_text().splitlines()]
    salgo = [r for r in tld if len(r) > 5 and r[0] == "example-salgo.net." and r[3] == "DS"]
    assert salgo and all(r[5] == "253" for r in salgo)  # PRIVATEDNS: no validator implements it
    # the trust anchor the resolvers and mxdoctor use is the signed root's KSK
    anchors = anchor.parse(realdns_table.world.trust_anchor.read_text())
    assert anchors and all(" DS " in a for a in anchors)


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
