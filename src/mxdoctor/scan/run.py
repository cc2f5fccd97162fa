"""A scan run: read domains line by line, resolve them with the engine, write one record per input
line in input order (JSON Lines or CSV), resume after an interruption, report progress and a summary.

Memory stays flat whatever the list's length: input and output are streamed and only the window
of domains in flight and a bounded reorder buffer are held.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import msgspec

from mxdoctor import evidence, route
from mxdoctor.dns import system
from mxdoctor.errors import ConfigError, InvalidTarget
from mxdoctor.mta.models import MODELS
from mxdoctor.scan import record
from mxdoctor.scan.engine import Engine, Limits

DEFAULT_QPS = 100.0  # queries/s through a named resolver: far below what public resolvers throttle
SYSTEM_MAX_QPS = 20.0  # the most mxdoctor sends to the system's resolver unasked
DEFAULT_CONCURRENCY = 64
MAX_LINE = 4096  # longer input lines are reported as bad, not read into memory whole
REORDER_MAX = 20_000
# A plain host name that route.normalise_target returns lower-cased as it is: LDH labels of 1-63,
# at least two, the last not all digits (so no IPv4 address), at most 253 characters.
_PLAIN_DOMAIN = re.compile(
    r"(?:(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\.)+(?!-)[A-Za-z0-9_-]{0,62}[A-Za-z_-](?<!-)"
)  # finished records waiting for an earlier, slower one
SHOWN_BAD_LINES = 10
MAX_WORKERS = 8  # past this the resolvers, not the scanning processes, are what limits a scan
QPS_PER_WORKER = 5000.0  # a budget below this is one process's work
FORMATS = ("jsonl", "csv")


@dataclass(frozen=True)
class ScanOptions:
    """Options of ``mxdoctor scan``; ``qps`` None picks the polite default for the resolvers used."""

    resolvers: tuple[str, ...] = ()
    output: str | None = None  # None or "-": standard output
    format: str = "jsonl"
    concurrency: int = DEFAULT_CONCURRENCY  # queries in flight at each resolver
    qps: float | None = None  # queries per second in all; 0 with --resolver: no limit
    timeout: float = 2.0
    retries: int = 1
    resume: bool = False
    dns_port: int = 53
    progress: bool | None = None  # None: when standard error is a terminal
    resolv_conf: str = system.RESOLV_CONF
    dask: str | None = None  # scheduler address: scan in chunks on that Dask cluster
    chunk: int = 2000  # input lines per task (a Dask task, or a worker process's share)
    workers: int | None = None  # processes scanning on this machine; None: one per usable CPU (capped)

    def limits(self) -> Limits:
        """Raises ConfigError for values no scan runs with, and for a fast scan of the system resolver."""
        if self.format not in FORMATS:
            raise ConfigError(f"--format {self.format}: must be one of {', '.join(FORMATS)}")
        if not 1 <= self.concurrency <= 10_000:
            raise ConfigError("--concurrency must be from 1 to 10000 (queries in flight at one resolver)")
        if self.timeout <= 0 or self.timeout > 60:
            raise ConfigError("--timeout must be above 0 and at most 60 seconds")
        if not 0 <= self.retries <= 5:
            raise ConfigError("--retries must be from 0 to 5")
        if self.qps is not None and self.qps < 0:
            raise ConfigError("--qps must not be negative")
        qps = self.qps
        if not self.resolvers:
            if qps is None:
                qps = SYSTEM_MAX_QPS
            if qps == 0 or qps > SYSTEM_MAX_QPS:
                raise ConfigError(
                    f"--qps {qps:g} through the system resolver: a scan sends at most {SYSTEM_MAX_QPS:g} "
                    "queries/s to a resolver it was not given; name one you run with --resolver ADDR[:PORT]"
                )
        elif qps is None:
            qps = DEFAULT_QPS
        if self.chunk < 1:
            raise ConfigError("--chunk must be at least 1")
        if self.workers is not None and not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers must be from 1 to {MAX_WORKERS}")
        if self.workers is not None and self.workers > 1 and self.dask:
            raise ConfigError("--workers and --dask: the Dask cluster's workers scan, give one of the two")
        if self.resume and (self.output is None or self.output == "-"):
            raise ConfigError("--resume needs --output FILE (it continues that file)")
        return Limits(qps=qps, inflight=self.concurrency, timeout=self.timeout, retries=self.retries)

    def worker_count(self, limits: Limits) -> int:
        """The processes to scan with: as given, else one per usable CPU, at most MAX_WORKERS, and
        no more than the qps budget needs (QPS_PER_WORKER each: a polite scan is one process)."""
        if self.workers is not None:
            return self.workers
        from mxdoctor.scan import shard

        n = min(shard.usable_cpus(), MAX_WORKERS)
        if limits.qps:
            n = min(n, max(1, math.ceil(limits.qps / QPS_PER_WORKER)))
        return max(1, n)

    def servers(self) -> tuple[evidence.Server, ...]:
        if self.resolvers:
            return tuple(system.parse_server(r, self.dns_port) for r in self.resolvers)
        return system.resolv_conf_servers(self.resolv_conf, self.dns_port)


def normalise(text: str) -> str:
    """``route.normalise_target``, with the common case (a plain lower-case-able name) done cheaply."""
    if len(text) <= 253 and _PLAIN_DOMAIN.fullmatch(text):
        return text.lower()
    return route.normalise_target(text)


def read_lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line that is not blank or a ``#`` comment; a line longer than
    MAX_LINE comes back cut, with a marker the target check rejects."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE)
        if not raw:
            return
        number += 1
        if not raw.endswith("\n") and len(raw) >= MAX_LINE:
            while True:  # skip the rest of the over-long line
                rest = stream.readline(MAX_LINE)
                if not rest or rest.endswith("\n"):
                    break
            yield number, raw[:64] + "\x00(line too long)"
            continue
        text = raw.strip()
        if text and not text.startswith("#"):
            yield number, text


def number_lines(texts: Iterable[str]) -> Iterator[tuple[int, str]]:
    """``read_lines`` over strings, each one line (its end of line, if any, dropped)."""
    for number, raw in enumerate(texts, 1):
        if len(raw) > MAX_LINE:
            yield number, raw[:64] + "\x00(line too long)"
            continue
        text = raw.strip()
        if text and not text.startswith("#"):
            yield number, text


def records(domains: Iterable[str], options: ScanOptions) -> Iterator[dict[str, Any]]:
    """The record of every domain (or address) of ``domains``, in order, as ``mxdoctor scan`` writes
    them (``line`` counts the strings given); on ``options.worker_count`` processes, a chunk at a
    time. Raises ConfigError for bad options before any traffic; the output options are ignored."""
    options = replace(options, format="jsonl", output=None, resume=False, progress=False)
    limits = options.limits()
    options.servers()
    return _records(number_lines(domains), options, limits)


def _records(lines: Iterator[tuple[int, str]], options: ScanOptions, limits: Limits) -> Iterator[dict[str, Any]]:
    from mxdoctor.scan import shard

    decode = msgspec.json.Decoder().decode
    pieces = shard.chunks(lines, options.chunk)
    workers = options.worker_count(limits)
    if workers == 1:
        for chunk in pieces:
            for line in shard.scan_chunk(chunk, options, limits)[0].splitlines():
                yield decode(line)
        return
    with shard.Pool(options, limits, workers) as pool:
        for result in shard.results(pieces, pool.submit, 2 * workers):
            for line in result[0].splitlines():
                yield decode(line)


@dataclass
class _Existing:
    last_line: int = 0
    last_input: str | None = None
    keep: int = 0  # bytes of complete records


def _read_existing(path: Path, fmt: str, summary: record.Summary) -> _Existing:
    """What an interrupted run left: its last complete record; a cut-off last line is dropped."""
    found = _Existing()
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return found
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    offset = 0
    with f:
        for number, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                break  # cut off by the interruption: scanned again
            text = raw.decode("utf-8", "replace")
            rec = _parse_record(text, fmt)
            offset += len(raw)
            if rec is None:
                if number == 1 and fmt == "csv" and text.startswith("line,"):
                    found.keep = offset
                    continue
                raise ConfigError(f"{path}: line {number} is not a {fmt} scan record; cannot resume it")
            summary.add(rec["status"], rec["findings"], rec["verdicts"])
            found.last_line, found.last_input, found.keep = rec["line"], rec["input"], offset
    return found


def _parse_record(text: str, fmt: str) -> dict[str, Any] | None:
    if fmt == "jsonl":
        try:
            rec = json.loads(text)
        except ValueError:
            return None
        if not isinstance(rec, dict) or not isinstance(rec.get("line"), int) or "status" not in rec:
            return None
        return {"line": rec["line"], "input": rec.get("input"), "status": rec["status"],
                "findings": rec.get("findings") or [], "verdicts": rec.get("verdicts") or {}}  # fmt: skip
    import csv

    row = next(csv.reader([text]), [])
    if len(row) != len(record.CSV_FIELDS) or not row[0].isdigit():
        return None
    values = dict(zip(record.CSV_FIELDS, row, strict=True))
    verdicts = {m: values[m] for m in MODELS if values[m]}
    return {"line": int(row[0]), "input": values["input"], "status": values["status"],
            "findings": values["findings"].split(), "verdicts": verdicts}  # fmt: skip


class _Writer:
    """Writes records in input order; finished ones wait in a bounded buffer for earlier ones."""

    def __init__(self, out: IO[bytes], fmt: str, summary: record.Summary) -> None:
        self.out = out
        self.fmt = fmt
        self.summary = summary
        self.waiting: dict[int, bytes] = {}
        self.next = 0
        self.written = 0
        self._encode = msgspec.json.Encoder().encode

    def put(self, seq: int, rec: dict[str, Any], judged: record.Judgement | None = None) -> None:
        if judged is not None:
            self.summary.add_judged(judged)
        else:
            self.summary.add(rec["status"], rec["findings"], rec["verdicts"])
        if self.fmt == "jsonl":
            data = self._encode(rec) + b"\n"
        else:
            data = record.csv_line(record.csv_row(rec)).encode("utf-8")
        if seq != self.next:
            self.waiting[seq] = data
            return
        out = self.out
        out.write(data)
        self.next += 1
        self.written += 1
        waiting = self.waiting
        while self.next in waiting:
            out.write(waiting.pop(self.next))
            self.next += 1
            self.written += 1

    def room(self) -> bool:
        return len(self.waiting) < REORDER_MAX


class _Progress:
    """Rate, done and ETA on a terminal's standard error, rewritten in place twice a second."""

    def __init__(self, stream: IO[str], total_bytes: int | None, position: Callable[[], int]) -> None:
        self.stream = stream
        self.total = total_bytes
        self.position = position
        self.t0 = time.monotonic()

    def show(self, done: int) -> None:
        elapsed = max(1e-6, time.monotonic() - self.t0)
        rate = done / elapsed
        eta = ""
        if self.total:
            share = self.position() / self.total
            if share > 0:
                eta = f", ETA {max(0.0, elapsed / share - elapsed):.0f} s"
        self.stream.write(f"\r{done} done, {rate:,.0f} domains/s{eta}   ")
        self.stream.flush()


def scan(source: str, options: ScanOptions, *, stderr: IO[str] | None = None) -> record.Summary:
    """Scan the domains of ``source`` (a file, or "-" for standard input); return the run's summary
    (with the earlier part of a resumed file counted). Raises ConfigError for bad options or files."""
    err = stderr if stderr is not None else sys.stderr
    limits = options.limits()
    servers = options.servers()
    summary = record.Summary()
    existing = _Existing()
    out_path = Path(options.output) if options.output not in (None, "-") else None
    if options.resume and out_path is not None:
        existing = _read_existing(out_path, options.format, summary)
    try:
        stream: IO[str] = (
            io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
            if source == "-"
            else open(source, encoding="utf-8", errors="replace")  # noqa: SIM115  # closed below
        )
    except OSError as exc:
        raise ConfigError(f"{source}: {exc.strerror or exc}") from None
    total = None
    if source != "-":
        try:
            total = os.fstat(stream.fileno()).st_size or None
        except OSError:
            total = None
    try:
        out = _open_output(out_path, options, existing)
    except BaseException:
        stream.close()
        raise
    try:
        _run(stream, out, options, limits, servers, summary, existing, err, total)
    finally:
        if source != "-":
            stream.close()
        if out_path is not None:
            out.close()
        else:
            out.flush()
    return summary


def _open_output(path: Path | None, options: ScanOptions, existing: _Existing) -> IO[bytes]:
    if path is None:
        out = sys.stdout.buffer
    else:
        try:
            if options.resume and path.exists():
                out = path.open("r+b")
                out.truncate(existing.keep)
                out.seek(existing.keep)
            else:
                out = path.open("wb")
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    if options.format == "csv" and existing.keep == 0:
        out.write(record.csv_line(record.CSV_FIELDS).encode("utf-8"))
    return out


def _run(
    stream: IO[str],
    out: IO[bytes],
    options: ScanOptions,
    limits: Limits,
    servers: tuple[evidence.Server, ...],
    summary: record.Summary,
    existing: _Existing,
    err: IO[str],
    total: int | None,
) -> None:
    lines = read_lines(stream)
    if existing.last_line:
        for number, text in lines:
            if number == existing.last_line:
                if text != existing.last_input:
                    raise ConfigError(
                        f"--resume: {options.output} does not continue this input "
                        f"(its last record is line {number} {existing.last_input!r}, the input has {text!r})"
                    )
                break
        else:
            raise ConfigError(f"--resume: the input ends before line {existing.last_line} of {options.output}")
    if options.dask:
        from mxdoctor.scan import _dask

        _dask.scan_on_cluster(lines, out, options, limits, summary, err)
        return
    show = options.progress if options.progress is not None else err.isatty()
    progress = _Progress(err, total, lambda: _position(stream)) if show else None
    workers = options.worker_count(limits)
    if workers > 1:
        from mxdoctor.scan import shard

        pieces = shard.chunks(lines, options.chunk)
        first = next(pieces, [])
        second = next(pieces, None)
        if second is not None:  # more than one chunk: worth the processes
            try:
                shard.scan_on_workers(first, itertools.chain([second], pieces), out, options, limits, workers,
                                      summary, err, progress)  # fmt: skip
            finally:
                if progress is not None:
                    err.write("\n")
            return
        lines = iter(first)
    writer = _Writer(out, options.format, summary)
    try:
        bad, backoffs = scan_lines(lines, writer, servers, limits, err, progress)
    finally:
        if progress is not None:
            progress.show(writer.written)
            err.write("\n")
    report_tail(err, bad, backoffs)


def report_tail(err: IO[str], bad: int, backoffs: dict[str, int]) -> None:
    if bad > SHOWN_BAD_LINES:
        err.write(f"mxdoctor scan: {bad - SHOWN_BAD_LINES} more bad lines (records with status invalid)\n")
    for server, n in backoffs.items():
        err.write(f"mxdoctor scan: slowed down {n} times for REFUSED/SERVFAIL storms at {server}\n")


def scan_lines(
    lines: Iterable[tuple[int, str]],
    writer: _Writer,
    servers: tuple[evidence.Server, ...],
    limits: Limits,
    err: IO[str],
    progress: _Progress | None = None,
    shown_bad: int = 0,
    judge: record.Judge | None = None,
) -> tuple[int, dict[str, int]]:
    """Scan (line number, text) pairs into ``writer`` in order; returns the number of bad lines and
    the storm backoffs per server. The one loop of a run, in one process or in a worker."""
    if judge is None:
        judge = record.Judge(servers)
    bad = 0

    def feed() -> Iterator[tuple[object, str]]:
        nonlocal bad
        seq = 0
        for number, text in lines:
            try:
                domain = normalise(text)
            except InvalidTarget as exc:
                bad += 1
                if shown_bad + bad <= SHOWN_BAD_LINES:
                    err.write(f"mxdoctor scan: line {number}: {exc}\n")
                writer.put(seq, record.invalid(number, text.split("\x00")[0], str(exc)))
                seq += 1
                continue
            yield (seq, number, text), domain
            seq += 1

    def done(tag: Any, r: route.Route) -> None:
        seq, number, text = tag
        j = judge.judge(r)
        writer.put(seq, record.build_judged(number, text, r, j), j)

    engine = Engine(servers, limits)
    try:
        asyncio.run(_drive(engine, feed(), done, writer, progress))
    finally:
        engine.close()
    return bad, {str(s.server): s.backoffs for s in engine.servers if s.backoffs}


def _position(stream: IO[str]) -> int:
    try:
        return stream.buffer.tell()  # type: ignore[attr-defined, no-any-return]
    except (OSError, AttributeError, ValueError):
        return 0


async def _drive(
    engine: Engine,
    feed: Iterator[tuple[object, str]],
    done: Callable[[object, route.Route], None],
    writer: _Writer,
    progress: _Progress | None,
) -> None:
    ticker: asyncio.Task[None] | None = None
    if progress is not None:

        async def tick() -> None:
            while True:
                await asyncio.sleep(0.5)
                progress.show(writer.written)

        ticker = asyncio.ensure_future(tick())
    try:
        await engine.run(feed, done, writer.room)
    finally:
        if ticker is not None:
            ticker.cancel()
