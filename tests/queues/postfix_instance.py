"""A real Postfix with its own configuration and queue directories, holding deferred mail (test helper).

Mail to ``dns.example`` is deferred by Postfix's retry transport with the text Postfix logs for a
failed AAAA lookup; everything else goes to ``[127.0.0.1]:1``, where the connection is refused.
No DNS lookups are made (``smtp_dns_support_level = disabled``) and nothing listens on the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DNS_REASON = (
    "Host or domain name not found. Name service error for name=mx.dns.example type=AAAA: "
    "Host not found, try again"
)

MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class PostfixInstance:
    root: Path

    @property
    def config(self) -> str:
        return str(self.root / "etc")

    def submit(self, sender: str, *recipients: str) -> None:
        subprocess.run(
            ["sendmail", "-C", self.config, "-f", sender, *recipients],
            input=b"Subject: mxdoctor test\n\nqueued by the test suite\n", check=True, timeout=20,
        )

    def listing(self, flag: str) -> str:
        return subprocess.run(["postqueue", "-c", self.config, flag], capture_output=True, text=True,
                              check=True, timeout=20).stdout

    def wait_deferred(self, messages: int, timeout: float = 30.0) -> None:
        """Wait until ``messages`` messages sit in the deferred queue with a reason for every recipient."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = [json.loads(line) for line in self.listing("-j").splitlines() if line.strip()]
            if len(rows) == messages and all(
                r["queue_name"] == "deferred" and all(x.get("delay_reason") for x in r["recipients"]) for r in rows
            ):
                return
            time.sleep(0.3)
        raise AssertionError(f"Postfix did not defer {messages} messages in {timeout} s:\n{self.listing('-p')}")

    def master_pid(self) -> int | None:
        try:
            return int((self.root / "spool" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def _main_cf(root: Path, extra: str) -> str:
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": f"{root}/spool",
        "data_directory": f"{root}/data",
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "myhostname": "mxdoctor-test.invalid",
        "mydestination": "",
        "relayhost": "",
        "alias_maps": "",
        "alias_database": "",
        "default_transport": "smtp:[127.0.0.1]:1",
        "smtp_connect_timeout": "2s",
        "smtp_dns_support_level": "disabled",
        "transport_maps": f"inline:{{ {{dns.example = retry:4.4.3 {DNS_REASON}}} }}",
        "maillog_file": f"{root}/data/maillog",
        "maillog_file_prefixes": str(root),
        "syslog_name": "postfix-mxdoctor-test",
    }
    for line in extra.splitlines():
        if line.strip():
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return "".join(f"{key} = {value}\n" for key, value in settings.items())


def start_postfix(extra: str = "", resolver: str | None = None) -> PostfixInstance:
    """Start a Postfix; with ``resolver`` (an IPv4 address answering on port 53) its smtp client runs
    chrooted in the queue directory, where its resolv.conf names that resolver, so it resolves
    through it (the way Debian's own chrooted Postfix uses a copy of /etc/resolv.conf)."""
    if os.geteuid() != 0:
        pytest.skip("starting Postfix needs root")
    if shutil.which("postfix") is None or shutil.which("postqueue") is None:
        pytest.skip("Postfix is not installed (Debian package postfix)")
    root = Path(tempfile.mkdtemp(prefix="mxdoctor-postfix-"))
    root.chmod(0o755)  # Postfix daemons run as the postfix user and must reach the queue
    for sub in ("etc", "spool", "data"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix")
    (root / "etc" / "main.cf").write_text(_main_cf(root, extra))
    master = MASTER_CF
    if resolver is not None:
        master = master.replace("smtp      unix  -       -       n", "smtp      unix  -       -       y")
        chroot_etc = root / "spool" / "etc"
        chroot_etc.mkdir(parents=True)
        for name in ("services", "nsswitch.conf", "host.conf"):
            if Path("/etc", name).exists():
                shutil.copy(Path("/etc", name), chroot_etc / name)
        (chroot_etc / "resolv.conf").write_text(f"nameserver {resolver}\noptions timeout:2 attempts:1\n")
    (root / "etc" / "master.cf").write_text(master)
    instance = PostfixInstance(root)
    subprocess.run(["postfix", "-c", instance.config, "start"], check=True, timeout=60,
                   stdin=subprocess.DEVNULL, capture_output=True)
    return instance


def stop_postfix(instance: PostfixInstance) -> None:
    pid = instance.master_pid()
    try:
        group = os.getpgid(pid) if pid is not None else None
    except ProcessLookupError:
        group = None
    try:
        subprocess.run(["postfix", "-c", instance.config, "stop"], timeout=30, capture_output=True)
    except subprocess.TimeoutExpired:
        pass  # the master is killed below
    deadline = time.monotonic() + 15
    while pid is not None and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid is not None and _alive(pid):
        os.kill(pid, signal.SIGKILL)
    if group is not None:
        # The master's children (pickup, qmgr) share its process group; none may outlive the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    shutil.rmtree(instance.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Running, and not a zombie left for an init that does not reap (as in some containers)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def empty_queue(instance: PostfixInstance) -> None:
    subprocess.run(["postsuper", "-c", instance.config, "-d", "ALL"], capture_output=True, timeout=30, check=True)
