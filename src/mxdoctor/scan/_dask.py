"""Scan on a Dask cluster: the input cut in chunks, each chunk scanned by the same engine in a worker
with its share of the qps budget, the records written back in input order as the chunks come.

A worker that dies takes its chunks with it; the scheduler runs them again elsewhere, and since
records are written only from finished chunks (``shard.merge``), none is lost or written twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from mxdoctor.errors import ConfigError
from mxdoctor.scan import record, run, shard
from mxdoctor.scan.engine import Limits


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
        part = shard.share(limits, workers, inflight=False)

        def submit(chunk: shard.Chunk) -> object:
            return client.submit(shard.scan_chunk, chunk, options, part, pure=False, retries=3)

        shard.merge(shard.chunks(lines, options.chunk), submit, 2 * workers, out, summary, err)
    finally:
        client.close()  # type: ignore[no-untyped-call]
