"""Pure parts of the scan: the cheap target normalisation equals route.normalise_target, Lookups built
without setattr equal the dataclass's, routes of one shape share codes and decisions, the storm backoff,
and the record schema."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxdoctor import evidence, route
from mxdoctor.errors import InvalidTarget
from mxdoctor.evidence import Lookup, Outcome
from mxdoctor.mta.models import MODELS
from mxdoctor.scan import engine, record, run


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="aZ09-_.@: \tx\u00e9", min_size=0, max_size=30))
def test_cheap_normalisation_equals_normalise_target(text: str) -> None:
    try:
        want: str | None = route.normalise_target(text)
    except InvalidTarget:
        want = None
    try:
        got: str | None = run.normalise(text)
    except InvalidTarget:
        got = None
    assert got == want


def test_make_lookup_equals_the_dataclass() -> None:
    values = ("internal", None, "a.example.", "AAAA", Outcome.NOERROR, "NOERROR", ("::1",), (), 300, True, (), None)
    fast = engine.make_lookup(*values)
    assert fast == Lookup(*values) and hash(fast) == hash(Lookup(*values))
    assert evidence.to_dict(evidence.Evidence("a", "a", lookups=(fast,))) == evidence.to_dict(
        evidence.Evidence("a", "a", lookups=(Lookup(*values),))
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.outcome = Outcome.SERVFAIL  # type: ignore[misc]


def _lk(qname: str, qtype: str, outcome: Outcome, *records: str, cnames: tuple[str, ...] = ()) -> Lookup:
    rcode = {Outcome.NODATA: "NOERROR"}.get(outcome, outcome.value)
    return Lookup(engine.VIEW, None, qname, qtype, outcome, rcode, records, cnames)


ADDR = {
    "A": [(Outcome.NOERROR, "127.0.0.25"), (Outcome.NODATA, None), (Outcome.NXDOMAIN, None), (Outcome.SERVFAIL, None),
          (Outcome.TIMEOUT, None)],
    "AAAA": [(Outcome.NOERROR, "::1"), (Outcome.NODATA, None), (Outcome.NXDOMAIN, None), (Outcome.SERVFAIL, None),
             (Outcome.REFUSED, None), (Outcome.BROKEN, None)],
}  # fmt: skip


def _route(domain: str, mx: Lookup, hosts: dict[str, tuple[Lookup, Lookup]]) -> route.Route:
    answers = {route.Question(mx.qname, "MX"): mx}
    for host, (a, aaaa) in hosts.items():
        answers[route.Question(host, "A")] = a
        answers[route.Question(host, "AAAA")] = aaaa
    return route.replay(domain, answers)


def test_routes_of_one_shape_share_codes_and_decisions() -> None:
    """The cache keyed by shape gives what analysing each route afresh gives."""
    judge = record.Judge((evidence.Server("127.0.0.1"),))
    cases = 0
    for (ao, a), (vo, v) in itertools.product(ADDR["A"], ADDR["AAAA"]):
        for n in (1, 2):
            domain, mxhost = f"d{n}.example.", f"mx.d{n}.example."
            a_lk = _lk(mxhost, "A", ao, *([a] if a else []))
            v_lk = _lk(mxhost, "AAAA", vo, *([v] if v else []))
            r = _route(domain, _lk(domain, "MX", Outcome.NOERROR, f"10 {mxhost}"), {mxhost: (a_lk, v_lk)})
            assert judge.judge(r) == judge.analyse(r)
            cases += 1
    for outcome in (Outcome.NXDOMAIN, Outcome.SERVFAIL, Outcome.TIMEOUT, Outcome.REFUSED):
        for n in (1, 2):
            r = _route(f"x{n}.example.", _lk(f"x{n}.example.", "MX", outcome), {})
            assert judge.judge(r) == judge.analyse(r)
    null = _route("n.example.", _lk("n.example.", "MX", Outcome.NOERROR, "0 ."), {})
    assert judge.judge(null).status == "null" and judge.judge(null).codes == ("NULL_MX",)
    assert cases == 60 and len(judge._cache) < cases  # the cache did share


def test_storm_backoff_halves_and_recovers() -> None:
    s = engine._Server(evidence.Server("127.0.0.1", 9), engine.Limits(qps=100, inflight=64), 100.0)
    try:
        for _ in range(engine.STORM_WINDOW):
            s.judge(Outcome.REFUSED)
        assert (s.factor, s.effective_cap, s.backoffs) == (0.5, 32, 1)
        for _ in range(engine.STORM_WINDOW * 2):
            s.judge(Outcome.SERVFAIL)
        assert s.factor == 0.125 and s.effective_cap == 8
        for _ in range(engine.STORM_WINDOW * 20):
            s.judge(Outcome.NOERROR)
        assert s.factor == 1.0 and s.effective_cap == 64
        # SERVFAIL from a few broken domains is no storm
        for i in range(engine.STORM_WINDOW * 4):
            s.judge(Outcome.SERVFAIL if i % 3 == 0 else Outcome.NXDOMAIN)
        assert s.factor == 1.0
    finally:
        s.sock.close()


def test_record_schema() -> None:
    judge = record.Judge(())
    mxhost = "mail.example.net."
    hosts = {mxhost: (_lk(mxhost, "A", Outcome.NOERROR, "127.0.0.25"), _lk(mxhost, "AAAA", Outcome.SERVFAIL))}
    r = _route("example.com.", _lk("example.com.", "MX", Outcome.NOERROR, "10 mail.example.net."), hosts)
    rec = record.build(3, "User@Example.com", r, judge)
    assert list(rec) == ["line", "input", "domain", "status", "route", "mx_status", "hosts", "findings", "verdicts"]
    assert rec["hosts"] == [{"name": "mail.example.net", "preference": 10, "a": ["127.0.0.25"], "aaaa": [],
                             "a_status": "ok", "aaaa_status": "servfail", "cname": None}]  # fmt: skip
    assert rec["status"] == "ok" and "AAAA_SERVFAIL" in rec["findings"] and set(rec["verdicts"]) == set(MODELS)
    row = record.csv_row(rec)
    assert len(row) == len(record.CSV_FIELDS) and row[9:11] == ["mail.example.net=ok", "mail.example.net=servfail"]
    summary = record.Summary()
    summary.add_judged(judge.judge(r))
    summary.add_record(record.invalid(4, "x y", "white space"))
    assert summary.domains == 2 and summary.status == {"ok": 1, "invalid": 1}
    assert "would defer: exchange2010 1, sendmail 1" in summary.text()


def test_a_bug_in_a_callback_ends_the_run_instead_of_hanging() -> None:
    import asyncio
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    e = engine.Engine((evidence.Server("127.0.0.1", closed),), engine.Limits(qps=0, timeout=0.5))

    def done(tag: object, r: route.Route) -> None:
        raise RuntimeError("a bug in the record writer")

    try:
        with pytest.raises(RuntimeError, match="record writer"):
            asyncio.run(asyncio.wait_for(e.run(iter([(1, "a.example")]), done), 10))
    finally:
        e.close()
