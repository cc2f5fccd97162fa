"""Command line: parse arguments, call the library, render. Nothing else lives here.

Each command family registers its sub-commands from its own ``_cli`` module, so adding a command
touches one file; every MxdoctorError becomes one line on stderr and exit status 3.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, Protocol

from mxdoctor import __version__
from mxdoctor.errors import MxdoctorError

EXIT_UNKNOWN = 3

# Modules that provide ``register(subparsers)``; each sets ``func`` on its parsers.
COMMAND_MODULES = (
    "mxdoctor.report._cli",  # diagnose, explain, checks, demo
    "mxdoctor.audit._cli",  # audit
    "mxdoctor.smtp._cli",  # smtp
    "mxdoctor.queues._cli",  # queue
    "mxdoctor.monitor._cli",  # watch
    "mxdoctor.lab._cli",  # lab list / lab serve
    "mxdoctor.scan._cli",  # scan
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_UNKNOWN
    try:
        return func(args)
    except MxdoctorError as exc:
        print(f"mxdoctor: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        print("mxdoctor: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
