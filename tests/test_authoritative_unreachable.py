"""A sender whose firewall lets only its resolver out: the root servers are silent from this host. The
diagnosis says the receiver's side could not be tested, rests on the resolver, and comes quickly.
Lab servers on loopback; the silent root is a UDP socket on loopback that never answers."""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path

from mxdoctor import analysis, api, lab


def test_silent_roots_give_the_resolvers_root_cause_within_five_seconds(tmp_path: Path) -> None:
    with lab.running("aaaa-servfail") as card:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.254", card.dns_port))  # reads nothing, answers nothing: a dropping firewall
        hints = tmp_path / "named.root"
        hints.write_text(".  3600000  NS  a.root-servers.net.\na.root-servers.net.  3600000  A  127.0.0.254\n")
        options = dataclasses.replace(api.lab_options(card, deadline=30.0), root_hints=str(hints))
        started = time.monotonic()
        try:
            ev = api.collect(card.domains[0], options)  # the default 2 s time-out
        finally:
            silent.close()
        elapsed = time.monotonic() - started
    d = analysis.analyse(ev)
    codes = [f.code for f in d.findings]
    assert elapsed <= 5.0, elapsed
    assert "AUTHORITATIVE_UNREACHABLE" in codes, codes
    assert "MX_LOOKUP_FAILED" not in codes, codes
    assert d.root_causes()[0].code == "AAAA_SERVFAIL", codes
    unreachable = next(f for f in d.findings if f.code == "AUTHORITATIVE_UNREACHABLE")
    assert unreachable.remediation.receiver.startswith("Nothing")
    verdicts = {v.mta: v.outcome.value for v in d.verdicts}
    assert verdicts["exchange2010"] == "defer" and verdicts["postfix"] == "deliver", verdicts
