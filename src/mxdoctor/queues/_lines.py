"""The lines of a queue source, bounded: in length (an over-long line is skipped and reported), in
total time for pipes, FIFOs and devices (a source that stops sending ends the read), and in the
characters skipped in one line (an endless line such as /dev/zero ends it too).
"""

from __future__ import annotations

import io
import os
import select
import stat
import sys
import time
from collections.abc import Callable, Generator, Iterator
from typing import IO

from mxdoctor.errors import QueueError
from mxdoctor.queues import record
from mxdoctor.queues.record import Malformed

# A postqueue -j line holds one message with all its recipients: a thousand recipients with long
# reasons stay far below 1 Mi characters; a longer line is skipped as malformed, unread.
MAX_LINE = 1 << 20
# Past this, one unending line is not a listing with a bad line but not a listing (/dev/zero).
MAX_SKIP = 64 << 20
CHUNK = 1 << 16
_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)


class SourceFailed(Exception):
    """The source ended abnormally after ``lines`` lines (time-out, command failure, endless line);
    raised inside the line stream and turned into a final Malformed item (or a QueueError when
    nothing was read) by ``formats.guard``."""

    def __init__(self, lines: int, problem: str) -> None:
        super().__init__(problem)
        self.lines = lines
        self.problem = problem


class Lines:
    """An iterator of the lines of one text stream that keeps the bounds of this module.

    An over-long line is given to the reader as an empty line (so line numbers stay right) and
    noted in ``notes`` as a Malformed item, which ``formats.guard`` puts into the record stream.
    ``count`` is the number of lines given so far.
    """

    def __init__(self, readline: Callable[[int], str], close: Callable[[], None] | None = None) -> None:
        self.count = 0
        self.notes: list[Malformed] = []
        self.position: Callable[[], int] | None = None  # bytes read so far, for a regular file
        self._readline = readline
        self._close = close
        self._iter = self._lines()

    def __iter__(self) -> Iterator[str]:
        return self._iter

    def __next__(self) -> str:
        return next(self._iter)

    def close(self) -> None:
        self._iter.close()

    def _lines(self) -> Generator[str, None, None]:
        readline = self._readline
        try:
            while True:
                line = readline(MAX_LINE)
                if not line:
                    return
                self.count += 1
                if len(line) >= MAX_LINE and line[-1] not in "\r\n":
                    self._skip_rest(line)
                    line = "\n"
                yield line
        finally:
            if self._close is not None:
                self._close()

    def _skip_rest(self, start: str) -> None:
        skipped = len(start)
        while True:
            more = self._readline(MAX_LINE)
            skipped += len(more)
            if not more or more[-1] in "\r\n":
                break
            if skipped > MAX_SKIP:
                raise SourceFailed(self.count - 1, f"line {self.count} is longer than {MAX_SKIP >> 20} Mi "
                                   "characters: not a queue listing; stopped reading")
        self.notes.append(Malformed(self.count, f"line longer than {MAX_LINE >> 20} Mi characters, skipped",
                                    record.excerpt(start)))


class _Deadline(io.RawIOBase):
    """A pipe, FIFO, socket or device read with select(), so that the whole read ends at a deadline."""

    def __init__(self, fd: int, label: str, timeout: float, closefd: bool) -> None:
        super().__init__()
        self._fd = fd
        self._label = label
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._closefd = closefd
        self.lines: Lines | None = None  # set once the line stream exists, for the failure's line count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        left = self._deadline - time.monotonic()
        ready = select.select([self._fd], [], [], max(left, 0.0))[0] if left > 0 else []
        if not ready:
            count = self.lines.count if self.lines is not None else 0
            raise SourceFailed(count, f"{self._label}: nothing more within {self._timeout:g} s; listing incomplete")
        data = os.read(self._fd, min(len(buffer), CHUNK))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed and self._closefd:
            os.close(self._fd)
        super().close()


def open_path(path: str, timeout: float) -> Lines:
    """The lines of a file, of ``-`` (standard input), of a FIFO or a device, within the bounds here.

    A regular file is read as it is; anything else through select() with ``timeout`` seconds for
    the whole read. Raises QueueError when the path cannot be opened.
    """
    if path == "-":
        fd, closefd, label = sys.stdin.fileno(), False, "stdin"
    else:
        label = path
        try:
            # O_NONBLOCK so that opening a FIFO with no writer does not wait; reads then go through
            # select(), and the flag is cleared so that they block only as select() allows.
            fd = os.open(path, os.O_RDONLY | _NONBLOCK | getattr(os, "O_BINARY", 0))
        except OSError as exc:
            raise QueueError(f"{path}: {exc.strerror or exc}") from None
        closefd = True
        if _NONBLOCK:
            os.set_blocking(fd, True)
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        if closefd:
            os.close(fd)
        raise QueueError(f"{label}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        if closefd:
            os.close(fd)
        raise QueueError(f"{path}: is a directory")
    deadline: _Deadline | None = None
    if stat.S_ISREG(mode) or not _NONBLOCK:  # Windows: select() takes sockets only
        raw: IO[bytes] = open(fd, "rb", closefd=closefd)  # closed with the text stream
    else:
        deadline = _Deadline(fd, label, timeout, closefd)
        raw = io.BufferedReader(deadline)
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
    lines = Lines(text.readline, text.close)
    if deadline is not None:
        deadline.lines = lines
    elif stat.S_ISREG(mode):
        # the raw offset, ahead of the lines handed out by one read buffer at most: fine for a bar
        lines.position = lambda: os.lseek(fd, 0, os.SEEK_CUR)
    return lines


def of_stream(stream: IO[str]) -> Lines:
    """The lines of an already open text stream (a command's output), bounded in length."""
    return Lines(stream.readline)
