"""The Exchange collector: a read-only PowerShell 2.0 script that runs as a scheduled task on an
Exchange server and pushes its queues and DNS settings to ``mxdoctor watch`` (or writes them to a share).

Shipped as package data; ``mxdoctor exchange-collector`` prints it.
"""

from __future__ import annotations

from importlib import resources

SCRIPT_NAME = "mxdoctor-collector.ps1"


def script() -> str:
    """The collector script's text, exactly as shipped."""
    return resources.files(__package__).joinpath(SCRIPT_NAME).read_text(encoding="utf-8")
