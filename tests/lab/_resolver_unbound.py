"""Real Unbound (the Debian package) as an internal resolver over a running lab, for tests.

    with lab_on_port_53("aaaa-servfail") as card, running_unbound(card) as unbound:
        ... ask unbound.address on unbound.port ...

Unbound takes the lab's root hints, which carry no port: the lab must run on port 53, so callers need root
(``skip_unless_unbound_can_run()`` skips otherwise, and when Unbound is not installed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

import mxdoctor.lab
from _helpers import free_port
from mxdoctor.errors import LabError
from mxdoctor.lab.runner import Card

UNBOUND = "/usr/sbin/unbound"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# Port 53 of the scenario addresses is shared by every lab on this host; wait this long for another to end.
PORT_53_WAIT = 30.0
# Addresses for Unbound itself, outside the 127.0.0.x hosts the built-in scenarios use.
CANDIDATE_ADDRESSES = ("127.0.53.53", "127.0.53.54", "127.0.53.55")

CONFIG = """\
server:
    verbosity: 1
    interface: {address}
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{workdir}"
    pidfile: "{workdir}/unbound.pid"
    logfile: ""
    use-syslog: no
    log-servfail: yes
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    root-hints: "{root_hints}"
    # The lab lives on loopback, which Unbound otherwise refuses to query.
    do-not-query-localhost: no
{dnssec}    trust-anchor-signaling: no
    root-key-sentinel: no
    harden-below-nxdomain: no
    harden-referral-path: no
    aggressive-nsec: no
    qname-minimisation: no
    prefetch: no
    serve-expired: no
    minimal-responses: yes
    edns-buffer-size: 1232
remote-control:
    control-enable: no
"""


# No validator and no trust anchor for an unsigned lab; for a signed one, the lab root's DS.
NO_DNSSEC = """\
    module-config: "iterator"
    harden-dnssec-stripped: no
"""
VALIDATING = """\
    module-config: "validator iterator"
    trust-anchor-file: "{anchor}"
    harden-dnssec-stripped: yes
    ede: yes
    val-log-level: 2
"""


@dataclass(frozen=True)
class UnboundResolver:
    """Where the running Unbound listens, and its log (stderr) for failure messages."""

    address: str
    port: int
    log: Path

    def ask(self, qname: str, qtype: str, timeout: float = 10.0, *, dnssec: bool = False) -> dns.message.Message:
        query = dns.message.make_query(qname, qtype, want_dnssec=dnssec)
        return dns.query.udp(query, self.address, port=self.port, timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def unbound_skip_reason() -> str | None:
    """Why Unbound cannot run over a lab here, or None when it can."""
    if not os.path.exists(UNBOUND):
        return f"Unbound not installed ({UNBOUND} missing; apt-get install unbound)"
    if os.geteuid() != 0:
        return "needs root: Unbound reaches the lab only on port 53 (root hints carry no port)"
    return None


def skip_unless_unbound_can_run() -> None:
    reason = unbound_skip_reason()
    if reason is not None:
        pytest.skip(reason)


@contextlib.contextmanager
def lab_on_port_53(scenario: str) -> Iterator[Card]:
    """``mxdoctor.lab.running(scenario, port=53)``, waiting a while if another lab holds port 53."""
    deadline = time.monotonic() + PORT_53_WAIT
    while True:
        with contextlib.ExitStack() as stack:
            try:
                card = stack.enter_context(mxdoctor.lab.running(scenario, port=53))
            except LabError as exc:
                if "in use" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
                continue
            yield card
            return


@contextlib.contextmanager
def running_unbound(card: Card) -> Iterator[UnboundResolver]:
    """Start Unbound iterating from the lab's root hints (validating from the lab's trust anchor when
    the scenario signs zones); stop it (and wait for it) on exit."""
    if card.dns_port != 53:
        raise RuntimeError(
            f"Unbound needs the lab on port 53 (root hints carry no port); it is on {card.dns_port}"
        )
    taken = {server.address for server in card.servers}
    address = next(a for a in CANDIDATE_ADDRESSES if a not in taken)
    port = free_port(address)
    workdir = Path(tempfile.mkdtemp(prefix="mxdoctor-unbound-"))
    config = workdir / "unbound.conf"
    config.write_text(
        CONFIG.format(address=address, port=port, workdir=workdir, root_hints=card.root_hints,
                      dnssec=VALIDATING.format(anchor=card.trust_anchor) if card.trust_anchor else NO_DNSSEC),
        encoding="utf-8",
    )
    log = workdir / "unbound.log"
    resolver = UnboundResolver(address, port, log)
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [UNBOUND, "-d", "-p", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_answering(process, resolver)
        yield resolver
    finally:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_answering(process: subprocess.Popen[bytes], resolver: UnboundResolver) -> None:
    # localhost is one of Unbound's built-in local zones: it answers without any upstream query.
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Unbound exited with {process.returncode}:\n{resolver.log_text()}")
        try:
            if resolver.ask("localhost.", "A", timeout=0.3).rcode() == dns.rcode.NOERROR:
                return
        except (dns.exception.DNSException, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"Unbound did not answer within {START_TIMEOUT} s:\n{resolver.log_text()}")
