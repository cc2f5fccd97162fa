"""The ``mxdoctor exchange-collector`` command: print the PowerShell collector for Exchange servers."""

from __future__ import annotations

import argparse
import sys

from mxdoctor import collector


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "exchange-collector",
        help="print the read-only PowerShell collector that pushes an Exchange server's queues to watch",
        description="Print the collector script (PowerShell 2.0 and later, Exchange 2010 to Exchange Server SE). "
        "Save it as mxdoctor-collector.ps1 on the Exchange server and schedule it; its header says how.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(collector.script())
    return 0
