"""The argument groups several commands share, listed once: the output options (``--format``,
``--json``, ``--output``, ``--no-color``), the MTA model options and the queue-source flags.
"""

from __future__ import annotations

import argparse
from typing import Any

from mxdoctor import api, report
from mxdoctor.errors import ConfigError
from mxdoctor.mta.models import MODELS
from mxdoctor.queues import formats
from mxdoctor.queues.record import Mta


def add_output(parser: argparse.ArgumentParser | Any, kind: report.Kind, *, flag: str = "--format") -> None:
    """``--format`` (every format ``kind`` has a renderer for), ``--json`` as its alias, ``--output``
    and ``--no-color``. ``flag`` names the format option where ``--format`` means something else."""
    choices = report.formats(kind)
    parser.add_argument(flag, dest="output_format", choices=choices, default="text",
                        help=f"output format: {', '.join(choices)} (default text)")
    parser.add_argument("--json", dest="output_format", action="store_const", const="json",
                        help=f"the same as {flag} json (schema in docs/json.md of the source tree and sdist)")
    parser.add_argument("--output", metavar="FILE", help="write the report to FILE instead of standard output")
    parser.add_argument("--no-color", action="store_true", help="no colour (NO_COLOR is honoured too)")


def emit(args: argparse.Namespace, kind: report.Kind, result: Any, *, brief: bool = False) -> None:
    """Render ``result`` as the output options of ``args`` ask."""
    options = report.Options(color=False if getattr(args, "no_color", False) else None, brief=brief)
    report.emit(kind, args.output_format, result, output=args.output, options=options)


def add_models(parser: argparse.ArgumentParser | Any, *, knobs: bool = True) -> None:
    parser.add_argument("--mta", action="append", default=[], metavar="NAME",
                        help=f"limit the verdicts to these MTA models ({', '.join(MODELS)}); repeatable")
    if knobs:
        parser.add_argument("--knob", action="append", default=[], metavar="MTA:KNOB",
                            help="evaluate an MTA with a setting, e.g. sendmail:WorkAroundBrokenAAAA")


def mtas(args: argparse.Namespace) -> list[str] | None:
    names = [n.strip() for item in args.mta for n in item.split(",") if n.strip()]
    return names or None


def knobs(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in getattr(args, "knob", []):
        mta, sep, knob = item.partition(":")
        if not sep or mta not in MODELS:
            raise ConfigError(f"--knob {item!r}: expected MTA:KNOB with MTA one of {', '.join(MODELS)}")
        out[mta] = out.get(mta, ()) + (knob,)
    return out


# One flag per MTA whose queue command a source may run (``--postfix`` ...), named by queues' Mta.
_SOURCE_HELP: dict[Mta, str] = {
    Mta.POSTFIX: "run 'postqueue -j' (optionally with -c CONFIG_DIR)",
    Mta.EXIM: "run 'exim -bp'",
    Mta.SENDMAIL: "run 'mailq'",
    Mta.OPENSMTPD: "run 'smtpctl show queue'",
    Mta.EXCHANGE: "on Windows, run Get-Message through PowerShell",
}


def add_queue_source(parser: argparse.ArgumentParser) -> None:
    """The queue-source options shared by ``queue`` and ``watch``: a file, or one MTA's command."""
    parser.add_argument("source", nargs="?", help="a queue listing file, or '-' for standard input")
    group = parser.add_mutually_exclusive_group()
    for mta in Mta:
        if mta is Mta.POSTFIX:  # the one with a configuration directory
            group.add_argument("--postfix", nargs="?", const="", metavar="CONFIG_DIR", help=_SOURCE_HELP[mta])
        else:
            group.add_argument(f"--{mta.value}", action="store_true", help=_SOURCE_HELP[mta])
    parser.add_argument("--format", choices=sorted(formats.FORMATS), help="force the listing format")
    parser.add_argument("--timeout", default="60s",
                        help="limit for the MTA command, or for reading a pipe or FIFO (default 60s)")


def queue_source(args: argparse.Namespace) -> formats.Source:
    """The Source the queue-source options name (``--postfix DIR`` sets its configuration directory)."""
    mta = None
    config_dir = None
    if args.postfix is not None:
        mta, config_dir = Mta.POSTFIX, args.postfix or None
    for other in Mta:
        if other is not Mta.POSTFIX and getattr(args, other.value, False):
            mta = other
    return api.queue_source(args.source, mta=mta, format=args.format, config_dir=config_dir, timeout=args.timeout)
