"""The progress display of long commands: a rich bar per task on standard error, shown only when
standard error is a terminal and ``--no-progress`` is not given; standard output is never touched.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator

from rich import progress as bars
from rich.console import Console
from rich.text import Text

from mxdoctor import progress


def add_flag(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress display (it is shown only when standard error is a terminal)")


def wanted(args: argparse.Namespace) -> bool:
    """The one rule: a display when standard error is a terminal, unless ``--no-progress``."""
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


class _Counts(bars.ProgressColumn):
    """``done/total unit``, bytes in binary units, and ``done unit`` when the total is not known."""

    def render(self, task: bars.Task) -> Text:
        unit: progress.Unit = task.fields.get("unit", progress.Unit.RECORDS)
        total = None if task.total is None else int(task.total)
        done = int(task.completed)
        if unit is progress.Unit.BYTES:
            shown = _size(done) + (f"/{_size(total)}" if total is not None else "")
        else:
            shown = f"{done}" + (f"/{total}" if total is not None else "") + f" {unit.value}"
        return Text(shown, style="progress.download")


class _DeadlineLeft(bars.ProgressColumn):
    """The seconds left before the task's deadline, counted down between two events too."""

    def render(self, task: bars.Task) -> Text:
        deadline = task.fields.get("deadline")
        if deadline is None or task.stop_time is not None:
            return Text("")
        return Text(f"{max(0.0, deadline - time.monotonic()):.0f} s to the deadline", style="progress.remaining")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@contextlib.contextmanager
def shown(args: argparse.Namespace) -> Iterator[progress.Callback | None]:
    """A callback that draws the events it is given on standard error, or None when ``wanted`` says
    no; the display is cleared when the block ends, before any report is printed."""
    if not wanted(args):
        yield None
        return
    console = Console(file=sys.stderr, no_color=True if getattr(args, "no_color", False) else None)
    display = bars.Progress(
        bars.TextColumn("{task.description}"),
        bars.BarColumn(),
        _Counts(),
        _DeadlineLeft(),
        console=console,
        transient=True,
        # what the command prints goes where it was going: stdout stays exactly the report
        redirect_stdout=False,
        redirect_stderr=False,
    )
    tasks: dict[str, bars.TaskID] = {}

    def update(event: progress.Progress) -> None:
        task = tasks.get(event.task)
        if task is None:
            task = tasks[event.task] = display.add_task(event.task, total=event.total or None, unit=event.unit,
                                                        deadline=event.deadline)
        # a bar whose total is not known yet (nothing asked so far) pulses rather than showing 0/0
        total = event.total if event.total else None
        display.update(task, completed=event.done, total=total)
        if event.finished:
            display.stop_task(task)

    with display:
        yield update
