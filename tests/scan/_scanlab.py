"""What the scan tests share: a lab scenario with every route case, its domains, and the CLI runner."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

ROUTES = """
description = "Every route case of a scan in one zone: MX, implicit MX, null MX, CNAME target, no address, NXDOMAIN."
domains = ["example.com"]

[zones."example.com"]
text = '''
@          MX  10 mx1
mx1        A   127.0.0.25
mx1        AAAA ::1
implicit   A   127.0.0.26
null       MX  0 .
alias      MX  10 mail.alias
mail.alias CNAME mx1
noaddr     MX  10 gone.noaddr
www.noaddr A   127.0.0.80
two        MX  20 mx1
two        MX  10 mx.example.net.
broken     MX  10 mail.example.net.
'''

[zones."example.net"]
text = '''
mx   A   127.0.0.27
mail A   127.0.0.28
'''

[[servers]]
name = "ns1.example.com"
address = "127.0.0.11"
zones = ["example.com"]

[[servers]]
name = "ns1.example.net"
address = "127.0.0.13"
zones = ["example.net"]
faults = [{ kind = "rcode", rcode = "SERVFAIL", name = "mail.example.net.", qtype = "AAAA" }]
"""

DOMAINS = ["example.com", "implicit.example.com", "null.example.com", "alias.example.com", "noaddr.example.com",
           "nxd.example.com", "two.example.com", "broken.example.com"]  # fmt: skip


def scan_cli(args: list[str], *, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mxdoctor.cli", "scan", *args], input=stdin, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]
