"""A scan cut in chunks: each chunk scanned by the same engine elsewhere (worker processes of this
machine, or Dask workers), its records written back in input order as the chunks come back.

Records are written only from finished chunks, so a chunk run again (a dead Dask worker) loses or
doubles none, and an interrupted run leaves a prefix of whole records for ``--resume``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import concurrent.futures.process
import io
import itertools
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import IO, Any

from mxdoctor import evidence
from mxdoctor.errors import MxdoctorError
from mxdoctor.scan import record, run
from mxdoctor.scan.engine import Limits

ChunkResult = tuple[bytes, dict[Any, int], int, str, dict[str, int]]
Chunk = list[tuple[int, str]]
# submit(chunk) -> a future whose result() is the chunk's ChunkResult
Submit = Callable[[Chunk], Any]

# a route shape's analysis is kept for the whole life of a worker process, not one chunk
_JUDGES: dict[tuple[evidence.Server, ...], record.Judge] = {}


def scan_chunk(lines: Chunk, options: run.ScanOptions, limits: Limits) -> ChunkResult:
    """Run in a worker: the records of one chunk (bytes in order), its summary counts, its bad lines
    and their messages, and the storm backoffs."""
    out = io.BytesIO()
    summary = record.Summary()
    err = io.StringIO()
    writer = run._Writer(out, options.format, summary)
    servers = options.servers()
    judge = _JUDGES.get(servers)
    if judge is None:
        judge = _JUDGES[servers] = record.Judge(servers)
    bad, backoffs = run.scan_lines(lines, writer, servers, limits, err, judge=judge)
    return out.getvalue(), dict(summary.by_key), bad, err.getvalue(), backoffs


def chunks(lines: Iterator[tuple[int, str]], size: int) -> Iterator[Chunk]:
    while chunk := list(itertools.islice(lines, size)):
        yield chunk


def share(limits: Limits, workers: int, *, inflight: bool) -> Limits:
    """One worker's part of the budget: the qps divided (0 stays no limit), and with ``inflight``
    the queries in flight at each resolver too, so that all of them together keep the promise."""
    qps = limits.qps / workers if limits.qps else 0.0
    cap = max(1, limits.inflight // workers) if inflight else limits.inflight
    return replace(limits, qps=qps, inflight=cap)


def results(pieces: Iterator[Chunk], submit: Submit, ahead: int) -> Iterator[ChunkResult]:
    """Keep ``ahead`` chunks submitted; yield each one's result in input order as it finishes."""
    pending: collections.deque[Any] = collections.deque()

    def more() -> bool:
        chunk = next(pieces, None)
        if chunk is None:
            return False
        pending.append(submit(chunk))
        return True

    while len(pending) < ahead and more():
        pass
    try:
        while pending:
            try:
                result: ChunkResult = pending.popleft().result()
            except concurrent.futures.process.BrokenProcessPool:
                raise MxdoctorError(
                    "a worker process died (killed, or out of memory); the records written so far are whole: "
                    "--resume continues the run"
                ) from None
            more()
            yield result
    finally:
        for f in pending:
            f.cancel()


def merge(
    pieces: Iterator[Chunk],
    submit: Submit,
    ahead: int,
    out: IO[bytes],
    summary: record.Summary,
    err: IO[str],
    progress: run._Progress | None = None,
) -> None:
    """Write the chunks' records to ``out`` in input order; count them in ``summary``, pass the first
    bad lines' messages on to ``err``."""
    bad = shown = done = 0
    backoffs: collections.Counter[str] = collections.Counter()
    for data, counts, n_bad, messages, offs in results(pieces, submit, ahead):
        out.write(data)
        summary.by_key.update(counts)
        done += sum(counts.values())
        for line in messages.splitlines():
            if shown < run.SHOWN_BAD_LINES:
                err.write(line + "\n")
                shown += 1
        bad += n_bad
        backoffs.update(offs)
        if progress is not None:
            progress.show(done)
    run.report_tail(err, bad, dict(backoffs))


class Pool:
    """``workers`` processes of this machine scanning chunks with their share of ``limits``."""

    def __init__(self, options: run.ScanOptions, limits: Limits, workers: int) -> None:
        self.options = options
        self.part = share(limits, workers, inflight=True)
        self.workers = workers
        # fork: the workers start at once with the modules this process has imported (a scan runs no
        # threads before this point); the pool is shut down on leaving the with block
        ctx = multiprocessing.get_context("fork")
        for stream in (sys.stdout, sys.stderr):  # nothing buffered here to be copied into a worker
            if stream is not None:
                stream.flush()
        self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_quiet_worker)

    def submit(self, chunk: Chunk) -> concurrent.futures.Future[ChunkResult]:
        return self.pool.submit(scan_chunk, chunk, self.options, self.part)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _quiet_worker() -> None:
    # Ctrl-C goes to the whole process group: the parent stops the pool, a worker need not say so
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def scan_on_workers(
    first: Chunk,
    rest: Iterator[Chunk],
    out: IO[bytes],
    options: run.ScanOptions,
    limits: Limits,
    workers: int,
    summary: record.Summary,
    err: IO[str],
    progress: run._Progress | None = None,
) -> None:
    """Scan the chunks on ``workers`` processes of this machine, ``limits`` shared among them."""
    out.flush()  # a forked worker must not hold (and one day write) a copy of what is buffered here
    with Pool(options, limits, workers) as pool:
        merge(itertools.chain([first], rest), pool.submit, 2 * workers, out, summary, err, progress)
