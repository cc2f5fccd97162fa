"""Command line: parse arguments, call the library, render. Nothing else lives here.

One module per command family in this package registers its sub-commands, so adding a command
touches one file; every MxdoctorError becomes one line on stderr and exit status 3.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import NoReturn, Protocol

from mxdoctor import __version__
from mxdoctor.errors import MxdoctorError

EXIT_UNKNOWN = 3
# when the process began, imports included: `diagnose --deadline` bounds the whole command from here
STARTED = time.monotonic()

# Modules that provide ``register(subparsers)``; each sets ``func`` on its parsers.
COMMAND_MODULES = (
    "mxdoctor.cli.diagnose",  # diagnose, explain, checks, models, demo
    "mxdoctor.cli.audit",  # audit
    "mxdoctor.cli.smtp",  # smtp
    "mxdoctor.cli.queue",  # queue
    "mxdoctor.cli.watch",  # watch
    "mxdoctor.cli.lab",  # lab list / show / serve
    "mxdoctor.cli.exchange",  # exchange-collector
    "mxdoctor.cli.scan",  # scan
)


class _Registrar(Protocol):
    def __call__(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 3 (UNKNOWN), as monitoring plugins expect, not argparse's 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mxdoctor",
        description="Why is mail to a domain stuck, and what should change?",
        epilog="The guides are the docs/ folder of the mxdoctor source tree and sdist (an installed wheel "
        "carries none); `mxdoctor checks` lists every finding.",
    )
    parser.add_argument("--version", action="version", version=f"mxdoctor {__version__}")
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser
    )
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # a command family not installed in this build
            raise
        register: _Registrar = module.register
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, started: float | None = None) -> int:
    """Run one command; ``started`` (``time.monotonic()``, default now) is when its deadline began."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_UNKNOWN
    args.started = time.monotonic() if started is None else started
    try:
        return func(args)
    except MxdoctorError as exc:
        print(f"mxdoctor: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        print("mxdoctor: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    try:
        code = main(started=STARTED)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, as a Unix filter killed by SIGPIPE does;
        # stdout goes to /dev/null so the interpreter's own final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 128 + signal.SIGPIPE
    sys.exit(code)


if __name__ == "__main__":
    run()
