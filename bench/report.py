"""Benchmark: render recorded diagnoses through the report registry, every (kind, format) pair, and
time the import of the package for a process that needs only one part of it (a queue worker).

Prints milliseconds per rendering (median of N runs) and the import times. No network.
Usage: python bench/report.py [--runs N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mxdoctor import api, report

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {
    report.Kind.DIAGNOSIS: ROOT / "tests" / "data" / "evidence" / "aaaa-servfail.json",
    report.Kind.AUDIT: ROOT / "tests" / "audit" / "data" / "aaaa-servfail.json",
}


def median_ms(fn: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def import_time(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return float(out) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    for kind, path in SAMPLES.items():
        d = api.explain(path)
        size = path.stat().st_size
        print(f"{kind} ({path.name}, {len(d.evidence.exchanges)} exchanges, {size // 1024} KiB evidence)")
        for fmt in report.formats(kind):
            options = report.Options(color=False, width=100)
            ms = median_ms(lambda: report.render(kind, fmt, d, io.StringIO(), options), args.runs)  # noqa: B023
            print(f"  {fmt:<10} {ms:8.2f} ms")
    for module in ("mxdoctor.queues.parallel", "mxdoctor.api", "mxdoctor.cli"):
        print(f"import {module:<26} {import_time(module):8.1f} ms")


if __name__ == "__main__":
    main()
