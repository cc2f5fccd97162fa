#!/usr/bin/env python3
"""Wall time and peak memory of `mxdoctor diagnose` against every hostile DNS mode, each run in a
private network namespace (loopback only): the figures behind the --deadline and memory bounds.

usage (root): bench/bounds.py [--deadline S] [--cases a,b,...] [--json]   (the tests run it with --deadline 3)
Targets: wall <= deadline + 1 s and peak RSS <= 300 MB for every case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = HERE / "hostile_dns.py"
ADDR, PORT = "127.0.0.70", 6350
WALL_MARGIN, RSS_LIMIT_KB = 1.0, 300 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    mode: str
    views: str  # "both": the server as internal resolver and as root; "auth": root only; "resolver"
    deadline: float = 10.0  # unless --deadline is given
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Result:
    case: str
    mode: str
    deadline: float
    wall: float
    maxrss_kb: int
    rc: int
    traceback: bool
    codes: list[str]

    @property
    def within(self) -> bool:
        return self.wall <= self.deadline + WALL_MARGIN and self.maxrss_kb <= RSS_LIMIT_KB and not self.traceback


def modes() -> list[str]:
    out = subprocess.run([sys.executable, str(SERVER), "--modes"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def cases() -> list[Case]:
    """The reproducers of the hardening issue, then every hostile mode through both views."""
    fanout = (("FANOUT", "13"),)
    listed = [
        Case("r01-glueless-fanout", "glueless-fanout", "auth", 10.0, fanout),
        Case("r02-tcp-64k-replies", "big64k", "resolver", 10.0),
        Case("r02-64k-both-views-30s", "big64k", "both", 30.0),
    ]
    return listed + [Case(m, m, "both", 10.0, fanout if m == "glueless-fanout" else ()) for m in modes()]


def mxdoctor_command() -> list[str]:
    script = Path(sys.executable).parent / "mxdoctor"
    found = str(script) if script.exists() else shutil.which("mxdoctor")
    return [found] if found else [sys.executable, "-m", "mxdoctor.cli"]


def _start_server(mode: str, env: dict[str, str], life: float) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        [sys.executable, str(SERVER), mode, ADDR, str(PORT), "--life", str(life)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, **env},
    )  # fmt: skip
    assert server.stdout is not None
    line = server.stdout.readline()  # "ready MODE ADDR:PORT" once both sockets listen
    if not line.startswith("ready"):
        server.kill()
        raise SystemExit(f"hostile server {mode} did not start")
    return server


def run_case(case: Case, deadline: float | None, hints: Path) -> Result:
    """One diagnose against a fresh server of ``case.mode``; must run inside the private namespace."""
    dl = case.deadline if deadline is None else deadline
    server = _start_server(case.mode, dict(case.env), life=dl * 3 + 30)
    args = [*mxdoctor_command(), "diagnose", "hostile.test", "--deadline", f"{dl:g}", "--json"]
    if case.views in ("both", "resolver"):
        args += ["--resolver", f"{ADDR}:{PORT}"]
    else:
        args += ["--no-system"]
    if case.views in ("both", "auth"):
        args += ["--root-hints", str(hints), "--dns-port", str(PORT)]
    else:
        args += ["--no-authoritative"]
    try:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as fig:
            # /usr/bin/time forks mxdoctor itself: the figures are mxdoctor's alone. (The rusage of a
            # child started from here would not be: Python starts children with vfork, and a child's
            # peak RSS then includes this process's own peak.)
            timed = ["/usr/bin/time", "-f", "%e %M", "-o", fig.name, *args]
            rc = subprocess.call(timed, stdout=out, stderr=err)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
            wall_text, rss_text = Path(fig.name).read_text().split("\n")[-2].split()  # last line: the format
    finally:
        server.kill()
        server.wait()
    try:
        codes = [f["code"] for f in json.loads(stdout)["findings"]]
    except (ValueError, KeyError, TypeError):
        codes = []
    return Result(case.name, case.mode, dl, float(wall_text), int(rss_text), rc, "Traceback" in stderr, codes)


def _inside(opts: argparse.Namespace) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    wanted = set(opts.cases.split(",")) if opts.cases else None
    selected = [c for c in cases() if wanted is None or c.name in wanted]
    with tempfile.TemporaryDirectory(prefix="mxdoctor-bounds-") as tmp:
        hints = Path(tmp) / "hints.txt"
        hints.write_text(f".  3600000  NS  a.root-servers.net.\na.root-servers.net. 3600000 A {ADDR}\n")
        results = []
        if not opts.json:
            print(f"{'case':<24} {'deadline':>8} {'wall s':>7} {'peak RSS MB':>11} {'rc':>3}  within  notes")
        for case in selected:
            r = run_case(case, opts.deadline, hints)
            results.append(r)
            if not opts.json:
                notes = "TRACEBACK" if r.traceback else ",".join(c for c in r.codes if c in _SHOWN)
                print(f"{r.case:<24} {r.deadline:>8g} {r.wall:>7.2f} {r.maxrss_kb / 1024:>11.1f} {r.rc:>3}  "
                      f"{'yes' if r.within else 'NO':<6}  {notes}", flush=True)  # fmt: skip
    if opts.json:
        print(json.dumps([asdict(r) | {"within": r.within} for r in results], indent=1))
    else:
        worst_wall = max((r.wall - r.deadline for r in results), default=0.0)
        worst_rss = max((r.maxrss_kb for r in results), default=0) / 1024
        print(f"{sum(r.within for r in results)}/{len(results)} within bounds; worst wall - deadline "
              f"{worst_wall:+.2f} s, worst peak RSS {worst_rss:.1f} MB")  # fmt: skip
    return 0 if all(r.within for r in results) else 1


_SHOWN = {"DEADLINE_REACHED", "LIMIT_REACHED"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--deadline", type=float, help="--deadline of every run (default 10; 30 for r02-64k-both-views-30s)")
    p.add_argument("--cases", help="comma-separated case names (default: all)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    opts = p.parse_args()
    if opts.inside:
        return _inside(opts)
    if os.geteuid() != 0:
        print("bench/bounds.py needs root: it runs each case in a private network namespace", file=sys.stderr)
        return 3
    if not Path("/usr/bin/time").exists():
        print("bench/bounds.py needs /usr/bin/time (Debian package time)", file=sys.stderr)
        return 3
    # one private network namespace for the whole bench: nothing it sends can leave the machine
    return subprocess.call(["unshare", "-n", sys.executable, __file__, "--inside", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
