"""Benchmark: shape a synthetic ``postqueue -j`` listing of 1,000,000 messages over 10,000 domains.

Prints mxdoctor's wall time and peak memory (max RSS of a child process doing only the shaping),
next to a plain ``jq`` pass over the same file. qshape cannot take part: it reads Postfix's queue
files through ``postcat``/the queue directory, not a listing, so it has nothing to read here.
Usage: python bench/queue.py [--messages N] [--domains N] [--keep FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

REASONS = (
    "Host or domain name not found. Name service error for name=mx.{d} type=AAAA: Host not found, try again",
    "connect to mx.{d}[192.0.2.7]:25: Connection timed out",
    "host mx.{d}[192.0.2.8] refused to talk to me: 421 4.3.2 Service not available",
    "Cannot start TLS: handshake failure",
    None,
)

CHILD = """
import json, resource, sys, time
from mxdoctor.queues import formats, parallel, shape
t = time.perf_counter()
jobs = int(sys.argv[3])
s = parallel.build_file(sys.argv[1], "postfix-json", now=float(sys.argv[2]), jobs=jobs) if jobs > 1 else None
if s is None:
    s = shape.build(formats.read(formats.Source(path=sys.argv[1])), now=float(sys.argv[2]))
dominant = [d.dominant for d in s.top(20)]  # what `mxdoctor queue` then prints
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "messages": s.total.messages, "domains": len(s.domains),
                  "malformed": s.malformed,
                  "cpu_s": sum(getattr(resource.getrusage(w), f)
                               for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                               for f in ("ru_utime", "ru_stime")),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def generate(path: str, messages: int, domains: int, now: int) -> None:
    rng = random.Random(42)
    names = [f"d{i:05d}.example" for i in range(domains)]
    with open(path, "w") as out:
        for i in range(messages):
            d = names[rng.randrange(domains)]
            rcpts = []
            for k in range(1 + (i % 7 == 0)):
                reason = REASONS[(i + k) % len(REASONS)]
                rcpt = {"address": f"user{i}.{k}@{d}", "delay_reason": reason.format(d=d) if reason else ""}
                rcpts.append(rcpt)
            obj = {
                "queue_name": "deferred" if i % 10 else "active",
                "queue_id": f"{i:012X}",
                "arrival_time": now - rng.randrange(0, 5 * 86400),
                "message_size": 500 + rng.randrange(100000),
                "forced_expire": False,
                "sender": f"sender{i % 1000}@origin.example",
                "recipients": rcpts,
            }
            out.write(json.dumps(obj))
            out.write("\n")


def timed(argv: list[str], capture: bool = False) -> tuple[float, float, str]:
    """Wall seconds, max RSS (MB) and output of one command; wait4 gives that child's own rusage."""
    t = time.perf_counter()
    out = tempfile.TemporaryFile(mode="w+") if capture else subprocess.DEVNULL
    proc = subprocess.Popen(argv, stdout=out)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with status {proc.returncode}")
    text = ""
    if capture:
        assert not isinstance(out, int)
        out.seek(0)
        text = out.read()
        out.close()
    return elapsed, usage.ru_maxrss / 1024, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--keep", help="write the listing here and keep it")
    parser.add_argument("--listing", help="shape this existing postqueue -j listing instead of generating one")
    args = parser.parse_args()
    now = int(time.time())
    workdir = tempfile.mkdtemp(prefix="mxdoctor-bench-")
    path = args.keep or os.path.join(workdir, "postqueue-j.jsonl")
    try:
        if args.listing:
            path = args.listing
            print(f"listing: {path}, {os.path.getsize(path) / 1e6:.0f} MB")
        else:
            t = time.perf_counter()
            generate(path, args.messages, args.domains, now)
            size_mb = os.path.getsize(path) / 1e6
            print(f"listing: {args.messages:,} messages over {args.domains:,} domains, {size_mb:.0f} MB "
                  f"(generated in {time.perf_counter() - t:.1f} s)")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")

        ok = False
        for jobs in (1, min(os.cpu_count() or 1, 4)):
            wall, _, out = timed([sys.executable, "-c", CHILD, path, str(now), str(jobs)], capture=True)
            result = json.loads(out)
            # With workers, the peak is the parent's or one worker's, whichever is larger (they run
            # at the same time, so the sum bounds the total).
            peak = max(result["maxrss_mb"], result["children_maxrss_mb"])
            total = result["maxrss_mb"] + jobs * result["children_maxrss_mb"] if jobs > 1 else peak
            print(f"mxdoctor, {jobs} process(es): {result['seconds']:6.2f} s shaping ({wall:.2f} s with start-up, "
                  f"{result['cpu_s']:.2f} s CPU in all), "
                  f"peak RSS {peak:.0f} MB per process, {total:.0f} MB at most in all; "
                  f"{result['messages']:,} messages, {result['domains']:,} domains, {result['malformed']} malformed")
            ok = ok or (result["seconds"] < 10 and total < 200)
            if os.cpu_count() == 1:
                break

        jq = shutil.which("jq")
        if jq:
            wall, rss, _ = timed([jq, "-c", ".queue_id", path])
            print(f"jq .queue_id   : {wall:6.2f} s, peak RSS {rss:.0f} MB (one pass, no grouping)")
            # Grouping inside jq (reduce into an object) took minutes here, so jq only extracts the
            # domains, which is the part of the work a shell pipeline would give to jq.
            wall, rss, _ = timed([jq, "-r", '.recipients[].address | split("@")[1]', path])
            print(f"jq domains     : {wall:6.2f} s, peak RSS {rss:.0f} MB (extracts domains, no grouping)")
        else:
            print("jq: not installed")
        print("qshape         : not comparable (reads Postfix queue files, not a postqueue -j listing)")
        print(f"target (<10 s, <200 MB): {'met' if ok else 'NOT met'}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
