"""The real MTAs of the conformance harness: a minimal configuration template each, how to start one in a
namespace, submit a message, and read its outcome from its own log and queue.

Every MTA runs from its own work directory (configuration, queue, log), bound to the harness address
127.0.1.1 so that no lab server address counts as "myself", with short timeouts and retry intervals.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
import time
from pathlib import Path

import conformance_install as install
from conformance_harness import MTA_ADDRESS, MtaDriver, Observed, message

# -- Postfix (the host package, run with `postfix -c DIR`) --------------------------------------------------

POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {work}/spool
data_directory = {work}/data
mail_owner = postfix
setgid_group = postdrop
# One address of its own: with inet_interfaces = all every 127.0.0.x would be "myself" (mail loops back).
inet_interfaces = {address}
inet_protocols = all
myhostname = sender.conformance.invalid
mydestination =
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
smtp_host_lookup = dns
smtp_dns_support_level = enabled
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 5s
smtp_tls_security_level = none
maillog_file = {work}/data/maillog
syslog_name = postfix-conformance
"""

def _postfix_master_cf() -> str:
    """The queue tests' minimal master.cf (no chroot, no listener), shared rather than copied."""
    module = sys.modules.get("postfix_instance")
    if module is None:
        path = Path(__file__).resolve().parent.parent / "queues" / "postfix_instance.py"
        spec = importlib.util.spec_from_file_location("postfix_instance", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["postfix_instance"] = module
        spec.loader.exec_module(module)
    text: str = module.MASTER_CF
    return text

_POSTFIX_LINE = re.compile(r"to=<(?P<rcpt>[^>]*)>, (?P<rest>.*?status=(?P<status>sent|deferred|bounced) .*)$")
_OUTCOME = {"sent": "deliver", "deferred": "defer", "bounced": "bounce"}


class Postfix(MtaDriver):
    name = "postfix"

    def start(self) -> None:
        etc = self.work / "etc"
        for sub in ("etc", "spool", "data"):
            (self.work / sub).mkdir()
        shutil.chown(self.work / "data", "postfix")
        (etc / "main.cf").write_text(POSTFIX_MAIN_CF.format(work=self.work, address=MTA_ADDRESS))
        (etc / "master.cf").write_text(_postfix_master_cf())
        self.ns.exec_ok(["postfix", "-c", str(etc), "start"])

    def submit(self, rcpt: str, token: str) -> None:
        self.ns.exec_ok(
            ["sendmail", "-C", str(self.work / "etc"), "-f", "", rcpt], stdin=message(token, rcpt)
        )

    def observe(self, rcpt: str) -> Observed | None:
        log = self.work / "data" / "maillog"
        if not log.exists():
            return None
        for line in log.read_text(errors="replace").splitlines():
            m = _POSTFIX_LINE.search(line)
            if m and m["rcpt"] == rcpt:
                dsn = re.search(r"dsn=(\d\.\d+\.\d+)", m["rest"])
                return Observed(_OUTCOME[m["status"]], dsn[1] if dsn else "", m["rest"], self.queue_summary())
        return None

    def queue_summary(self) -> str:
        result = self.ns.exec(["postqueue", "-c", str(self.work / "etc"), "-j"], timeout=20)
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip().startswith("{")]
        if not rows:
            return "queue empty"
        return "; ".join(
            f"{r['queue_name']} queue: "
            + ", ".join(f"{x['address']} ({x.get('delay_reason', '')})" for x in r["recipients"])
            for r in rows
        )

    def stop(self) -> None:
        pid_file = self.work / "spool" / "pid" / "master.pid"
        self.ns.exec(["postfix", "-c", str(self.work / "etc"), "stop"], timeout=30)
        wait_gone(pid_file)


def wait_gone(pid_file: Path, timeout: float = 10.0) -> None:
    """Wait until the process named in a pid file has exited (the harness kills leftovers anyway)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


DRIVERS: dict[str, type[MtaDriver]] = {"postfix": Postfix}

INSTALL_NOTES = [
    "- **Postfix**: the Debian package `postfix` installed on the host, run as a second instance",
    "  with `postfix -c <work>/etc` (its own main.cf, master.cf, queue and `maillog_file`); the host's",
    "  /etc/postfix is not touched.",
    "- **Exim, OpenSMTPD, Sendmail**: their Debian packages conflict with postfix and with each other,",
    "  so none is installed: `apt-get download` fetches `exim4-daemon-light exim4-base`, `opensmtpd`, and",
    "  `sendmail-bin sendmail-cf m4`, and `dpkg-deb -x` unpacks each MTA into",
    f"  `{install.BASE}/<mta>/`, with any shared library the host lacks (the packages' `lib*` dependencies,",
    "  fetched the same way) found through LD_LIBRARY_PATH. The harness does this itself on first use and",
    "  reuses the unpack afterwards (`tests/conformance/conformance_install.py`). System users an MTA needs",
    "  exist only in the namespace's own passwd/group (`/etc/netns/<ns>/`, bind-mounted by `ip netns exec`).",
]
