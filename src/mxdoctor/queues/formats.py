"""The registry of queue listing formats and the source they are read from (file, stdin or MTA command).

A format is one reader module in mxdoctor.queues that registers its ``read`` with ``record.reader``
(name, MTA, command, sniffer, detection order); the modules are found by import, so adding a format
is one module. Detection sniffs the first lines; ``--format`` forces it. Every record stream goes
through ``guard``: a reader never ends the run with an exception, and a source never hangs it.
"""

from __future__ import annotations

import importlib
import itertools
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

import mxdoctor.queues as _package
from mxdoctor import progress
from mxdoctor.errors import QueueError
from mxdoctor.queues import _lines, record
from mxdoctor.queues._lines import SourceFailed
from mxdoctor.queues.record import Format, Item, Malformed, Mta

SNIFF_LINES = 40
CommandFailed = SourceFailed  # the older name of the same failure
# Records between two progress events: a callback per record would cost more than reading it.
PROGRESS_EVERY = 4096


def _discover() -> None:
    """Import every public module of mxdoctor.queues, so that each reader module registers itself."""
    for info in pkgutil.iter_modules(_package.__path__):
        if not info.name.startswith("_") and info.name != __name__.rsplit(".", 1)[-1]:
            importlib.import_module(f"{_package.__name__}.{info.name}")


_discover()
# Sniffers are tried in their declared order; --<mta> runs each MTA's own listing command, in its
# richest format (the one registered with mta_default).
FORMATS: dict[str, Format] = dict(sorted(record.REGISTERED.items(), key=lambda kv: (kv[1].order, kv[0])))
BY_MTA: dict[Mta, Format] = {f.mta: f for f in FORMATS.values() if f.mta_default}
LINE_FORMATS = frozenset(f.name for f in FORMATS.values() if f.line_records)


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
    records read of a pipe or command. Raises QueueError when the source cannot be opened, is not a
    listing, or ends (time-out, an endless line) before one line could be read.
    """
    position: list[Callable[[], int]] = []
    fmt, items = _open_source(source, now=now, position=position)
    if on_progress is None:
        return fmt, items
    return fmt, _reporting(items, on_progress, source, position[0] if position else None)


def _reporting(
    items: Iterator[Item], on_progress: progress.Callback, source: Source, position: Callable[[], int] | None
) -> Iterator[Item]:
    size = os.stat(source.path).st_size if position is not None and source.path else None
    task = f"reading {source.label}"
    count = 0

    def tell(*, finished: bool = False) -> None:
        if size is None or position is None:
            on_progress(progress.Progress(task, count, None, progress.Unit.RECORDS, finished=finished))
            return
        try:
            done = size if finished else min(position(), size)
        except (OSError, ValueError):  # the file is closed: all of it was read
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
    source: Source, *, now: float | None, position: list[Callable[[], int]]
) -> tuple[str | None, Iterator[Item]]:
    if source.mta is not None:
        fmt = get(source.format) if source.format else BY_MTA[source.mta]
        if source.mta is Mta.EXCHANGE and sys.platform != "win32":
            raise QueueError("--exchange runs the Exchange cmdlets and works on Windows only; "
                             "export with Get-Message | ConvertTo-Json (or Export-Csv) and read the file")
        return fmt.name, records(fmt, run(command_for(source), source.timeout), now=now)
    if source.path is None:
        raise QueueError("no queue source: give a file, '-' for stdin, or --postfix/--exim/...")
    lines = _lines.open_path(source.path, source.timeout)
    if lines.position is not None:
        position.append(lines.position)
    if source.format:
        fmt = get(source.format)
        return fmt.name, records(fmt, lines, now=now)
    head: list[str] = []
    failed: SourceFailed | None = None
    try:
        for line in lines:
            head.append(line)
            if len(head) >= SNIFF_LINES:
                break
    except SourceFailed as exc:
        # A pipe that stops sending after a few lines: those lines are still read, then the failure.
        if not head:
            raise QueueError(exc.problem) from None
        failed = exc
    found = detect(head)
    if found is None:
        lines.close()
        if lines.notes:
            raise QueueError(f"{source.label}: {lines.notes[0].problem} at line {lines.notes[0].line}: "
                             "not a queue listing mxdoctor knows")
        if not any(line.strip() for line in head):
            return None, iter(())
        # The message names the line, never echoes it: the file may be anything (and secret).
        number, first = next((n, line) for n, line in enumerate(head, 1) if line.strip())
        raise QueueError(f"{source.label}: not a queue listing mxdoctor knows (line {number}, "
                         f"{len(first.rstrip())} characters, matches no format); use --format ({', '.join(FORMATS)})")
    return found.name, records(found, lines, head, now=now, failed=failed)


def detected_format(source: Source) -> str | None:
    """The format a file source would be read as (for reports), without consuming stdin."""
    if source.mta is not None:
        return source.format or BY_MTA[source.mta].name
    if source.format or source.path in (None, "-") or not os.path.isfile(source.path):
        return source.format  # a pipe or FIFO cannot be read twice
    lines = _lines.open_path(source.path, source.timeout)
    try:
        fmt = detect(list(itertools.islice(lines, SNIFF_LINES)))
    except SourceFailed:
        fmt = None
    finally:
        lines.close()
    return fmt.name if fmt else None


def run(argv: list[str], timeout: float) -> _lines.Lines:
    """Run an MTA listing command and stream its output lines, killing it after ``timeout`` seconds.

    A command that cannot start raises QueueError; a timeout or failure after some output becomes a
    Malformed item at the end of the stream (through ``guard``), since everything read before it
    still counts.
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
    output = _CommandOutput(argv, proc, errors, timeout)
    return _lines.Lines(output.readline, output.finish)


class _CommandOutput:
    """A command's output read line by line; its exit status and time-out are checked at the end."""

    def __init__(self, argv: list[str], proc: subprocess.Popen[str], errors: IO[str], timeout: float) -> None:
        self.argv, self.proc, self.errors, self.timeout = argv, proc, errors, timeout
        self.count = 0
        self.done = False
        self.timed_out = threading.Event()
        self.timer = threading.Timer(timeout, self._kill)
        self.timer.daemon = True
        self.timer.start()

    def _kill(self) -> None:
        self.timed_out.set()
        self.proc.kill()

    def readline(self, limit: int) -> str:
        if self.done:
            return ""
        assert self.proc.stdout is not None
        try:
            line = self.proc.stdout.readline(limit)
        except BaseException:
            self.finish()
            raise
        if line:
            if line[-1] in "\r\n":
                self.count += 1
            return line
        self._stop()
        try:
            self._check()
        finally:
            self.errors.close()
        return ""

    def finish(self) -> None:
        """Stop the timer and reap the command (killed if the reading stopped early); idempotent."""
        self._stop()
        self.errors.close()

    def _stop(self) -> None:
        if self.done:
            return
        self.done = True
        self.timer.cancel()
        proc = self.proc
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _check(self) -> None:
        self.errors.seek(0)
        stderr = " ".join(self.errors.read(4096).split())[:200]
        name = " ".join(self.argv[:3])
        if self.timed_out.is_set():
            raise SourceFailed(self.count, f"{name} did not finish within {self.timeout:g} s; listing incomplete")
        rc = self.proc.returncode
        if rc != 0:
            if self.count == 0:
                raise QueueError(f"{name} failed (exit {rc}): {record.printable(stderr) or 'no message'}")
            raise SourceFailed(self.count, f"{name} exited with status {rc}: {record.printable(stderr)}")


def records(fmt: Format, lines: Iterator[str], head: list[str] | None = None, *,
            now: float | None = None, failed: SourceFailed | None = None) -> Iterator[Item]:
    """The records ``fmt`` reads from ``head`` then ``lines``, so that nothing a source holds ends the run.

    Over-long lines noted by the line stream join the records as Malformed items; an exception
    that escapes the reader (a record no reader thought of) becomes a Malformed item for the line
    it happened on and the reader starts again on the next line; a source that fails (time-out,
    command failure, an endless line) ends the stream with a Malformed item, or raises QueueError
    when nothing at all was read. ``failed`` is a failure already met while the head was read.
    """
    counted = lines if isinstance(lines, _lines.Lines) else _lines.Lines(_readline(lines))
    return _records(fmt, counted, head or [], now, failed)


def guard(items: Iterator[Item]) -> Iterator[Item]:
    """Turn a source failure in mid-stream into a final Malformed item instead of an exception."""
    try:
        yield from items
    except SourceFailed as exc:
        yield _ended(exc)


def _ended(exc: SourceFailed) -> Malformed:
    if exc.lines == 0:
        raise QueueError(exc.problem) from None
    return Malformed(exc.lines + 1, exc.problem, "")


def _readline(lines: Iterator[str]) -> Callable[[int], str]:
    it = iter(lines)
    return lambda _limit: next(it, "")


def _records(fmt: Format, lines: _lines.Lines, head: list[str], now: float | None,
             failed: SourceFailed | None) -> Iterator[Item]:
    notes = lines.notes
    given = 0  # lines of the head handed to the reader; past the head, lines.count says where it is

    def head_lines() -> Iterator[str]:
        nonlocal given
        for line in head:
            given += 1
            yield line

    def then_fail() -> Iterator[str]:
        yield from lines
        assert failed is not None
        raise failed

    # One shared stream, so that a reader started again goes on where the last one stopped.
    stream = itertools.chain(head_lines(), lines if failed is None else then_fail())

    def position() -> int:
        return given if given < len(head) else lines.count

    try:
        while True:
            started = position()
            try:
                for item in fmt.read(stream, now=now):
                    if notes:
                        yield from notes
                        notes.clear()
                    yield item
            except (SourceFailed, QueueError):
                raise  # the source's own failure, not the reader's
            except Exception as exc:
                yield Malformed(max(position(), 1), f"record not readable: {record.problem(exc)}", "")
                if position() > started:
                    continue  # the reader starts again after the line it failed on
            break
        if notes:
            yield from notes
            notes.clear()
    except SourceFailed as exc:
        yield from notes
        yield _ended(exc)
