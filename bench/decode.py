"""Benchmark: msgspec's JSON decoder against the standard library's, on the two JSON paths of mxdoctor.

1. A synthetic ``postqueue -j`` listing (one JSON object a line, built by bench/queue.py): decode every
   line with ``json.loads``, with ``msgspec.json.decode``, and with one reused ``msgspec.json.Decoder``.
2. The largest evidence file in tests/data/evidence: ``json.loads`` + the old generic codec
   (``_codec.load``) against the typed loader ``evidence.loads`` (msgspec decode + convert, with
   key-path errors, unknown-key and depth checks).
Usage: python bench/decode.py [--messages N] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from mxdoctor import _codec, evidence

BENCH = Path(__file__).resolve().parent
EVIDENCE = BENCH.parent / "tests" / "data" / "evidence"


def _queue_bench() -> object:
    # bench/queue.py shares its name with the standard library's queue module: load it by path.
    spec = importlib.util.spec_from_file_location("bench_queue", BENCH / "queue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best_of(repeat: int, run: Callable[[], object]) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by other work on the machine).

    The collector is off while timing: its passes over a million fresh objects would be charged to
    whichever decoder happened to trigger them."""
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        finally:
            gc.enable()
    return min(times)


def listing(messages: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mxdoctor-bench-") as workdir:
        path = os.path.join(workdir, "postqueue-j.jsonl")
        _queue_bench().generate(path, messages, 10_000, int(time.time()))  # type: ignore[attr-defined]
        with open(path, "rb") as fh:
            lines = fh.read().splitlines()
    size = sum(len(line) + 1 for line in lines) / 1e6
    print(f"postqueue -j listing: {len(lines):,} lines, {size:.0f} MB, decoded line by line (best of {repeat})")
    decoder = msgspec.json.Decoder()
    runs = {
        "json.loads": lambda: [json.loads(line) for line in lines],
        "msgspec.json.decode": lambda: [msgspec.json.decode(line) for line in lines],
        "msgspec.json.Decoder()": lambda: [decoder.decode(line) for line in lines],
    }
    _report(runs, repeat, per=len(lines), unit="line")


def evidence_file(repeat: int) -> None:
    path = max(EVIDENCE.glob("*.json"), key=lambda p: p.stat().st_size)
    text = path.read_bytes()
    n = 200
    print(f"evidence: {path.name}, {len(text) / 1e3:.0f} kB, loaded {n} times (best of {repeat})")
    runs = {
        "json.loads": lambda: [json.loads(text) for _ in range(n)],
        "msgspec.json.decode": lambda: [msgspec.json.decode(text) for _ in range(n)],
        "json.loads + _codec.load (old)": lambda: [_codec.load(evidence.Evidence, json.loads(text)) for _ in range(n)],
        "evidence.loads (typed loader)": lambda: [evidence.loads(text) for _ in range(n)],
    }
    assert evidence.loads(text) == _codec.load(evidence.Evidence, json.loads(text))
    _report(runs, repeat, per=n, unit="file")


def _report(runs: dict[str, Callable[[], object]], repeat: int, *, per: int, unit: str) -> None:
    base = None
    for name, run in runs.items():
        seconds = best_of(repeat, run)
        base = base or seconds
        print(f"  {name:32s} {seconds:7.3f} s  {seconds / per * 1e6:8.1f} µs/{unit}  {base / seconds:5.2f}x json.loads")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    evidence_file(args.repeat)
    listing(args.messages, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
