"""Benchmark: ``mxdoctor scan``, a dnspython baseline and adns (``adnshost``) against one private NSD
serving a 100,000-domain zone on loopback, in one run; every output is checked against the zone.

The zone mixes normal domains, two-MX domains, NXDOMAIN, implicit MX, null MX and MX hosts that do
not exist, with AAAA on a third of the hosts. NSD listens on 127.53.0.1 port 53 (adns cannot use
another port) with its own configuration in a temporary directory. Prints domains/s, CPU µs per
domain, peak RSS and the ratios. Needs root (port 53) and ``apt-get install nsd adns-tools``.
Usage: python bench/scan.py [--domains N] [--workers N] [--skip-adns] [--skip-dnspython] [--skip-one]
[--skip-dask] [--concurrency N]; python bench/scan.py --rss-domains 10000000 streams that many domains
(the zone's, cycled) through ``mxdoctor scan`` into /dev/null and prints its peak RSS.
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# bench/queue.py would shadow the standard library's queue module that dask imports
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

ADDRESS = "127.53.0.1"
PORT = 53
ZONE = "bench.test"
ROOT = Path(__file__).resolve().parents[1]
KINDS = ("normal", "two-mx", "nxdomain", "implicit", "null-mx", "missing-host")
WEIGHTS = (40, 15, 10, 10, 10, 15)


@dataclass
class Expected:
    """What a domain must resolve to: status, route and hosts as (name, pref, a, aaaa)."""

    status: str
    route: str
    hosts: list[tuple[str, int, list[str], list[str]]] = field(default_factory=list)


def build_zone(n: int, seed: int = 7) -> tuple[str, list[str], dict[str, Expected]]:
    """The zone text, the domain list (in a shuffled order) and the expected answer of each."""
    rng = random.Random(seed)
    lines = [
        f"$ORIGIN {ZONE}.",
        "$TTL 3600",
        f"@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 300",
        f"@ IN NS ns.{ZONE}.",
        f"ns IN A {ADDRESS}",
    ]
    domains: list[str] = []
    expected: dict[str, Expected] = {}
    host_no = 0

    def host(name: str) -> tuple[str, int, list[str], list[str]]:
        nonlocal host_no
        host_no += 1
        a = f"127.{(host_no >> 16) & 255}.{(host_no >> 8) & 255}.{host_no & 255}"
        lines.append(f"{name} IN A {a}")
        aaaa: list[str] = []
        if host_no % 3 == 0:
            aaaa = [ipaddress.IPv6Address(f"fd00::{host_no >> 16:x}:{host_no & 0xFFFF:x}").compressed]
            lines.append(f"{name} IN AAAA {aaaa[0]}")
        return name, 0, [a], aaaa

    kinds = rng.choices(KINDS, WEIGHTS, k=n)
    for i, kind in enumerate(kinds):
        d = f"d{i}.{ZONE}"
        domains.append(d)
        if kind == "normal":
            name, _, a, aaaa = host(f"mx.{d}.")
            lines.append(f"{d}. IN MX 10 mx.{d}.")
            expected[d] = Expected("ok", "mx", [(f"mx.{d}", 10, a, aaaa)])
        elif kind == "two-mx":
            _, _, a1, v1 = host(f"mx1.{d}.")
            _, _, a2, v2 = host(f"mx2.{d}.")
            lines.append(f"{d}. IN MX 10 mx1.{d}.")
            lines.append(f"{d}. IN MX 20 mx2.{d}.")
            expected[d] = Expected("ok", "mx", [(f"mx1.{d}", 10, a1, v1), (f"mx2.{d}", 20, a2, v2)])
        elif kind == "nxdomain":
            expected[d] = Expected("nxdomain", "none")
        elif kind == "implicit":
            _, _, a, aaaa = host(f"{d}.")
            expected[d] = Expected("ok", "implicit", [(d, 0, a, aaaa)])
        elif kind == "null-mx":
            lines.append(f"{d}. IN MX 0 .")
            expected[d] = Expected("null", "null")
        else:
            lines.append(f"{d}. IN MX 10 gone.{d}.")
            lines.append(f"www.{d}. IN A 127.0.0.80")  # the domain exists, its MX host does not
            expected[d] = Expected("no-address", "mx", [(f"gone.{d}", 10, [], [])])
    rng.shuffle(domains)
    return "\n".join(lines) + "\n", domains, expected


class Nsd:
    """A private NSD on ADDRESS:PORT with its configuration, zone and state in ``workdir``."""

    def __init__(self, workdir: Path, zone_text: str) -> None:
        self.workdir = workdir
        (workdir / f"{ZONE}.zone").write_text(zone_text)
        conf = workdir / "nsd.conf"
        conf.write_text(
            f"""server:
  ip-address: {ADDRESS}
  port: {PORT}
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "{workdir}"
  database: ""
  zonelistfile: "{workdir}/zone.list"
  xfrdfile: "{workdir}/xfrd.state"
  xfrdir: "{workdir}"
  pidfile: "{workdir}/nsd.pid"
  logfile: "{workdir}/nsd.log"
  verbosity: 1
  hide-version: yes
  ip-transparent: no
  rrl-ratelimit: 0
  minimal-responses: yes
  rrl-whitelist-ratelimit: 0
  tcp-count: 200
remote-control:
  control-enable: no
zone:
  name: {ZONE}
  zonefile: "{workdir}/{ZONE}.zone"
"""
        )
        self.proc = subprocess.Popen(["nsd", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import dns.message
        import dns.query

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = (self.workdir / "nsd.log").read_text() if (self.workdir / "nsd.log").exists() else ""
                raise SystemExit(f"nsd exited: {err} {log}")
            try:
                q = dns.message.make_query(f"ns.{ZONE}", "A")
                r = dns.query.udp(q, ADDRESS, port=PORT, timeout=0.5)
                if r.answer:
                    return
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.2)
        raise SystemExit("nsd did not answer within 60 s")

    def cpu(self) -> float:
        """CPU seconds NSD's processes (the server and its children) have used so far."""
        ticks = 0
        todo = [self.proc.pid]
        while todo:
            p = todo.pop()
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
                for task in Path(f"/proc/{p}/task").iterdir():
                    todo.extend(int(c) for c in (task / "children").read_text().split())
            except (OSError, ValueError, IndexError):
                continue
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Run:
    name: str
    domains: int
    wall: float
    cpu: float
    rss_mb: float
    wrong: int
    examples: list[str]
    pss_mb: float | None = None  # all its processes together (None: one process, see rss_mb)
    nsd_cpu: float = 0.0  # NSD's CPU seconds during the run

    @property
    def rate(self) -> float:
        return self.domains / self.wall

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.domains * 1e6

    @property
    def nsd_us(self) -> float:
        return self.nsd_cpu / self.domains * 1e6

    @property
    def free_rate(self) -> float:
        """Domains/s on two cores of its own shared only with NSD, from the CPU both spent per domain."""
        return 2e6 / (self.cpu_us + self.nsd_us)


def _gnu_time(cmd: list[str], report: Path) -> list[str]:
    """``cmd`` under GNU time: the child's own peak RSS (one forked from this big process would
    count the zone this process holds, since the kernel keeps the high-water mark across exec)."""
    return ["/usr/bin/time", "-o", str(report), "-f", "%e %U %S %M", *cmd]


def _read_time(report: Path) -> tuple[float, float, float]:
    wall, user, system, rss_kb = report.read_text().split()[-4:]
    return float(wall), float(user) + float(system), int(rss_kb) / 1024


def _tree_pss(pid: int) -> float:
    """MB of proportional set size of ``pid`` and all its descendants (shared pages counted once)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total / 1024


class PssWatch:
    """Samples the summed PSS of a process tree every 0.2 s in a thread; ``peak`` is the highest."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _tree_pss(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def timed(
    cmd: list[str], *, stdin: Path | None = None, stdout: Path, feed: object = None
) -> tuple[float, float, float, float, str]:
    """(wall s, user+system CPU s of it and its children, peak RSS MB of its largest process, peak
    PSS MB of all its processes together, its standard error) of one child process. ``feed``: a
    callable that writes the child's standard input (a pipe) and closes it."""
    report = stdout.with_suffix(".time")
    errors = stdout.with_suffix(".stderr")
    with stdout.open("wb") as out, errors.open("wb") as err, \
            (stdin.open("rb") if stdin else open(os.devnull, "rb")) as inp:  # fmt: skip
        t0 = time.monotonic()
        proc = subprocess.Popen(_gnu_time(cmd, report), stdin=subprocess.PIPE if feed else inp, stdout=out,
                                stderr=err)  # fmt: skip
        watch = PssWatch(proc.pid)
        if feed is not None:
            feed(proc.stdin)  # type: ignore[operator]
        proc.wait()
        wall = time.monotonic() - t0
        pss = watch.stop()
    text = errors.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {text[-2000:]}")
    _, cpu, rss = _read_time(report)
    return wall, cpu, rss, pss, text


def check_mxdoctor(path: Path, expected: dict[str, Expected]) -> tuple[int, int, list[str]]:
    wrong, seen, examples = 0, 0, []
    for line in path.open(encoding="utf-8"):
        rec = json.loads(line)
        seen += 1
        want = expected[rec["input"]]
        hosts = [(h["name"], h["preference"], h["a"], h["aaaa"]) for h in rec["hosts"]]
        want_hosts = [(n, p, a, v) for n, p, a, v in want.hosts]
        if rec["status"] != want.status or rec["route"] != want.route or hosts != want_hosts:
            wrong += 1
            if len(examples) < 3:
                examples.append(f"{rec['input']}: got {rec['status']}/{rec['route']}/{hosts}, want {want}")
    return seen, wrong + (len(expected) - seen), examples


def check_adns(path: Path, expected: dict[str, Expected]) -> tuple[int, int, list[str]]:
    """adnshost -Fa output: a header line per answer, then its RRs; MX RRs carry their addresses."""
    got: dict[str, tuple[str, list[tuple[str, int, list[str], list[str]]]]] = {}
    lines = path.read_text(errors="replace").splitlines()
    i = 0
    while i < len(lines):
        head = lines[i].split()
        # <id> <nrrs> <statustype> <statusnum> <statusabbrev> <owner> [<cname>] "<string>"
        count, status, owner = int(head[1]), head[4], head[5].rstrip(".")
        hosts = []
        for rr in lines[i + 1 : i + 1 + count]:
            hosts.append(_adns_mx(rr))
        got[owner] = (status, hosts)
        i += 1 + count
    wrong, examples = 0, []
    for d, want in expected.items():
        status, hosts = got.get(d, ("missing", []))
        ok = {"ok": status == "ok" and want.route == "mx" and hosts == want.hosts,
              "nxdomain": status == "nxdomain",
              "null": False,  # adns reads "MX 0 ." as an exchanger without an address
              "no-address": status == "ok" and [h[:2] for h in hosts] == [h[:2] for h in want.hosts]
              and all(not h[2] and not h[3] for h in hosts)}.get(want.status, False)  # fmt: skip
        if want.route == "implicit":
            ok = False  # adns has no implicit MX: NODATA for MX is an answer with no exchanger
        if not ok:
            wrong += 1
            if len(examples) < 3:
                examples.append(f"{d}: got {status} {hosts}, want {want.status}/{want.route}")
    return len(got), wrong, examples


def _adns_mx(rr: str) -> tuple[str, int, list[str], list[str]]:
    # "<owner> MX 10 mx.d1.bench.test ok 0 ok "OK" ( INET 127.0.0.1 INET6 fd00::1 )"
    words = rr.replace("(", " ").replace(")", " ").split()
    pref, name = int(words[2]), words[3].rstrip(".")
    a = [words[j + 1] for j, w in enumerate(words) if w == "INET"]
    aaaa = [words[j + 1] for j, w in enumerate(words) if w == "INET6"]
    return name, pref, a, aaaa


def run_adns(domains: list[str], workdir: Path, window: int) -> tuple[float, float, float]:
    """adnshost in pipe mode, fed so that about ``window`` queries are outstanding."""
    out_path = workdir / "adns.out"
    cmd = ["adnshost", "--asynch", "--pipe", "--fmt-asynch", "--no-env", "-Vq", "--type", "mx",
           "--config", f"nameserver {ADDRESS}"]  # fmt: skip
    with out_path.open("wb") as out:
        t0 = time.monotonic()
        report = workdir / "adns.time"
        proc = subprocess.Popen(_gnu_time(cmd, report), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        sent = answered = 0
        reader = proc.stdout
        fd = reader.fileno()
        os.set_blocking(fd, False)
        buf = b""
        pending_rrs = 0
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        while answered < len(domains):
            if sent < len(domains) and sent - answered < window:
                chunk = domains[sent : min(len(domains), answered + window)]
                proc.stdin.write(("\n".join(chunk) + "\n").encode())
                proc.stdin.flush()
                sent += len(chunk)
            if sent == len(domains) and not proc.stdin.closed:
                proc.stdin.close()
            if not sel.select(timeout=30):
                raise SystemExit("adnshost stopped answering")
            data = os.read(fd, 1 << 20)
            if not data:
                break
            out.write(data)
            buf += data
            *complete, buf = buf.split(b"\n")
            for line in complete:
                if pending_rrs:
                    pending_rrs -= 1
                    continue
                parts = line.split()
                if len(parts) > 1:
                    pending_rrs = int(parts[1])
                    answered += 1
        proc.wait()
        wall = time.monotonic() - t0
    _, cpu, rss = _read_time(report)
    return wall, cpu, rss


BASELINE = r'''
"""dnspython baseline: MX, then A and AAAA of every exchanger (or of the domain without MX), a
window of domains in flight on one UDP socket, dnspython's codec for every message."""
import asyncio, json, random, sys
import dns.message, dns.rcode, dns.rdatatype, dns.flags

SERVER = (sys.argv[1], int(sys.argv[2]))
WINDOW = int(sys.argv[3])

class Proto(asyncio.DatagramProtocol):
    def __init__(self):
        self.waiting = {}
    def datagram_received(self, data, addr):
        msg = dns.message.from_wire(data)
        fut = self.waiting.pop(msg.id, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

async def ask(proto, transport, name, rdtype):
    for _ in range(3):
        ident = random.getrandbits(16)
        while ident in proto.waiting:
            ident = random.getrandbits(16)
        q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232, id=ident)
        fut = asyncio.get_running_loop().create_future()
        proto.waiting[ident] = fut
        transport.sendto(q.to_wire())
        try:
            return await asyncio.wait_for(fut, 2.0)
        except asyncio.TimeoutError:
            proto.waiting.pop(ident, None)
    return None

def records(msg, name, rdtype):
    if msg is None or msg.rcode() != dns.rcode.NOERROR:
        return None
    for rrset in msg.answer:
        if rrset.rdtype == rdtype:
            return list(rrset)
    return []

async def domain(proto, transport, d):
    mx = await ask(proto, transport, d, "MX")
    if mx is None:
        return {"input": d, "status": "timeout", "route": "none", "hosts": []}
    if mx.rcode() == dns.rcode.NXDOMAIN:
        return {"input": d, "status": "nxdomain", "route": "none", "hosts": []}
    rrs = records(mx, d, dns.rdatatype.MX)
    if rrs and len(rrs) == 1 and rrs[0].exchange.to_text() == ".":
        return {"input": d, "status": "null", "route": "null", "hosts": []}
    if rrs:
        targets = sorted(((r.preference, r.exchange.to_text().rstrip(".").lower()) for r in rrs))
        route = "mx"
    else:
        targets, route = [(0, d)], "implicit"
    hosts = []
    for pref, name in targets:
        a, aaaa = await asyncio.gather(ask(proto, transport, name, "A"), ask(proto, transport, name, "AAAA"))
        hosts.append({"name": name, "preference": pref,
                      "a": [r.address for r in records(a, name, 1) or []],
                      "aaaa": [r.address for r in records(aaaa, name, 28) or []]})
    ok = any(h["a"] or h["aaaa"] for h in hosts)
    return {"input": d, "status": "ok" if ok else "no-address", "route": route, "hosts": hosts}

async def main():
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(Proto, remote_addr=SERVER)
    names = [line.strip() for line in sys.stdin if line.strip()]
    out = sys.stdout
    queue = iter(names)
    async def worker():
        for d in queue:
            out.write(json.dumps(await domain(proto, transport, d)) + "\n")
    await asyncio.gather(*(worker() for _ in range(WINDOW)))

asyncio.run(main())
'''


def _worker_usage() -> tuple[float, float]:
    import resource

    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime, u.ru_maxrss / 1024


def run_dask(workdir: Path, expected: dict[str, Expected], concurrency: int) -> Run:
    """``mxdoctor scan --dask`` on a LocalCluster of 2 worker processes; CPU counts the workers' too."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:  # fmt: skip
        before = client.run(_worker_usage)
        out = workdir / "dask.jsonl"
        cmd = [sys.executable, "-m", "mxdoctor.cli", "scan", str(workdir / "domains.txt"), "--resolver",
               f"{ADDRESS}:{PORT}", "--qps", "0", "--concurrency", str(concurrency), "--no-progress",
               "--dask", cluster.scheduler_address, "--chunk", "5000", "--output", str(out)]  # fmt: skip
        wall, cpu, rss, _, _ = timed(cmd, stdout=workdir / "dask.stdout")
        after = client.run(_worker_usage)
    cpu += sum(after[w][0] - before[w][0] for w in after if w in before)
    rss = max([rss, *(after[w][1] for w in after)])
    seen, wrong, examples = check_mxdoctor(out, expected)
    return Run("mxdoctor scan --dask, 2 workers", seen, wall, cpu, rss, wrong, examples)


def scan_cmd(source: str, concurrency: int, *more: str) -> list[str]:
    return [sys.executable, "-m", "mxdoctor.cli", "scan", source, "--resolver", f"{ADDRESS}:{PORT}", "--qps", "0",
            "--concurrency", str(concurrency), "--no-progress", *more]  # fmt: skip


def run_rss(domains: list[str], count: int, workdir: Path, concurrency: int, workers: list[str]) -> None:
    """Stream ``count`` domains (the zone's, over and over) through ``mxdoctor scan -`` into /dev/null
    and print its rate, CPU and peak memory: what a scan holds must not grow with the list."""

    def feed(pipe: object) -> None:
        block = ("\n".join(domains) + "\n").encode()
        left = count
        try:
            while left > 0:
                if left >= len(domains):
                    pipe.write(block)  # type: ignore[attr-defined]
                    left -= len(domains)
                else:
                    pipe.write(("\n".join(domains[:left]) + "\n").encode())  # type: ignore[attr-defined]
                    left = 0
        finally:
            pipe.close()  # type: ignore[attr-defined]

    cmd = scan_cmd("-", concurrency, "--output", os.devnull, *workers)
    wall, cpu, rss, pss, err = timed(cmd, stdout=workdir / "rss.stdout", feed=feed)
    scanned = next((line.split()[1] for line in err.splitlines() if line.startswith("domains: ")), "?")
    print(f"rss: {count:,} domains streamed ({scanned} in the summary) through `mxdoctor scan - -o /dev/null"
          f"{' ' + ' '.join(workers) if workers else ''}`: {wall:.1f} s, {count / wall:,.0f} domains/s, "
          f"{cpu / count * 1e6:.1f} CPU µs/domain, peak RSS {rss:.1f} MB (largest process, GNU time), "
          f"peak PSS {pss:.1f} MB (all its processes together); load average {os.getloadavg()[0]:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=1000, help="mxdoctor scan --concurrency")
    parser.add_argument("--workers", type=int, default=None, help="mxdoctor scan --workers (default: its own)")
    parser.add_argument("--baseline-domains", type=int, default=20_000, help="domains for the dnspython baseline")
    parser.add_argument("--skip-adns", action="store_true")
    parser.add_argument("--skip-dnspython", action="store_true")
    parser.add_argument("--skip-one", action="store_true", help="no run of mxdoctor scan --workers 1")
    parser.add_argument("--skip-dask", action="store_true", help="no run on a LocalCluster of 2 worker processes")
    parser.add_argument("--rss-domains", type=int, default=0, metavar="N",
                        help="only stream N domains (the zone's, cycled) through mxdoctor scan and print its peak RSS")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/scan.py needs root (NSD and adns on port 53)", file=sys.stderr)
        return 3
    for tool in ("nsd", "/usr/bin/time", *(() if args.skip_adns or args.rss_domains else ("adnshost",))):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install nsd adns-tools time", file=sys.stderr)
            return 3
    workdir = Path(tempfile.mkdtemp(prefix="mxdoctor-bench-scan-"))
    t0 = time.monotonic()
    zone, domains, expected = build_zone(args.domains)
    (workdir / "domains.txt").write_text("\n".join(domains) + "\n")
    nsd = Nsd(workdir, zone)
    print(f"zone: {args.domains} domains, {zone.count(chr(10))} lines, NSD ready in {time.monotonic() - t0:.1f} s "
          f"on {ADDRESS}:{PORT}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} before the runs")  # noqa: E501
    kinds = collections.Counter(e.status + "/" + e.route for e in expected.values())
    print("mix: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    workers = [] if args.workers is None else ["--workers", str(args.workers)]
    runs: list[Run] = []
    try:
        if args.rss_domains:
            run_rss(domains, args.rss_domains, workdir, args.concurrency, workers)
            return 0
        source = str(workdir / "domains.txt")
        plans = [("mxdoctor scan" + (f" --workers {args.workers}" if workers else ""), workers)]
        if not args.skip_one and args.workers != 1:
            plans.append(("mxdoctor scan --workers 1", ["--workers", "1"]))
        for name, more in plans:
            out = workdir / "mxdoctor.jsonl"
            before = nsd.cpu()
            wall, cpu, rss, pss, _ = timed(scan_cmd(source, args.concurrency, "--output", str(out), *more),
                                           stdout=workdir / "mxdoctor.stdout")  # fmt: skip
            used = nsd.cpu() - before
            seen, wrong, examples = check_mxdoctor(out, expected)
            runs.append(Run(name, seen, wall, cpu, rss, wrong, examples, pss, used))
        if not args.skip_dask:
            before = nsd.cpu()
            runs.append(run_dask(workdir, expected, args.concurrency))
            runs[-1].nsd_cpu = nsd.cpu() - before
        if not args.skip_dnspython:
            sub = domains[: args.baseline_domains]
            sub_expected = {d: expected[d] for d in sub}
            (workdir / "baseline.txt").write_text("\n".join(sub) + "\n")
            script = workdir / "baseline.py"
            script.write_text(BASELINE)
            bout = workdir / "baseline.jsonl"
            before = nsd.cpu()
            wall, cpu, rss, _, _ = timed([sys.executable, str(script), ADDRESS, str(PORT), "200"],
                                         stdin=workdir / "baseline.txt", stdout=bout)  # fmt: skip
            used = nsd.cpu() - before
            seen, wrong, examples = check_mxdoctor(bout, sub_expected)
            runs.append(Run("dnspython baseline", seen, wall, cpu, rss, wrong, examples, None, used))
        if not args.skip_adns:
            before = nsd.cpu()
            wall, cpu, rss = run_adns(domains, workdir, 50)
            used = nsd.cpu() - before
            seen, wrong, examples = check_adns(workdir / "adns.out", expected)
            runs.append(Run("adns (adnshost, window 50)", seen, wall, cpu, rss, wrong, examples, None, used))
    finally:
        nsd.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")
    print(f"load average {os.getloadavg()[0]:.1f} after the runs (other work on the machine slows every wall time)")
    print()
    print(f"{'client':32} {'domains':>8} {'wall s':>7} {'domains/s':>10} {'CPU µs/domain':>14} {'NSD µs':>7} "
          f"{'2 free cores':>12} {'peak RSS MB':>12} {'all procs':>10} {'wrong':>6}")
    for r in runs:
        together = f"{r.pss_mb:10.1f}" if r.pss_mb is not None else f"{'':10}"
        print(f"{r.name:32} {r.domains:8d} {r.wall:7.2f} {r.rate:10,.0f} {r.cpu_us:14.1f} {r.nsd_us:7.1f} "
              f"{r.free_rate:12,.0f} {r.rss_mb:12.1f} {together} {r.wrong:6d}")
    print("(CPU µs/domain: the client's processes together; NSD µs: the server's per domain in the same run; "
          "2 free cores: the domains/s both would reach with two cores to themselves, 2e6 / the sum; "
          "all procs: peak PSS of the client's processes together)")
    base = runs[0]
    for r in runs[1:]:
        print(f"{base.name} / {r.name}: {base.rate / r.rate:.2f}x the rate, {base.cpu_us / r.cpu_us:.2f}x the CPU "
              "per domain")
    for r in runs:
        for e in r.examples:
            print(f"  {r.name} wrong: {e}")
    return 0 if all(r.wrong == 0 for r in runs if r.name.startswith("mxdoctor")) else 1


if __name__ == "__main__":
    sys.exit(main())
