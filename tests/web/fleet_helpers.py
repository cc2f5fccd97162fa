"""Helpers of the fleet tests: the recorded Exchange snapshots made to point at a running lab's
resolvers (their DNS server lines rewritten) and dated a few hours ago."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

from mxdoctor.lab import runner

DATA = Path(__file__).parents[1] / "data" / "queues"
TOKENS = {"sbs1": "token-of-sbs1-0123456789", "exch16": "token-of-exch16-0123456789"}
NOBODY = "127.0.0.199"  # a loopback address where no resolver listens: the host's unreachable DNS
_DATE = re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M")


def recent(text: str, hours: float = 3.0) -> str:
    """The sample with every Exchange date moved to a few hours ago, so ages do not hang on the clock."""
    when = datetime.fromtimestamp(time.time() - hours * 3600, UTC).strftime("%m/%d/%Y %I:%M:%S %p")
    return _DATE.sub(when, text)


def snapshots(card: runner.Card) -> dict[str, bytes]:
    internal, external = card.resolver("internal").address, card.resolver("external").address
    sbs1 = (DATA / "exchange2010-snapshot.txt").read_text()
    sbs1 = sbs1.replace('"Intel(R) PRO/1000 MT Network Connection","192.168.16.2"',
                        f'"Intel(R) PRO/1000 MT Network Connection","{internal}"')
    exch16 = (DATA / "exchange2016-snapshot.txt").read_text().replace("broken.example", "example.com")
    exch16 = exch16.replace('"EXCH16","False","192.0.2.53 198.51.100.53","Any","False","10.1.0.10 10.1.0.11","Any"',
                            f'"EXCH16","False","{external}","Any","False","{NOBODY}","Any"')
    exch16 = exch16.replace('"vmxnet3 Ethernet Adapter","10.1.0.10 10.1.0.11"',
                            f'"vmxnet3 Ethernet Adapter","{NOBODY}"')
    assert internal in sbs1 and external in exch16 and NOBODY in exch16  # the rewrites took
    return {"sbs1": recent(sbs1).encode(), "exch16": recent(exch16).encode(),
            "exch16-json": (DATA / "exchange2016-get-message.json").read_bytes()}
