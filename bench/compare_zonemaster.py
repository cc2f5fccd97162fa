"""Benchmark: Debian's zonemaster-cli and ``mxdoctor audit`` on the same lab scenarios.

Each scenario's lab runs on port 53 (Zonemaster cannot use another port) inside a private network
namespace (``unshare --net``, loopback only), so it collides with nothing on the host. Zonemaster gets
the lab root with ``--hints``. Prints, per scenario, the problems each tool reports, grouped by kind
(AAAA, EDNS, TCP, consistency, case, lame, other), whether mxdoctor covers every kind Zonemaster
reports, and the wall time per domain of each (both run as a fresh process).
Needs root (namespaces, port 53); installs zonemaster-cli with apt-get when missing.
Usage: python bench/compare_zonemaster.py [SCENARIO ...] [--timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

INNER = "MXDOCTOR_BENCH_IN_NETNS"
ROOT = Path(__file__).resolve().parents[1]
MXDOCTOR = [sys.executable, "-m", "mxdoctor.cli"]

# Zonemaster test cases that always fire in a loopback lab (private addresses, no PTR, no IPv6, SOA
# timers, no DNSSEC, AS diversity): counted apart, they say nothing about the scenario.
ZM_NOISE = {"ADDRESS01", "ADDRESS02", "ADDRESS03", "CONNECTIVITY03", "CONNECTIVITY04", "DELEGATION01",
            "ZONE01", "ZONE02", "ZONE03", "ZONE04", "ZONE05", "ZONE06", "ZONE07", "SYNTAX06", "UNSPECIFIED"}
ZM_LEVELS = ("WARNING", "ERROR", "CRITICAL")
ZM_KIND = {
    "NAMESERVER05": "AAAA",
    "NAMESERVER02": "EDNS", "NAMESERVER10": "EDNS", "NAMESERVER11": "EDNS", "NAMESERVER12": "EDNS",
    "NAMESERVER13": "EDNS", "NAMESERVER14": "EDNS",
    "CONNECTIVITY01": "TCP", "CONNECTIVITY02": "TCP",
    "CONSISTENCY01": "consistency", "CONSISTENCY02": "consistency", "CONSISTENCY03": "consistency",
    "CONSISTENCY04": "consistency", "CONSISTENCY05": "consistency", "CONSISTENCY06": "consistency",
    "NAMESERVER08": "case", "NAMESERVER09": "case",
}  # fmt: skip
MX_KIND = {
    "AAAA_SERVFAIL": "AAAA", "AAAA_NXDOMAIN": "AAAA", "AAAA_TIMEOUT": "AAAA", "AAAA_UNEXPECTED_RCODE": "AAAA",
    "AAAA_BROKEN_RESPONSE": "AAAA",
    "EDNS_INTOLERANT": "EDNS", "EDNS_VERSION_IGNORED": "EDNS", "EDNS_OPTION_MISHANDLED": "EDNS",
    "EDNS_FLAG_MISHANDLED": "EDNS", "NO_TRUNCATION": "EDNS", "ZFLAG_MISHANDLED": "EDNS",
    "TCP_FAILS": "TCP", "TCP_UNSUPPORTED": "TCP", "NS_UNREACHABLE": "TCP",
    "SOA_SERIAL_MISMATCH": "consistency", "NS_SET_MISMATCH": "consistency", "NS_DISAGREE": "consistency",
    "QNAME_CASE_MISHANDLED": "case",
    "LAME_DELEGATION": "lame", "NOT_AUTHORITATIVE": "lame",
}  # fmt: skip
DEFAULT_SCENARIOS = (
    "healthy", "aaaa-servfail", "aaaa-nxdomain", "aaaa-dropped", "aaaa-refused", "aaaa-broken", "mx-servfail",
    "lame-delegation", "ns-disagree", "edns-intolerant", "tcp-refused-truncated", "multi-mx-partial",
    "audit-unknown-type", "audit-edns-version", "audit-edns-option", "audit-edns-flags", "audit-no-truncation",
    "audit-qname-case", "audit-empty-nonterminal", "audit-opcode", "audit-zflag", "audit-not-authoritative",
    "audit-tcp-unsupported", "audit-nxdomain-no-soa", "audit-soa-serial", "audit-ns-set",
)  # fmt: skip


def zm_kind(testcase: str, tag: str) -> str:
    if "NOT_AUTH" in tag or "NOT_AA" in tag or "LAME" in tag:
        return "lame"
    return ZM_KIND.get(testcase, "other")


def ensure_zonemaster() -> None:
    if shutil.which("zonemaster-cli"):
        return
    print("installing zonemaster-cli (apt-get)...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "zonemaster-cli"], check=True, env=env, timeout=900)


def run_zonemaster(domain: str, hints: str) -> tuple[float, list[tuple[str, str, str]]]:
    cmd = ["zonemaster-cli", "--hints", hints, "--no-ipv6", "--json", "--level", "WARNING", domain]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - start
    try:
        entries = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"zonemaster-cli gave no JSON: {proc.stderr.strip()[:300]}") from None
    found = [
        (str(e.get("testcase", "")), str(e.get("tag", "")), str(e.get("level", "")))
        for e in entries
        if e.get("level") in ZM_LEVELS
    ]
    return elapsed, found


def run_mxdoctor(domain: str, hints: str, timeout: float) -> tuple[float, float, list[tuple[str, str]], int]:
    cmd = [*MXDOCTOR, "audit", domain, "--root-hints", hints, "--timeout", str(timeout), "--json"]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    elapsed = time.monotonic() - start
    data = json.loads(proc.stdout)
    found = [(f["code"], f["severity"]) for f in data["findings"] if f["severity"] not in ("INFO",)]
    # the probing alone (discovery and every probe), from the evidence's own clock
    probing = max((x["started"] + x["duration"] for x in data["evidence"]["exchanges"]), default=0.0)
    return elapsed, probing, found, proc.returncode


def one(name: str, timeout: float) -> dict[str, object]:
    from mxdoctor import lab

    with lab.running(name, port=53) as card:
        domain = card.domains[0]
        zm_time, zm = run_zonemaster(domain, card.root_hints)
        mx_time, mx_probing, mx, status = run_mxdoctor(domain, card.root_hints, timeout)
    zm_real = [(tc, tag) for tc, tag, _ in zm if tc not in ZM_NOISE]
    zm_kinds = {zm_kind(tc, tag) for tc, tag in zm_real}
    mx_kinds = {MX_KIND.get(code, "other") for code, _ in mx}
    missed = sorted(k for k in zm_kinds - mx_kinds if k != "other")
    return {
        "scenario": name,
        "zonemaster": sorted({f"{tc}:{tag}" for tc, tag in zm_real}),
        "zonemaster_noise": len(zm) - len(zm_real),
        "zonemaster_kinds": sorted(zm_kinds),
        "mxdoctor": sorted({code for code, _ in mx}),
        "mxdoctor_kinds": sorted(mx_kinds),
        "mxdoctor_exit": status,
        "missed_by_mxdoctor": missed,
        "only_mxdoctor": sorted({code for code, _ in mx if MX_KIND.get(code, "other") not in zm_kinds}),
        "zonemaster_s": round(zm_time, 2),
        "mxdoctor_s": round(mx_time, 2),
        "mxdoctor_probing_s": round(mx_probing, 2),
    }


def print_table(rows: list[dict[str, object]]) -> None:
    print(f"{'scenario':<26} {'zm s':>6} {'mxd s':>6} {'probe':>6}  covers  Zonemaster (WARNING+, lab noise left out)"
          " | mxdoctor")
    for r in rows:
        zm = ", ".join(r["zonemaster"]) or "-"  # type: ignore[arg-type]
        mx = ", ".join(r["mxdoctor"]) or "-"  # type: ignore[arg-type]
        covers = "yes" if not r["missed_by_mxdoctor"] else "NO " + ",".join(r["missed_by_mxdoctor"])  # type: ignore[arg-type]
        print(f"{r['scenario']:<26} {r['zonemaster_s']:>6} {r['mxdoctor_s']:>6} {r['mxdoctor_probing_s']:>6}  "
              f"{covers:<6}  {zm} | {mx}")
    zm_total = sum(float(r["zonemaster_s"]) for r in rows)  # type: ignore[arg-type]
    mx_total = sum(float(r["mxdoctor_s"]) for r in rows)  # type: ignore[arg-type]
    probing = sum(float(r["mxdoctor_probing_s"]) for r in rows)  # type: ignore[arg-type]
    n = len(rows)
    missed = [r["scenario"] for r in rows if r["missed_by_mxdoctor"]]
    only = [r["scenario"] for r in rows if r["only_mxdoctor"]]
    print(f"\nper domain (mean of {n}): Zonemaster {zm_total / n:.2f} s; mxdoctor audit {mx_total / n:.2f} s "
          f"as a process, {probing / n:.2f} s of it probing")
    print(f"Zonemaster problem kinds mxdoctor misses: {', '.join(map(str, missed)) or 'none'}")
    print(f"scenarios where mxdoctor finds a kind of problem Zonemaster does not: {len(only)} of {n}")


def inner(args: argparse.Namespace) -> None:
    rows = [one(name, args.timeout) for name in args.scenarios]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=list(DEFAULT_SCENARIOS))
    parser.add_argument("--timeout", type=float, default=2.0, help="mxdoctor's per-query timeout (default 2)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    if os.environ.get(INNER):
        inner(args)
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root: a network namespace and port 53 for the lab")
    ensure_zonemaster()
    script = 'ip link set lo up && exec "$0" "$@"'
    cmd = ["unshare", "--net", "--", "sh", "-c", script, sys.executable, __file__, *sys.argv[1:]]
    env = {**os.environ, INNER: "1", "PYTHONPATH": str(ROOT / "src")}
    raise SystemExit(subprocess.run(cmd, env=env).returncode)


if __name__ == "__main__":
    main()
