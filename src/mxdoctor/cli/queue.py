"""``mxdoctor queue``: read one queue listing, print its shape and reasons, exit with a monitoring status."""

from __future__ import annotations

import argparse
import sys

from mxdoctor import api
from mxdoctor.cli import _args, _progress
from mxdoctor.errors import MxdoctorError, QueueError
from mxdoctor.queues import record, status
from mxdoctor.queues.record import printable
from mxdoctor.report import Kind


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "queue",
        help="shape a mail queue: domains x age, oldest message and deferral reason per domain",
        description="Read a queue listing (Postfix, Exim, Sendmail, OpenSMTPD, Exchange) and show "
        "messages per destination domain in age buckets (minutes), the oldest message and the "
        "dominant deferral reason per domain. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    _args.add_queue_source(parser)
    parser.add_argument("--queue", action="append", metavar="NAME",
                        help="only this queue (e.g. deferred); may repeat")
    parser.add_argument("--top", type=int, default=20, help="show the N biggest domains (0: all; default 20)")
    # --format names the listing format here, so the output format is --output-format.
    _args.add_output(parser, Kind.QUEUE, flag="--output-format")
    parser.add_argument("--nagios", dest="output_format", action="store_const", const="nagios",
                        help="the same as --output-format nagios: one status line with perfdata")
    parser.add_argument("--warn-age", default="30m", help="WARNING when the oldest message is older (30m)")
    parser.add_argument("--crit-age", default="4h", help="CRITICAL when the oldest message is older (4h)")
    parser.add_argument("--warn-count", type=int, help="WARNING at this many messages")
    parser.add_argument("--crit-count", type=int, help="CRITICAL at this many messages")
    parser.add_argument("--jobs", type=int, help="processes for a big one-record-per-line file (default 1)")
    _progress.add_flag(parser)
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
        if args.output_format != "nagios":
            raise
        # A monitoring plugin must say UNKNOWN on stdout, in its own line format.
        print(f"MXDOCTOR QUEUE UNKNOWN - {exc}")
        return int(status.Status.UNKNOWN)


def _run(args: argparse.Namespace) -> int:
    source = _args.queue_source(args)
    if args.now is not None and not 0 <= args.now < record.MAX_TIME:
        raise QueueError(f"--now {args.now!r}: not a time")
    with _progress.shown(args) as on_progress:
        result = api.read_queue(source, queues=args.queue or (), limits=thresholds_from(args), now=args.now,
                                jobs=args.jobs or 1, top=args.top, on_progress=on_progress)
    _args.emit(args, Kind.QUEUE, result)
    if result.status is status.Status.UNKNOWN and args.output_format == "json":
        shape = result.shape
        first = f" (first: {shape.malformed_examples[0]})" if shape.malformed_examples else ""
        print(f"mxdoctor: nothing readable in {printable(source.label)}: {shape.malformed} malformed line(s)"
              f"{first}", file=sys.stderr)
    return result.exit_code
