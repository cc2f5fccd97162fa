"""The real MTAs of the conformance harness: a minimal configuration template each, how to start one in a
namespace, submit a message, and read its outcome from its own log and queue.

Every MTA runs from its own work directory (configuration, queue, log), bound to the harness address
127.0.1.1 so that no lab server address counts as "myself", with short timeouts and retry intervals.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import conformance_install as install
from conformance_harness import (
    MTA_ADDRESS,
    PYTHON,
    HarnessError,
    MtaDriver,
    Namespace,
    Observed,
    message,
    submit_smtp,
)

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
{setting}
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

# The TLS manager: without it Postfix's smtp client has no entropy and disables TLS ("TLS is required, but
# our TLS engine is unavailable" with DANE).
POSTFIX_TLSMGR = "tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n"

_POSTFIX_LINE = re.compile(r"to=<(?P<rcpt>[^>]*)>, (?P<rest>.*?status=(?P<status>sent|deferred|bounced) .*)$")
_OUTCOME = {"sent": "deliver", "deferred": "defer", "bounced": "bounce"}
_POSTFIX_TLS = re.compile(r"\w+ TLS connection established to \S+")


class Postfix(MtaDriver):
    name = "postfix"
    knobs = {  # the later line wins in main.cf
        "inet_protocols=ipv4": "inet_protocols = ipv4",
        # DANE needs DNSSEC-validated answers (the AD bit of a validating resolver) and logs the TLS peer.
        "smtp_tls_security_level=dane": "smtp_dns_support_level = dnssec\nsmtp_tls_security_level = dane\n"
        "smtp_tls_loglevel = 1",
    }

    def start(self) -> None:
        etc = self.work / "etc"
        for sub in ("etc", "spool", "data"):
            (self.work / sub).mkdir()
        shutil.chown(self.work / "data", "postfix")
        main_cf = POSTFIX_MAIN_CF.format(work=self.work, address=MTA_ADDRESS, setting=self.setting)
        (etc / "main.cf").write_text(main_cf)
        (etc / "master.cf").write_text(_postfix_master_cf() + POSTFIX_TLSMGR)
        self.ns.exec_ok(["postfix", "-c", str(etc), "start"])

    def submit(self, rcpt: str, token: str) -> None:
        self.ns.exec_ok(
            ["sendmail", "-C", str(self.work / "etc"), "-f", "", rcpt], stdin=message(token, rcpt)
        )

    def observe(self, rcpt: str) -> Observed | None:
        log = self.work / "data" / "maillog"
        if not log.exists():
            return None
        tls = ""
        for line in log.read_text(errors="replace").splitlines():
            # With smtp_tls_loglevel = 1 (the DANE knob): "Verified TLS ..." is DANE-authenticated.
            if t := _POSTFIX_TLS.search(line):
                tls = f"; {t[0].rstrip(':')}"
            m = _POSTFIX_LINE.search(line)
            if m and m["rcpt"] == rcpt:
                dsn = re.search(r"dsn=(\d\.\d+\.\d+)", m["rest"])
                return Observed(_OUTCOME[m["status"]], dsn[1] if dsn else "", m["rest"] + tls, self.queue_summary())
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

# -- Exim (exim4-daemon-light, unpacked) ---------------------------------------------------------------------

EXIM_CONF = """\
# exim_path: Exim re-executes itself; the compiled-in /usr/sbin/exim4 is not there.
exim_path = {exim}
primary_hostname = sender.conformance.invalid
qualify_domain = sender.conformance.invalid
exim_user = Debian-exim
exim_group = Debian-exim
spool_directory = {work}/spool
log_file_path = {work}/log/%slog
pid_file_path = {work}/exim.pid
# One address of its own, so that no lab server counts as this host.
local_interfaces = {address}
daemon_smtp_ports = 25
trusted_users = root
never_users =
keep_environment =
tls_advertise_hosts =
dns_retrans = 5s
dns_retry = 2
acl_smtp_rcpt = refuse_all
{setting}

begin acl
refuse_all:
  deny

begin routers
dnslookup:
  driver = dnslookup
  transport = remote_smtp
  no_more

begin transports
remote_smtp:
  driver = smtp
  connect_timeout = 5s
{transport_setting}

begin retry
*   *   F,10m,10s
"""

_EXIM_LINE = re.compile(r"^\S+ \S+ \S+ (?P<text>(?P<mark>=>|==|\*\*) (?P<rcpt>\S+?):? .*)$")
_EXIM_OUTCOME = {"=>": "deliver", "==": "defer", "**": "bounce"}


class Exim(MtaDriver):
    name = "exim"
    users = ("Debian-exim",)  # compiled into Debian's exim4
    knobs = {"dns_ipv4_lookup=*": "dns_ipv4_lookup = *", "hosts_try_dane=": "", "hosts_require_dane=*": ""}
    # Knobs that are options of the smtp transport, not of the main configuration.
    transport_knobs = {"hosts_try_dane=": "  hosts_try_dane =", "hosts_require_dane=*": "  hosts_require_dane = *"}
    unpacks = True

    @property
    def conf(self) -> str:
        return str(self.work / "exim.conf")

    def start(self) -> None:
        uid = self.ns.uids["Debian-exim"]
        for sub in ("spool", "log"):
            (self.work / sub).mkdir()
            os.chown(self.work / sub, uid, uid)
        exim = self.bin("usr/sbin/exim4")
        conf = EXIM_CONF.format(exim=exim, work=self.work, address=MTA_ADDRESS, setting=self.setting,
                                transport_setting=self.transport_knobs.get(self.knob, ""))
        (self.work / "exim.conf").write_text(conf)
        self.ns.exec_ok([exim, "-C", self.conf, "-bd", "-q5s"])

    def submit(self, rcpt: str, token: str) -> None:
        self.ns.exec_ok([self.bin("usr/sbin/exim4"), "-C", self.conf, "-odb", "-f", "<>", rcpt],
                        stdin=message(token, rcpt))

    def observe(self, rcpt: str) -> Observed | None:
        log = self.work / "log" / "mainlog"
        if not log.exists():
            return None
        for line in log.read_text(errors="replace").splitlines():
            m = _EXIM_LINE.match(line)
            if m and m["rcpt"] == rcpt:
                return Observed(_EXIM_OUTCOME[m["mark"]], "", m["text"], self.queue_summary())
        return None

    def queue_summary(self) -> str:
        result = self.ns.exec([self.bin("usr/sbin/exim4"), "-C", self.conf, "-bp"], timeout=20)
        return " ".join(result.stdout.split()) or "queue empty"

    def stop(self) -> None:
        pid_file = self.work / "exim.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        wait_gone(pid_file)

# -- OpenSMTPD (opensmtpd, unpacked) ------------------------------------------------------------------------

OPENSMTPD_CONF = """\
listen on {address}
action "relay" relay helo sender.conformance.invalid
# An open relay, inside a namespace of its own: only the harness can reach it.
match from any for any action "relay"
"""

# The spool, control socket and chroot directory are compiled in (/var/spool/smtpd, /var/run/smtpd.sock,
# /var/lib/opensmtpd/empty): each command runs in a private mount namespace where the work directory's
# copies are bind-mounted over /var/spool, /run and /var/lib.
OPENSMTPD_WRAP = """\
#!/bin/sh
mount --bind {work}/spool /var/spool && mount --bind {work}/run /run && mount --bind {work}/varlib /var/lib \\
  && exec "$@"
"""

_OPENSMTPD_LINE = re.compile(
    r"mta delivery .*? to=<(?P<rcpt>[^>]*)> .*?"
    r"(?P<text>(?:relay=.*)?result=\"(?P<result>\w+)\" stat=\"[^\"]*\")"
)
_OPENSMTPD_OUTCOME = {"Ok": "deliver", "TempFail": "defer", "PermFail": "bounce"}


class OpenSmtpd(MtaDriver):
    name = "opensmtpd"
    users = ("opensmtpd", "opensmtpq")  # compiled into Debian's smtpd
    unpacks = True

    def wrapped(self, *cmd: str) -> list[str]:
        return ["unshare", "--mount", "--propagation", "private", str(self.work / "wrap.sh"), *cmd]

    def start(self) -> None:
        for sub in ("spool", "run", "varlib/opensmtpd/empty"):
            (self.work / sub).mkdir(parents=True)
        (self.work / "smtpd.conf").write_text(OPENSMTPD_CONF.format(address=MTA_ADDRESS))
        wrap = self.work / "wrap.sh"
        wrap.write_text(OPENSMTPD_WRAP.format(work=self.work))
        wrap.chmod(0o755)
        self.log = self.work / "smtpd.log"
        # -d: stay in the foreground and log to stderr, which is the log the harness reads.
        self.ns.spawn(self.wrapped(self.bin("usr/sbin/smtpd"), "-d", "-f", str(self.work / "smtpd.conf")),
                      self.log)
        wait_listening(self.ns, MTA_ADDRESS, 25)

    def submit(self, rcpt: str, token: str) -> None:
        submit_smtp(self.ns, rcpt, token)

    def observe(self, rcpt: str) -> Observed | None:
        if not self.log.exists():
            return None
        for line in self.log.read_text(errors="replace").splitlines():
            m = _OPENSMTPD_LINE.search(line)
            if m and m["rcpt"] == rcpt:
                return Observed(_OPENSMTPD_OUTCOME.get(m["result"], m["result"]), "", m["text"],
                                self.queue_summary())
        return None

    def queue_summary(self) -> str:
        result = self.ns.exec(self.wrapped(self.bin("usr/sbin/smtpctl"), "show", "queue"), timeout=20)
        return " ".join(result.stdout.split()) or "queue empty"


# -- Sendmail (sendmail-bin + sendmail-cf + m4, unpacked) ----------------------------------------------------

SENDMAIL_MC = """\
divert(0)dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `sender.conformance.invalid')dnl
dnl Probing interfaces would make every lab address "this host".
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`QUEUE_DIR', `{work}/mqueue')dnl
define(`STATUS_FILE', `{work}/statistics')dnl
define(`confPID_FILE', `{work}/sendmail.pid')dnl
undefine(`ALIAS_FILE')dnl
define(`confTO_CONNECT', `5s')dnl
define(`confTO_INITIAL', `10s')dnl
define(`confMIN_QUEUE_AGE', `0')dnl
define(`confLOG_LEVEL', `9')dnl
DAEMON_OPTIONS(`Port=25, Addr={address}, Name=MTA')dnl
{setting}
MAILER(`smtp')dnl
"""

# Sendmail logs only through syslog(3) to /dev/log. Each command runs in a private mount namespace whose
# /dev is a small tmpfs (the usual device nodes bound in) where /dev/log is the harness's own socket.
SENDMAIL_WRAP = """\
#!/bin/sh
set -e
mount --bind /dev {work}/olddev
mount -t tmpfs -o mode=755 tmpfs /dev
for node in null zero full random urandom tty; do
  touch /dev/$node && mount --bind {work}/olddev/$node /dev/$node
done
ln -s /proc/self/fd /dev/fd
touch /dev/log && mount --bind {work}/log.sock /dev/log
exec "$@"
"""

_SENDMAIL_LINE = re.compile(
    r"to=<?(?P<rcpt>[^>,\s]+)>?, .*?(?P<text>(?:relay=.*?)?dsn=(?P<dsn>\d\.\d+\.\d+), stat=(?P<stat>.*))$"
)


class SyslogSink:
    """A syslog socket (datagrams) whose messages are appended to a file, on a thread of the harness."""

    def __init__(self, path: Path, out: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        path.chmod(0o666)
        self.sock.settimeout(0.2)
        self.out = out
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="syslog-sink", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.out.open("ab") as out:
            while not self.stopping.is_set():
                try:
                    data = self.sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                out.write(data.rstrip(b"\0\n") + b"\n")
                out.flush()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


SENDMAIL_QUEUE_WAIT = 15.0  # seconds: three queue runs of the daemon (-q5s)


class Sendmail(MtaDriver):
    name = "sendmail"
    knobs = {"WorkAroundBrokenAAAA": "define(`confBIND_OPTS', `WorkAroundBrokenAAAA')dnl"}
    unpacks = True
    queued_since: float | None = None

    def wrapped(self, *cmd: str) -> list[str]:
        return ["unshare", "--mount", "--propagation", "private", str(self.work / "wrap.sh"), *cmd]

    @property
    def cf(self) -> str:
        return str(self.work / "sendmail.cf")

    def start(self) -> None:
        (self.work / "mqueue").mkdir(mode=0o700)
        (self.work / "olddev").mkdir()
        mc = SENDMAIL_MC.format(work=self.work, address=MTA_ADDRESS, setting=self.setting)
        (self.work / "conformance.mc").write_text(mc)
        cf_dir = self.bin("usr/share/sendmail/cf") + "/"
        generated = self.ns.exec_ok([self.bin("usr/bin/m4"), f"-D_CF_DIR_={cf_dir}", cf_dir + "m4/cf.m4",
                                     str(self.work / "conformance.mc")])
        Path(self.cf).write_text(generated)
        wrap = self.work / "wrap.sh"
        wrap.write_text(SENDMAIL_WRAP.format(work=self.work))
        wrap.chmod(0o755)
        self.log = self.work / "syslog"
        self.sink = SyslogSink(self.work / "log.sock", self.log)
        # The daemon (listening on the harness address, queue runs every 5 s) is the MTA of record; the
        # submission below delivers at once in its own process (-odi), as sendmail does for local mail.
        self.ns.exec_ok(self.wrapped(self.bin("usr/libexec/sendmail/sendmail"), "-C", self.cf, "-bd", "-q5s"))
        wait_listening(self.ns, MTA_ADDRESS, 25)

    def submit(self, rcpt: str, token: str) -> None:
        # Its exit status reports the recipient's fate (68 for an unknown host): the log says the rest.
        sendmail = self.bin("usr/libexec/sendmail/sendmail")
        argv = self.wrapped(sendmail, "-C", self.cf, "-odi", "-f", "<>", rcpt)
        self.ns.exec(argv, stdin=message(token, rcpt), timeout=90)

    def observe(self, rcpt: str) -> Observed | None:
        if not self.log.exists():
            return None
        queued = None
        for line in self.log.read_text(errors="replace").splitlines():
            m = _SENDMAIL_LINE.search(line)
            if m and m["rcpt"] == rcpt:
                if m["stat"] == "queued":
                    # Accepted for a later queue run (a temporary failure before any delivery attempt, as
                    # when the recipient domain cannot be canonified): wait for the queue run's verdict.
                    queued = queued or m
                    continue
                outcome = {"2": "deliver", "4": "defer"}.get(m["dsn"][0], "bounce")
                return Observed(outcome, m["dsn"], m["text"], self.queue_summary())
        if queued is not None:
            self.queued_since = self.queued_since or time.monotonic()
            if time.monotonic() - self.queued_since > SENDMAIL_QUEUE_WAIT:
                queue = self.queue_summary()
                return Observed("defer", queued["dsn"], f"{queued['text']}; mailq: {queue}", queue)
        return None

    def queue_summary(self) -> str:
        result = self.ns.exec(self.wrapped(self.bin("usr/libexec/sendmail/sendmail"), "-C", self.cf, "-bp"),
                              timeout=20)
        return " ".join(result.stdout.split()) or "queue empty"

    def stop(self) -> None:
        pid_file = self.work / "sendmail.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        wait_gone(pid_file)
        self.sink.close()


def wait_listening(ns: Namespace, address: str, port: int, timeout: float = 20.0) -> None:
    """Wait until something in the namespace accepts TCP connections on address:port."""
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1).close()"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ns.exec([PYTHON, "-c", probe], timeout=10).returncode == 0:
            return
        time.sleep(0.2)
    raise HarnessError(f"nothing listens on {address} port {port} in {ns.name} after {timeout:.0f} s")


def wait_gone(pid_file: Path, timeout: float = 10.0) -> None:
    """Wait until the process named in a pid file has exited (the harness kills leftovers anyway)."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


DRIVERS: dict[str, type[MtaDriver]] = {
    "postfix": Postfix,
    "exim": Exim,
    "opensmtpd": OpenSmtpd,
    "sendmail": Sendmail,
}

INSTALL_NOTES = [
    "- **Postfix**: the Debian package `postfix` installed on the host, run as a second instance",
    "  with `postfix -c <work>/etc` (its own main.cf, master.cf, queue and `maillog_file`, no chroot,",
    "  `inet_interfaces = 127.0.1.1`, `inet_protocols = all`, `smtp_host_lookup = dns`, 1 s backoff);",
    "  submission with its `sendmail -C`. The host's /etc/postfix is not touched.",
    "- **Exim, OpenSMTPD, Sendmail**: their Debian packages conflict with postfix and with each other,",
    "  so none is installed: `apt-get download` fetches `exim4-daemon-light exim4-base`, `opensmtpd`,",
    "  and `sendmail-bin sendmail-cf m4`, and `dpkg-deb -x` unpacks each MTA into",
    f"  `{install.BASE}/<mta>/`, with every shared library the host lacks (the packages'",
    "  `lib*` dependencies, fetched the same way, recursively). The harness does this itself on first",
    "  use (`tests/conformance/conformance_install.py`) and reuses the unpack afterwards. Nothing is",
    "  registered with dpkg.",
    "- What each namespace gets in `/etc/netns/<ns>/` (bind-mounted over /etc by `ip netns exec`, for the",
    "  processes in the namespace only): `resolv.conf` (the lab's internal resolver), `hosts` (a fully",
    "  qualified name for the host), `passwd`/`group` with the MTA's system users (`Debian-exim`;",
    "  `opensmtpd`, `opensmtpq`), and an `ld.so.cache` built with `ldconfig -X -C` that also lists the",
    "  unpacked libraries (LD_LIBRARY_PATH would not do: set-id binaries ignore it). Loopback carries",
    "  127.0.1.1 (the MTA) and 2001:db8:25::1 (so that AI_ADDRCONFIG resolvers ask AAAA, as on a",
    "  dual-stack host).",
    "- **Exim** runs with `-C <work>/exim.conf` (`exim_path`, spool, log and pid paths of its own,",
    "  `local_interfaces = 127.0.1.1`, one dnslookup router, one smtp transport), as a daemon `-bd -q5s`;",
    "  submission `exim -odb -f <>`; outcome from its mainlog (`=>`, `==`, `**`).",
    "- **OpenSMTPD** runs `smtpd -d -f <work>/smtpd.conf` (relay everything, listen on 127.0.1.1); its",
    "  compiled-in spool, socket and chroot paths are the work directory's, bind-mounted over /var/spool,",
    "  /run and /var/lib in a private mount namespace (`unshare --mount`); submission over SMTP (its",
    "  `sendmail` needs a setgid bit the unpacked copy lacks); outcome from its log (`mta delivery`).",
    "- **Sendmail** runs with `-C <work>/sendmail.cf`, generated by m4 from the sendmail-cf macros",
    "  (OSTYPE linux, own queue, no interface probing, daemon on 127.0.1.1, 5 s queue runs); submission",
    "  `sendmail -odi -f <>`. It logs only to syslog: in a private mount namespace /dev is a small tmpfs",
    "  whose /dev/log is the harness's own datagram socket; outcome from those lines (`dsn=`, `stat=`)",
    "  and its queue (`-bp`).",
    "- **Unbound** (the `dnssec-*` cases): the Debian package `unbound` installed on the host, run as",
    "  `unbound -d -p -c <work>/unbound-<run>/unbound.conf` in the namespace (the configuration of",
    "  tests/lab/_resolver_unbound.py: validator and iterator, the lab's trust anchor and root hints).",
]
