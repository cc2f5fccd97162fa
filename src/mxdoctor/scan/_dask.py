"""Scan on a Dask cluster: the input cut in chunks, each chunk scanned by the same engine in a worker
with its share of the qps budget, the records written back in input order as the chunks come.

A worker that dies takes its chunks with it; the scheduler runs them again elsewhere, and since
records are written only from finished chunks, none is lost or written twice.
"""

from __future__ import annotations

import collections
import io
import itertools
from collections.abc import Iterator
from dataclasses import replace
from typing import IO, Any

from mxdoctor.errors import ConfigError
from mxdoctor.scan import record, run
from mxdoctor.scan.engine import Limits

ChunkResult = tuple[bytes, dict[Any, int], int, str, dict[str, int]]


def scan_chunk(lines: list[tuple[int, str]], options: run.ScanOptions, limits: Limits) -> ChunkResult:
    """Run in a worker: the records of one chunk (bytes in order), its summary counts, its bad lines
    and their messages, and the storm backoffs."""
    out = io.BytesIO()
    summary = record.Summary()
    err = io.StringIO()
    writer = run._Writer(out, options.format, summary)
    bad, backoffs = run.scan_lines(lines, writer, options.servers(), limits, err)
    return out.getvalue(), dict(summary.by_key), bad, err.getvalue(), backoffs


def _chunks(lines: Iterator[tuple[int, str]], size: int) -> Iterator[list[tuple[int, str]]]:
    while chunk := list(itertools.islice(lines, size)):
        yield chunk


def scan_on_cluster(
    lines: Iterator[tuple[int, str]],
    out: IO[bytes],
    options: run.ScanOptions,
    limits: Limits,
    summary: record.Summary,
    err: IO[str],
) -> None:
    """Scan ``lines`` on the cluster at ``options.dask``; raises ConfigError when it cannot be reached."""
    try:
        import distributed
    except ImportError:
        raise ConfigError("--dask needs dask.distributed: pip install 'mxdoctor[dask]'") from None
    try:
        client = distributed.Client(options.dask, timeout=10, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"--dask {options.dask}: cannot reach the scheduler ({exc})") from None
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        share = replace(limits, qps=limits.qps / workers if limits.qps else 0.0)
        pending: collections.deque[Any] = collections.deque()  # distributed.Future
        chunks = _chunks(lines, options.chunk)
        bad = 0
        backoffs: collections.Counter[str] = collections.Counter()
        shown = 0

        def submit() -> bool:
            chunk = next(chunks, None)
            if chunk is None:
                return False
            pending.append(client.submit(scan_chunk, chunk, options, share, pure=False, retries=3))
            return True

        while len(pending) < 2 * workers and submit():
            pass
        while pending:
            data, counts, n_bad, messages, offs = pending.popleft().result()
            submit()
            out.write(data)
            summary.by_key.update(counts)
            for line in messages.splitlines():
                if shown < run.SHOWN_BAD_LINES:
                    err.write(line + "\n")
                    shown += 1
            bad += n_bad
            backoffs.update(offs)
        run.report_tail(err, bad, dict(backoffs))
    finally:
        client.close()  # type: ignore[no-untyped-call]
