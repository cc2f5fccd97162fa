"""``mxdoctor queue``: read one queue listing, print its shape and reasons, exit with a monitoring status."""

from __future__ import annotations

import argparse
import json
import sys
import time

from rich.console import Console

from mxdoctor.errors import MxdoctorError, QueueError
from mxdoctor.queues import _render, formats, parallel, record, shape, status
from mxdoctor.queues.record import Mta, printable


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The queue-source options shared by ``queue`` and ``watch``."""
    parser.add_argument("source", nargs="?", help="a queue listing file, or '-' for standard input")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--postfix", nargs="?", const="", metavar="CONFIG_DIR",
                       help="run 'postqueue -j' (optionally with -c CONFIG_DIR)")
    group.add_argument("--exim", action="store_true", help="run 'exim -bp'")
    group.add_argument("--sendmail", action="store_true", help="run 'mailq'")
    group.add_argument("--opensmtpd", action="store_true", help="run 'smtpctl show queue'")
    group.add_argument("--exchange", action="store_true",
                       help="on Windows, run Get-Message through PowerShell")
    parser.add_argument("--format", choices=sorted(formats.FORMATS), help="force the listing format")
    parser.add_argument("--timeout", default="60s",
                        help="limit for the MTA command, or for reading a pipe or FIFO (default 60s)")


def source_from(args: argparse.Namespace) -> formats.Source:
    mta = None
    config_dir = None
    if args.postfix is not None:
        mta, config_dir = Mta.POSTFIX, args.postfix or None
    for flag, value in (("exim", Mta.EXIM), ("sendmail", Mta.SENDMAIL), ("opensmtpd", Mta.OPENSMTPD),
                        ("exchange", Mta.EXCHANGE)):
        if getattr(args, flag, False):
            mta = value
    if mta is not None and args.source:
        raise QueueError("give either a SOURCE file or an MTA option, not both")
    if mta is None and not args.source:
        raise QueueError("no queue source: give a file, '-' for stdin, or --postfix/--exim/--sendmail/...")
    return formats.Source(
        path=args.source, mta=mta, format=args.format, config_dir=config_dir,
        timeout=status.parse_duration(args.timeout),
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "queue",
        help="shape a mail queue: domains x age, oldest message and deferral reason per domain",
        description="Read a queue listing (Postfix, Exim, Sendmail, OpenSMTPD, Exchange) and show "
        "messages per destination domain in age buckets (minutes), the oldest message and the "
        "dominant deferral reason per domain. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    add_source_arguments(parser)
    parser.add_argument("--queue", action="append", metavar="NAME",
                        help="only this queue (e.g. deferred); may repeat")
    parser.add_argument("--top", type=int, default=20, help="show the N biggest domains (0: all; default 20)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--nagios", action="store_true", help="print one status line with perfdata")
    parser.add_argument("--warn-age", default="30m", help="WARNING when the oldest message is older (30m)")
    parser.add_argument("--crit-age", default="4h", help="CRITICAL when the oldest message is older (4h)")
    parser.add_argument("--warn-count", type=int, help="WARNING at this many messages")
    parser.add_argument("--crit-count", type=int, help="CRITICAL at this many messages")
    parser.add_argument("--jobs", type=int, help="processes for a big one-record-per-line file (default 1)")
    parser.add_argument("--now", type=float, help=argparse.SUPPRESS)  # fixed clock for reproducible output
    parser.set_defaults(func=run)


def thresholds_from(args: argparse.Namespace) -> status.Thresholds:
    return status.Thresholds(
        warn_age=status.parse_duration(args.warn_age),
        crit_age=status.parse_duration(args.crit_age),
        warn_count=args.warn_count,
        crit_count=args.crit_count,
    )


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except MxdoctorError as exc:
        if not getattr(args, "nagios", False):
            raise
        # A monitoring plugin must say UNKNOWN on stdout, in its own line format.
        print(f"MXDOCTOR QUEUE UNKNOWN - {exc}")
        return int(status.Status.UNKNOWN)


def _run(args: argparse.Namespace) -> int:
    source = source_from(args)
    limits = thresholds_from(args)
    now = time.time() if args.now is None else args.now
    if not 0 <= now < record.MAX_TIME:
        raise QueueError(f"--now {args.now!r}: not a time")
    result = None
    fmt: str | None = None
    if (args.jobs or 1) > 1 and source.path not in (None, "-"):
        assert source.path is not None
        fmt = formats.detected_format(source)
        if fmt is not None:
            result = parallel.build_file(source.path, fmt, now=now, queues=tuple(args.queue or ()), jobs=args.jobs)
    if result is None:
        fmt, items = formats.open_source(source, now=now)
        result = shape.build(items, now=now, queues=args.queue)
    verdict = status.evaluate(result, limits)
    if args.nagios:
        print(status.nagios(result, limits, verdict, source.label))
    elif args.json:
        doc = _render.to_json(result, source=source.label, fmt=fmt, status=verdict, limits=limits, top=args.top)
        try:
            # allow_nan=False: the records' bounds keep every number finite, and JSON has no NaN.
            sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            pass  # a pager or `head` closed the pipe; nothing left to say
    else:
        _render.print_text(Console(), result, source=source.label, fmt=fmt, status=verdict, top=args.top)
    if verdict is status.Status.UNKNOWN and args.json:
        first = f" (first: {result.malformed_examples[0]})" if result.malformed_examples else ""
        print(f"mxdoctor: nothing readable in {printable(source.label)}: {result.malformed} malformed line(s)"
              f"{first}", file=sys.stderr)
    return int(verdict)
