"""The registry of queue listing formats and the source they are read from (file, stdin or MTA command).

A format is one reader module (``NAME``, ``MTA``, ``COMMAND``, ``sniff``, ``read``); adding one is a
new module plus one line in ``_MODULES``. Detection sniffs the first lines; ``--format`` forces it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import IO

from mxdoctor import progress
from mxdoctor.errors import QueueError
from mxdoctor.queues import (
    exchange_csv,
    exchange_json,
    exchange_snapshot,
    exim,
    opensmtpd,
    postfix_json,
    postfix_text,
    record,
    sendmail,
)
from mxdoctor.queues.record import Item, Malformed, Mta

_MODULES: tuple[ModuleType, ...] = (
    postfix_json,
    exchange_snapshot,
    exchange_json,
    exchange_csv,
    opensmtpd,
    postfix_text,
    sendmail,
    exim,
)
SNIFF_LINES = 40
# Records between two progress events: a callback per record would cost more than reading it.
PROGRESS_EVERY = 4096


@dataclass(frozen=True)
class Format:
    name: str
    mta: Mta
    command: tuple[str, ...]
    sniff: Callable[[list[str]], bool]
    read: Callable[..., Iterator[Item]]


FORMATS: dict[str, Format] = {
    m.NAME: Format(m.NAME, m.MTA, tuple(m.COMMAND), m.sniff, m.read) for m in _MODULES
}
# What ``--postfix``, ``--exim``, ... run: each MTA's own listing command, in its richest format.
BY_MTA: dict[Mta, Format] = {
    Mta.POSTFIX: FORMATS[postfix_json.NAME],
    Mta.EXIM: FORMATS[exim.NAME],
    Mta.SENDMAIL: FORMATS[sendmail.NAME],
    Mta.OPENSMTPD: FORMATS[opensmtpd.NAME],
    Mta.EXCHANGE: FORMATS[exchange_json.NAME],
}


def detect(head: list[str]) -> Format | None:
    """The format whose sniffer accepts the first non-blank lines (skipping leading junk), or None."""
    lines = [line for line in head if line.strip()]
    for start in range(len(lines)):
        for fmt in FORMATS.values():
            if fmt.sniff(lines[start:]):
                return fmt
    return None


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise QueueError(f"unknown queue format {name!r}; known: {', '.join(FORMATS)}") from None


@dataclass(frozen=True)
class Source:
    """What to read: a path, ``-`` for stdin, or an MTA whose command is run."""

    path: str | None = None
    mta: Mta | None = None
    format: str | None = None
    config_dir: str | None = None
    timeout: float = 60.0

    @property
    def label(self) -> str:
        if self.mta is not None:
            return " ".join(command_for(self))
        return "stdin" if self.path == "-" else str(self.path)


def command_for(source: Source) -> list[str]:
    """The argv that lists ``source.mta``'s queue (with ``-c DIR`` for a Postfix configuration)."""
    assert source.mta is not None
    fmt = BY_MTA[source.mta]
    if source.format:
        # e.g. --postfix --format postfix-text runs that format's own command (postqueue -p).
        forced = get(source.format)
        if forced.mta is not source.mta or not forced.command:
            raise QueueError(f"format {forced.name} is not what {source.mta} lists")
        fmt = forced
    argv = list(fmt.command)
    if source.mta is Mta.EXIM and shutil.which("exim") is None and shutil.which("exim4") is not None:
        argv[0] = "exim4"  # Debian's name for the binary
    if source.config_dir:
        if source.mta is Mta.POSTFIX:
            argv[1:1] = ["-c", source.config_dir]
        elif source.mta is Mta.EXIM:
            argv[1:1] = ["-C", source.config_dir]
        else:
            raise QueueError(f"--config-dir is not supported for {source.mta}")
    return argv


def read(source: Source, *, now: float | None = None) -> Iterator[Item]:
    """Stream the records of ``source``; raises QueueError when it cannot be opened or recognised."""
    return open_source(source, now=now)[1]


def open_source(
    source: Source, *, now: float | None = None, on_progress: progress.Callback | None = None
) -> tuple[str | None, Iterator[Item]]:
    """The format ``source`` is read as (None for an empty listing) and its record stream.
    ``on_progress`` is told, as the stream is read, the bytes read of a regular file's size, or the
    records read of a pipe or command."""
    if on_progress is None:
        return _open_source(source, now=now, position=None)
    position: list[Callable[[], int]] = []
    fmt, items = _open_source(source, now=now, position=position)
    return fmt, _reporting(items, on_progress, source, position[0] if position else None)


def _reporting(
    items: Iterator[Item], on_progress: progress.Callback, source: Source, position: Callable[[], int] | None
) -> Iterator[Item]:
    size = os.stat(source.path).st_size if position is not None and source.path else None
    task = f"reading {source.label}"
    count = 0

    def tell(*, finished: bool = False) -> None:
        if size is None:
            on_progress(progress.Progress(task, count, None, progress.Unit.RECORDS, finished=finished))
        else:
            try:
                done = size if finished else min(position(), size)  # type: ignore[misc]
            except ValueError:  # the file is closed: all of it was read
                done = size
            on_progress(progress.Progress(task, done, size, progress.Unit.BYTES, finished=finished))

    tell()
    try:
        for item in items:
            yield item
            count += 1
            if count % PROGRESS_EVERY == 0:
                tell()
    finally:
        tell(finished=True)


def _open_source(
    source: Source, *, now: float | None, position: list[Callable[[], int]] | None
) -> tuple[str | None, Iterator[Item]]:
    if source.mta is not None:
        fmt = get(source.format) if source.format else BY_MTA[source.mta]
        if source.mta is Mta.EXCHANGE and sys.platform != "win32":
            raise QueueError("--exchange runs the Exchange cmdlets and works on Windows only; "
                             "export with Get-Message | ConvertTo-Json (or Export-Csv) and read the file")
        return fmt.name, guard(fmt.read(run(command_for(source), source.timeout), now=now))
    if source.path is None:
        raise QueueError("no queue source: give a file, '-' for stdin, or --postfix/--exim/...")
    lines = _open(source.path, position)
    if source.format:
        fmt = get(source.format)
        return fmt.name, fmt.read(lines, now=now)
    head = list(itertools.islice(lines, SNIFF_LINES))
    found = detect(head)
    if found is None:
        if not any(line.strip() for line in head):
            return None, iter(())
        first = record.excerpt(next(line for line in head if line.strip()))
        raise QueueError(f"{source.label}: not a queue listing mxdoctor knows (first line: {first!r}); "
                         f"use --format ({', '.join(FORMATS)})")
    return found.name, found.read(itertools.chain(head, lines), now=now)


def detected_format(source: Source) -> str | None:
    """The format a file source would be read as (for reports), without consuming stdin."""
    if source.mta is not None:
        return source.format or BY_MTA[source.mta].name
    if source.format or source.path in (None, "-"):
        return source.format
    with open(source.path, encoding="utf-8-sig", errors="replace", newline="") as fh:
        fmt = detect(list(itertools.islice(fh, SNIFF_LINES)))
    return fmt.name if fmt else None


def _open(path: str, position: list[Callable[[], int]] | None = None) -> Iterator[str]:
    """The lines of ``path``; for a regular file, the byte offset read so far is added to ``position``."""
    if path == "-":
        stream: Iterable[str] = open(  # closed by _lines
            sys.stdin.fileno(), encoding="utf-8-sig", errors="replace", newline="", closefd=False
        )
    else:
        try:
            fh = open(path, encoding="utf-8-sig", errors="replace", newline="")
        except OSError as exc:
            raise QueueError(f"{path}: {exc.strerror or exc}") from None
        if os.path.isdir(path):
            raise QueueError(f"{path}: is a directory")
        if position is not None and os.path.isfile(path):
            # the raw offset, ahead of the lines handed out by one read buffer at most: fine for a bar
            position.append(lambda: os.lseek(fh.fileno(), 0, os.SEEK_CUR))
        stream = fh
    return _lines(stream)


def _lines(stream: Iterable[str]) -> Iterator[str]:
    try:
        yield from stream
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def run(argv: list[str], timeout: float) -> Iterator[str]:
    """Run an MTA listing command and stream its output lines, killing it after ``timeout`` seconds.

    A command that cannot start raises QueueError; a timeout or failure after some output becomes a
    Malformed item at the end of the stream, since everything read before it still counts.
    """
    errors = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
            encoding="utf-8", errors="replace",
        )
    except OSError as exc:
        errors.close()
        raise QueueError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    return _command_lines(argv, proc, errors, timeout)


class CommandFailed(Exception):
    """Raised inside the line stream and turned into a Malformed item by ``guard``."""

    def __init__(self, lines: int, problem: str) -> None:
        super().__init__(problem)
        self.lines = lines
        self.problem = problem


def _command_lines(
    argv: list[str], proc: subprocess.Popen[str], errors: IO[str], timeout: float
) -> Iterator[str]:
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    count = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            count += 1
            yield line
        rc = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        errors.seek(0)
        stderr = " ".join(errors.read().split())[:200]
        errors.close()
    name = " ".join(argv[:3])
    if timed_out.is_set():
        raise CommandFailed(count, f"{name} did not finish within {timeout:g} s; listing incomplete")
    if rc != 0:
        if count == 0:
            raise QueueError(f"{name} failed (exit {rc}): {stderr or 'no message'}")
        raise CommandFailed(count, f"{name} exited with status {rc}: {stderr}")


def guard(items: Iterator[Item]) -> Iterator[Item]:
    """Turn a command failure in mid-stream into a final Malformed item instead of an exception."""
    try:
        yield from items
    except CommandFailed as exc:
        if exc.lines == 0:
            raise QueueError(exc.problem) from None
        yield Malformed(exc.lines + 1, exc.problem, "")
