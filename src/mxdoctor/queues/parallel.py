"""Shaping a large listing file on several cores: the file is cut at line boundaries into one byte
range per worker process, each shapes its part, and the parts are merged (line numbers included).

Only for formats registered with one record per line (``postqueue -j``, ``smtpctl show queue``);
the others keep state across lines and are read by one process.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import IO

from mxdoctor.queues import _lines, formats, shape
from mxdoctor.queues.shape import Shape

MIN_BYTES = 32 * 1024 * 1024  # below this, start-up costs more than a second core saves


def _part_lines(path: str, start: int, end: int) -> _lines.Lines:
    """Lines that begin in [start, end) of ``path``, bounded in length as every source's are."""
    fh = open(path, "rb")  # closed by the line stream
    if start > 0:
        fh.seek(start - 1)
        _skip_line(fh)  # the line that began before ``start`` belongs to the previous part
    pos = fh.tell()
    first = start == 0

    def readline(limit: int) -> str:
        nonlocal pos, first
        if pos >= end:
            return ""
        raw = fh.readline(limit)
        pos += len(raw)
        text = raw.decode("utf-8", "replace")
        if first:
            text = text.removeprefix("\ufeff")
            first = False
        if len(raw) >= limit and raw[-1:] != b"\n" and len(text) < limit:
            # Cut inside a line of multi-byte characters: padded, so that Lines sees an over-long line.
            text = text.ljust(limit)
        return text

    # An over-long line that crosses ``end`` is noted by this part (its reading stops at ``end``)
    # and skipped by the next one, which always starts after the line holding its first byte.
    return _lines.Lines(readline, fh.close)


def _skip_line(fh: IO[bytes]) -> None:
    while True:
        raw = fh.readline(_lines.MAX_LINE)
        if not raw or raw[-1:] == b"\n":
            return


def _part(args: tuple[str, str, int, int, float, tuple[str, ...]]) -> tuple[Shape, int]:
    path, fmt_name, start, end, now, queues = args
    fmt = formats.get(fmt_name)
    lines = _part_lines(path, start, end)
    part = shape.build(formats.records(fmt, lines, now=now), now=now, queues=queues or None)
    return part, lines.count


def build_file(path: str, fmt_name: str, *, now: float, queues: tuple[str, ...] = (),
               jobs: int | None = None) -> Shape | None:
    """Shape ``path`` with ``jobs`` processes, or None when it is not worth it or not possible.

    One process already shapes a million messages in about 7 s of CPU (bench/queue.py); workers
    help on an idle multi-core machine and hurt on a busy one, so they are asked for, not assumed.
    """
    jobs = jobs or 1
    try:
        size = os.path.getsize(path)
    except OSError:
        return None
    if jobs < 2 or fmt_name not in formats.LINE_FORMATS or size < MIN_BYTES or not os.path.isfile(path):
        return None
    bounds = [size * i // jobs for i in range(jobs + 1)]
    tasks = [(path, fmt_name, bounds[i], bounds[i + 1], now, queues) for i in range(jobs)]
    # spawn, not fork: a forked child of a process with threads (an asyncio loop, a lab) can inherit
    # a lock held by another thread and hang; the start-up cost is nothing next to 32 MB of input.
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        parts = pool.map(_part, tasks)
    result, offset = parts[0]
    for part, lines in parts[1:]:
        result.merge(part, line_offset=offset)
        offset += lines
    return result
