"""The probe against a real Postfix ``smtpd`` (Debian package): its own configuration, queue and data
directories, listening on a free loopback port with a certificate made here, STARTTLS at level ``may``.
Started and stopped by the test; skipped when not root or without Postfix."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from smtp_servers import MX_NAME, make_cert, timed

from _helpers import free_port, stage
from mxdoctor import evidence
from mxdoctor.checks import _registry as registry
from mxdoctor.checks import smtp as codes
from mxdoctor.checks._context import Context
from mxdoctor.smtp import probe

pytestmark = pytest.mark.postfix

BANNER = "ESMTP mxdoctor-postfix-probe-test"

# smtpd and what it calls on MAIL and RCPT; no chroot, no pickup, no delivery agents.
MASTER_CF = """\
{listen} inet n       -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
error     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {host}
smtpd_banner = $myhostname {banner}
mydestination =
mynetworks = 192.0.2.0/24
relay_domains = lab.test
relayhost =
alias_maps =
alias_database =
default_transport = discard:
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = may
smtpd_tls_session_cache_database =
maillog_file = {root}/data/maillog
maillog_file_prefixes = {root}
syslog_name = postfix-mxdoctor-smtp-test
"""


@dataclass(frozen=True)
class Smtpd:
    root: Path
    port: int

    @property
    def config(self) -> str:
        return str(self.root / "etc")

    def master_pid(self) -> int | None:
        try:
            return int((self.root / "spool" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log(self) -> str:
        try:
            return (self.root / "data" / "maillog").read_text(errors="replace")
        except OSError:
            return ""


def _listening(port: int, timeout: float) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop(pf: Smtpd) -> None:
    pid = pf.master_pid()
    subprocess.run(["postfix", "-c", pf.config, "stop"], timeout=60, capture_output=True)
    deadline = time.monotonic() + 15
    while pid is not None and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)  # only the master this test started, by its own pid file


@pytest.fixture(scope="module")
def smtpd() -> Iterator[Smtpd]:
    if os.geteuid() != 0:
        pytest.skip("starting Postfix needs root")
    if shutil.which("postfix") is None:
        pytest.skip("Postfix is not installed (Debian package postfix)")
    root = Path(tempfile.mkdtemp(prefix="mxdoctor-smtpd-"))
    root.chmod(0o755)  # the daemons run as the postfix user and must reach the queue
    for sub in ("etc", "spool", "data", "tls"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix")
    files, _, _ = make_cert(root / "tls", "smtpd", [MX_NAME])
    port = free_port("127.0.0.1")
    (root / "etc" / "main.cf").write_text(
        MAIN_CF.format(root=root, host=MX_NAME, banner=BANNER, cert=files.cert, key=files.key)
    )
    (root / "etc" / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{port}"))
    pf = Smtpd(root, port)
    try:
        started = subprocess.run(["postfix", "-c", pf.config, "start"], timeout=60, capture_output=True, text=True)
        assert started.returncode == 0, started.stderr + pf.log()
        assert _listening(port, 15), f"smtpd did not listen on 127.0.0.1:{port}\n{pf.log()}"
        yield pf
    finally:
        _stop(pf)
        shutil.rmtree(root, ignore_errors=True)


def _probe(pf: Smtpd, rcpt: str | None = None) -> evidence.SmtpProbe:
    return timed(
        probe.probe_address(
            MX_NAME, "127.0.0.1", pf.port, helo_name="probe.lab.test", rcpt=rcpt,
            mail_from="probe@lab.test" if rcpt else None,
            timeouts=probe.Timeouts(connect=2, greeting=5, command=5, total=30),
        ),
        15,
    )


def test_postfix_greeting_extensions_and_certificate(smtpd: Smtpd) -> None:
    p = _probe(smtpd)
    assert [s.stage for s in p.stages] == ["connect", "greeting", "ehlo", "starttls", "ehlo-tls", "quit"]
    assert all(s.ok for s in p.stages), (p.stages, smtpd.log())
    greeting = stage(p, "greeting")
    assert greeting.code == 220 and greeting.text == f"{MX_NAME} {BANNER}"
    assert stage(p, "ehlo").text == MX_NAME
    keywords = {e.split(" ")[0] for e in p.extensions}
    # the list learnt inside TLS: Postfix no longer offers STARTTLS there
    assert {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES"} <= keywords and "STARTTLS" not in keywords
    tls = p.tls
    assert tls is not None and tls.protocol in ("TLSv1.2", "TLSv1.3") and tls.cipher
    assert tls.subject == f"CN={MX_NAME}" and tls.sans == (MX_NAME,)
    assert tls.matches_host is True and tls.expired is False
    assert tls.verify_error and "self-signed" in tls.verify_error


def test_postfix_accepts_a_relay_recipient_and_defers_relaying(smtpd: Smtpd) -> None:
    ok = _probe(smtpd, rcpt="someone@lab.test")
    assert stage(ok, "mail").code == 250 and stage(ok, "rcpt").code == 250
    denied = _probe(smtpd, rcpt="someone@elsewhere.example")
    rcpt = stage(denied, "rcpt")
    # Postfix's default smtpd_relay_restrictions end in defer_unauth_destination: 454, not 554
    assert rcpt.code == 454 and rcpt.text and "Relay access denied" in rcpt.text
    assert stage(denied, "rset").ok and stage(denied, "quit").ok
    ev = evidence.Evidence(target="lab.test", domain="lab.test", command="smtp", smtp=(denied,))
    found = {f.code for f in registry.run(Context.build(ev), families=["smtp"])}
    assert codes.RCPT_TEMPFAIL.code in found and codes.TLS_CERT_UNVERIFIED.code in found
    assert codes.RCPT_REJECTED.code not in found
