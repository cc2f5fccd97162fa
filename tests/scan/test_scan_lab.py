"""mxdoctor scan against the lab's resolver on loopback: every route case, AAAA SERVFAIL kept apart from
"no IPv6", bad input lines, resume after an interruption, the rate limit counted at the server, and the
same route, finding codes and verdicts as diagnose through the same resolver for every lab scenario."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _scanlab import DOMAINS, ROUTES, records, scan_cli

from mxdoctor import analysis, api, lab, route
from mxdoctor.lab import scenario as scenario_mod
from mxdoctor.scan import record, run


@pytest.fixture(scope="module")
def routes_lab() -> Any:
    with lab.running(scenario_mod.parse(ROUTES, name="scan-routes")) as card:
        yield card


def test_every_route_case(routes_lab: lab.Card, tmp_path: Path) -> None:
    resolver = routes_lab.resolver("internal").hostport
    server = routes_lab.dns_server("internal")
    server.queries.clear()
    p = scan_cli(["-", "--resolver", resolver], stdin="\n".join(DOMAINS) + "\n")
    assert p.returncode == 0, p.stderr
    by = {r["domain"]: r for r in records(p.stdout)}
    assert [r["domain"] for r in records(p.stdout)] == DOMAINS  # input order

    mx = by["example.com"]
    assert (mx["status"], mx["route"], mx["mx_status"]) == ("ok", "mx", "ok")
    assert mx["hosts"] == [{"name": "mx1.example.com", "preference": 10, "a": ["127.0.0.25"], "aaaa": ["::1"],
                            "a_status": "ok", "aaaa_status": "ok", "cname": None}]  # fmt: skip
    assert "MAIL_ROUTE_OK" in mx["findings"] and set(mx["verdicts"].values()) == {"deliver"}

    imp = by["implicit.example.com"]
    assert (imp["status"], imp["route"], imp["mx_status"]) == ("ok", "implicit", "nodata")
    assert [(h["name"], h["preference"], h["a"]) for h in imp["hosts"]] == [("implicit.example.com", 0, ["127.0.0.26"])]
    assert "IMPLICIT_MX" in imp["findings"]

    null = by["null.example.com"]
    assert (null["status"], null["route"], null["hosts"]) == ("null", "null", [])
    assert null["findings"] == ["NULL_MX"] and null["verdicts"]["postfix"] == "bounce"

    alias = by["alias.example.com"]
    assert alias["status"] == "ok" and alias["hosts"][0]["cname"] == "mx1.example.com"
    assert alias["hosts"][0]["a"] == ["127.0.0.25"] and "MX_TARGET_IS_CNAME" in alias["findings"]

    noaddr = by["noaddr.example.com"]
    assert (noaddr["status"], noaddr["route"]) == ("no-address", "mx")
    assert (noaddr["hosts"][0]["a_status"], noaddr["hosts"][0]["aaaa_status"]) == ("nxdomain", "nxdomain")
    assert {"MX_TARGET_NXDOMAIN", "NO_ADDRESSES"} <= set(noaddr["findings"])

    nxd = by["nxd.example.com"]
    assert (nxd["status"], nxd["route"], nxd["mx_status"], nxd["hosts"]) == ("nxdomain", "none", "nxdomain", [])
    assert nxd["findings"] == ["DOMAIN_NXDOMAIN"] and set(nxd["verdicts"].values()) == {"bounce"}
    # an NXDOMAIN is asked once: one MX question, no retry, no address lookups
    asked = [(name, qtype) for name, qtype, _ in server.queries if name.startswith("nxd.")]
    assert asked == [("nxd.example.com.", "MX")]

    two = by["two.example.com"]
    assert [(h["name"], h["preference"]) for h in two["hosts"]] == [("mx.example.net", 10), ("mx1.example.com", 20)]

    broken = by["broken.example.com"]
    assert broken["status"] == "ok"
    assert (broken["hosts"][0]["a_status"], broken["hosts"][0]["aaaa_status"]) == ("ok", "servfail")
    assert "AAAA_SERVFAIL" in broken["findings"]
    assert broken["verdicts"]["exchange2010"] == "defer" and broken["verdicts"]["postfix"] == "deliver"
    # the shared exchanger mx1.example.com was asked once for all the domains that use it
    assert [q for q in server.queries if q[0] == "mx1.example.com." and q[1] == "A"] == [
        ("mx1.example.com.", "A", "udp")
    ]
    assert "summary" not in p.stdout and "domains: 8" in p.stderr


@pytest.mark.parametrize("lab", ["aaaa-servfail"], indirect=True)
def test_aaaa_servfail_is_not_no_ipv6(lab: lab.Card, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    p = scan_cli(["-", "--resolver", lab.resolver("internal").hostport, "-o", str(out)], stdin="example.com\n")
    assert p.returncode == 0, p.stderr
    (rec,) = records(out.read_text())
    host = rec["hosts"][0]
    assert (host["aaaa"], host["aaaa_status"], host["a"]) == ([], "servfail", ["127.0.0.25"])
    assert "AAAA_SERVFAIL" in rec["findings"]
    assert {m: rec["verdicts"][m] for m in ("exchange2010", "sendmail", "postfix")} == {
        "exchange2010": "defer", "sendmail": "defer", "postfix": "deliver"}  # fmt: skip
    assert "would defer: exchange2010 1, sendmail 1" in p.stderr


def test_no_ipv6_is_nodata_without_finding(routes_lab: lab.Card) -> None:
    p = scan_cli(["-", "--resolver", routes_lab.resolver("internal").hostport], stdin="two.example.com\n")
    (rec,) = records(p.stdout)
    net = next(h for h in rec["hosts"] if h["name"] == "mx.example.net")
    assert (net["aaaa"], net["aaaa_status"]) == ([], "nodata")
    assert not [c for c in rec["findings"] if c.startswith("AAAA_")]


def test_bad_lines_are_records_and_never_fatal(routes_lab: lab.Card) -> None:
    long_line = "a" * 5000
    text = f"# a comment\n\nexample.com\nnot a domain\n10.0.0.1\nuser@\nxn--.com\n{long_line}\nUSER@Null.Example.COM.\n"
    p = scan_cli(["-", "--resolver", routes_lab.resolver("internal").hostport, "--format", "csv"], stdin=text)
    assert p.returncode == 0, p.stderr
    rows = p.stdout.splitlines()
    assert rows[0].startswith("line,input,domain,status,route")
    got = [row.split(",")[:4] for row in rows[1:]]
    assert [g[0] for g in got] == ["3", "4", "5", "6", "7", "8", "9"]
    assert [g[3] for g in got] == ["ok", "invalid", "invalid", "invalid", "invalid", "invalid", "null"]
    assert got[-1][2] == "null.example.com"
    assert p.stderr.count("mxdoctor scan: line ") == 5 and "line 4: 'not a domain' contains white space" in p.stderr


def test_resume_after_an_interrupted_run(routes_lab: lab.Card, tmp_path: Path) -> None:
    resolver = routes_lab.resolver("internal").hostport
    names = [f"h{i}.nxd.example.com" if i % 3 else DOMAINS[i % len(DOMAINS)] for i in range(60)]
    source = tmp_path / "list.txt"
    source.write_text("\n".join(names) + "\n")
    out = tmp_path / "out.jsonl"
    slow = subprocess.Popen(
        [sys.executable, "-m", "mxdoctor.cli", "scan", str(source), "--resolver", resolver, "--qps", "20",
         "--concurrency", "1", "-o", str(out)], stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not out.exists() or out.read_bytes().count(b"\n") < 10):
        time.sleep(0.05)
    os.kill(slow.pid, signal.SIGKILL)
    slow.wait()
    partial = out.read_bytes()
    with out.open("ab") as f:
        f.write(b'{"line": 99, "inp')  # a record cut off in the middle, as a crash leaves it
    done_before = partial.count(b"\n")
    assert 10 <= done_before < 60
    p = scan_cli([str(source), "--resolver", resolver, "--qps", "0", "-o", str(out), "--resume"])
    assert p.returncode == 0, p.stderr
    resumed = records(out.read_text())
    assert [r["line"] for r in resumed] == list(range(1, 61))  # none lost, none doubled, in order
    assert out.read_bytes().startswith(partial)
    full = scan_cli([str(source), "--resolver", resolver, "--qps", "0"])
    assert records(full.stdout) == resumed
    assert "domains: 60" in p.stderr  # the summary counts the earlier part too
    # a resume against another input is refused
    other = tmp_path / "other.txt"
    other.write_text("\n".join(reversed(names)) + "\n")
    bad = scan_cli([str(other), "--resolver", resolver, "-o", str(out), "--resume"])
    assert bad.returncode == 3 and "does not continue this input" in bad.stderr


def test_rate_limit_counted_at_the_server(routes_lab: lab.Card) -> None:
    server = routes_lab.dns_server("internal")
    server.queries.clear()
    names = [f"r{i}.nxd.example.com" for i in range(40)]
    t0 = time.monotonic()
    p = scan_cli(["-", "--resolver", routes_lab.resolver("internal").hostport, "--qps", "40"],
                 stdin="\n".join(names) + "\n")  # fmt: skip
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    asked = [q for q in server.queries if q[0].startswith("r") and ".nxd." in q[0]]
    assert len(asked) == 40  # one MX question per NXDOMAIN domain
    assert elapsed >= 0.9  # 40 queries at 40/s: a second at least, whatever the start-up
    assert all(r["status"] == "nxdomain" for r in records(p.stdout))


def test_system_resolver_refused_above_a_low_rate(tmp_path: Path) -> None:
    p = scan_cli(["-", "--qps", "500"], stdin="example.com\n")
    assert p.returncode == 3 and "--resolver" in p.stderr and "Traceback" not in p.stderr
    with pytest.raises(Exception, match="system resolver"):
        run.ScanOptions(qps=0).limits()
    assert run.ScanOptions().limits().qps == run.SYSTEM_MAX_QPS
    assert run.ScanOptions(resolvers=("127.0.0.1",)).limits().qps == run.DEFAULT_QPS


def test_silent_and_closed_resolvers_end_in_bounded_time() -> None:
    """A resolver that never answers: each question is sent as diagnose's plan says (with EDNS, and
    once more with EDNS, as resolvers retry), then the domain is a timeout; a closed port is a network
    error at once."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        p = scan_cli(["-", "--resolver", f"127.0.0.1:{port}", "--timeout", "0.2"], stdin="a.example\nb.example\n")
        elapsed = time.monotonic() - t0
        silent.setblocking(False)
        got = []
        while True:
            try:
                got.append(silent.recv(4096))
            except BlockingIOError:
                break
    assert p.returncode == 0, p.stderr
    assert [(r["status"], r["mx_status"]) for r in records(p.stdout)] == [("timeout", "timeout")] * 2
    assert len(got) == 4 and sum(b"\x00\x00\x29" in g for g in got) == 4  # every one with EDNS
    assert elapsed < 10
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    p = scan_cli(["-", "--resolver", f"127.0.0.1:{closed}", "--timeout", "0.5"], stdin="a.example\n")
    assert [r["status"] for r in records(p.stdout)] == ["network-error"]


def test_questions_spread_over_resolvers_and_fail_over(routes_lab: lab.Card) -> None:
    """Two resolvers: the questions are spread; one that does not answer hands its questions to the
    other, as a stub resolver tries the next server after a failure."""
    import socket

    resolver = routes_lab.resolver("internal").hostport
    server = routes_lab.dns_server("internal")
    names = [f"s{i}.nxd.example.com" for i in range(20)] + DOMAINS
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{silent.getsockname()[1]}"
        server.queries.clear()
        p = scan_cli(["-", "--resolver", dead, "--resolver", resolver, "--timeout", "0.2"],
                     stdin="\n".join(names) + "\n")  # fmt: skip
        silent.setblocking(False)
        at_dead = 0
        while True:
            try:
                silent.recv(4096)
                at_dead += 1
            except BlockingIOError:
                break
    assert p.returncode == 0, p.stderr
    alone = scan_cli(["-", "--resolver", resolver], stdin="\n".join(names) + "\n")
    # every answer came through the live one; a question that both fail (the AAAA SERVFAIL of
    # broken.example.com) ends with the last one tried, as a stub reports it
    failing = {"broken.example.com"}
    assert [r for r in records(p.stdout) if r["input"] not in failing] == [
        r for r in records(alone.stdout) if r["input"] not in failing
    ]
    broken = next(r for r in records(p.stdout) if r["input"] == "broken.example.com")
    assert broken["hosts"][0]["aaaa_status"] in ("servfail", "timeout") and broken["status"] == "ok"
    assert at_dead >= 10  # the dead one was given its share first


def test_options_errors_are_one_line() -> None:
    for args in (["--resolver", "not-an-ip"], ["--resolver", "127.0.0.1", "--concurrency", "0"],
                 ["--resolver", "127.0.0.1", "--resume"], ["--resolver", "127.0.0.1", "--timeout", "0"]):  # fmt: skip
        p = scan_cli(["-", *args], stdin="example.com\n")
        assert p.returncode == 3 and p.stderr.count("\n") <= 2 and "Traceback" not in p.stderr, (args, p.stderr)
    missing = scan_cli(["/nonexistent/list.txt", "--resolver", "127.0.0.1"])
    assert missing.returncode == 3 and "No such file" in missing.stderr


# edns-dropped is left out: behind its silent servers the lab resolver answers SERVFAIL only after its
# own time-outs, so what a client sees (silence or SERVFAIL) follows how long it waits, not the route.
ROUTE_SCENARIOS = [n for n in scenario_mod.builtin_names() if not n.startswith("audit-") and n != "edns-dropped"]


@pytest.mark.parametrize("name", ROUTE_SCENARIOS)
def test_same_result_as_diagnose(name: str, tmp_path: Path) -> None:
    """For every lab scenario: scan's route, codes and verdicts equal diagnose's through that resolver."""
    sc = scenario_mod.load(name)
    with lab.running(sc) as card:
        resolver = card.resolver("internal").hostport
        options = api.DiagnoseOptions(
            resolvers=(resolver,), use_system=False, authoritative=False, dns_port=card.dns_port, timeout=0.5,
            deadline=20.0,
        )
        ev = api.collect(card.domains[0], options)
        p = scan_cli(["-", "--resolver", resolver, "--timeout", "0.5"], stdin=card.domains[0] + "\n")
    assert p.returncode == 0, p.stderr
    (rec,) = records(p.stdout)
    d = analysis.analyse(ev)
    want = record.build(1, card.domains[0], route.route_for_view(ev, "internal"), record.Judge(()))
    # the route as diagnose resolved it, lookup by lookup
    assert {k: rec[k] for k in ("domain", "status", "route", "mx_status", "hosts")} == {
        k: want[k] for k in ("domain", "status", "route", "mx_status", "hosts")
    }
    # and the same finding codes and decisions as diagnose's own analysis of its evidence
    transport = {"EDNS_INTOLERANT", "TCP_FAILS"}  # read from the exchange history a scan does not keep
    assert set(rec["findings"]) == {f.code for f in d.findings} - transport
    assert rec["verdicts"] == {v.mta: v.outcome.value for v in d.verdicts}
