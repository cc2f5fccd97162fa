"""The conformance harness: one real MTA against one lab scenario inside a network namespace of its own.

``run_case(scenario, mta)`` creates the namespace ``mxdc-<n>`` (loopback up, ``/etc/netns/<ns>/resolv.conf``
naming the lab's internal resolver), serves the scenario in it, records mxdoctor's prediction, serves a
fresh copy (so the MTA meets a cold resolver cache), starts the MTA with its own configuration, submits
one message and waits (bounded) until the MTA delivers, defers or bounces. "deliver" counts only when the
lab's SMTP server received the message. Every process in the namespace is killed and the namespace deleted
in a ``finally``. The dnssec-* scenarios run behind a real validating Unbound in the namespace instead
(``validating_resolver``). ``python conformance_harness.py`` runs the whole table and writes docs/conformance.md.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import conformance_install as install

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PYTHON = sys.executable
NS_SCRIPT = HERE / "conformance_ns.py"
DOCS = REPO / "docs" / "conformance.md"

MTAS = ("postfix", "exim", "opensmtpd", "sendmail")
SCENARIOS = (
    "healthy",
    "aaaa-servfail",
    "aaaa-nxdomain",
    "aaaa-dropped",
    "mx-servfail",
    "domain-nxdomain",
    "null-mx",
    "no-address",
    "multi-mx-partial",
    "ipv6-only-mx",
    "mx-literal",
    "cname-loop",
    "cname-chain",
    "a-servfail-aaaa-ok",
    "mx-nxdomain",
    "no-mx",
    "smtp-refused",
    "a-servfail-aaaa-refused",
)
# The knobs whose effect the run checks: (scenario, MTA, knob) with the knob set in the MTA's configuration.
KNOB_CASES: tuple[tuple[str, str, str], ...] = (
    ("aaaa-servfail", "sendmail", "WorkAroundBrokenAAAA"),
    ("aaaa-dropped", "sendmail", "WorkAroundBrokenAAAA"),
    ("ipv6-only-mx", "postfix", "inet_protocols=ipv4"),
    ("ipv6-only-mx", "exim", "dns_ipv4_lookup=*"),
    ("aaaa-nxdomain", "exim", "dns_ipv4_lookup=*"),
)
# Disagreements the models cannot express, with the reason; their tests are strict xfails.
KNOWN: dict[tuple[str, str, str], str] = {}
# Knobs that describe the installed program itself, applied to every prediction for that MTA: Debian 12
# ships OpenSMTPD 6.8.0p2, which predates null MX (the model's default follows the 7.x code).
RELEASE_KNOBS: dict[str, tuple[str, ...]] = {"opensmtpd": ("release<7",)}
# Behind a validating resolver: every case of these scenarios runs with a real Unbound in the namespace (the
# lab's trust anchor, iterating from the lab's root hints to its signed servers) as the resolver of the MTA and
# of mxdoctor's prediction alike, instead of the lab's internal resolver.
DNSSEC_SCENARIOS = (
    "dnssec-healthy",
    "dnssec-nsec3",
    "dnssec-expired",
    "dnssec-missing-rrsig",
    "dnssec-ds-mismatch",
    "dnssec-dnskey-unsigned",
    "dnssec-aaaa-nodata-bogus",
    "dnssec-nxdomain-bogus",
    "dnssec-unsupported-algorithm",
    "dnssec-internal-nonvalidating",
    "dnssec-dnskey-tcp-refused",
)
DANE_SCENARIOS = ("dnssec-dane-ok", "dnssec-dane-stale", "dnssec-dane-tlsa-servfail", "dnssec-dane-insecure")
VALIDATING_SCENARIOS = DNSSEC_SCENARIOS + DANE_SCENARIOS
# DANE: Postfix with its DANE level (it does none by default), Exim as it comes (hosts_try_dane is * by
# default) and with DANE off or required; the MTAs without DANE deliver as in dnssec-healthy.
VALIDATING_CASES: tuple[tuple[str, str, str], ...] = (
    *((s, m, "") for s in DNSSEC_SCENARIOS for m in MTAS),
    *((s, "postfix", "smtp_tls_security_level=dane") for s in DANE_SCENARIOS),
    ("dnssec-dane-stale", "postfix", ""),
    ("dnssec-aaaa-nodata-bogus", "postfix", "smtp_tls_security_level=dane"),  # the TLSA NODATA is unproven too
    *((s, "exim", "") for s in DANE_SCENARIOS),
    ("dnssec-dane-stale", "exim", "hosts_try_dane="),
    ("dnssec-dane-ok", "exim", "hosts_require_dane=*"),
    ("dnssec-dane-insecure", "exim", "hosts_require_dane=*"),
    ("dnssec-healthy", "exim", "hosts_require_dane=*"),
)
UNBOUND = "/usr/sbin/unbound"
UNBOUND_ADDRESS = "127.0.53.53"  # no lab scenario puts a server there
MTA_ADDRESS = "127.0.1.1"  # the MTA's own address in the namespace; no lab server uses 127.0.1.0/24
DUMMY_V6 = "2001:db8:25::1/128"  # RFC 3849 documentation prefix
RESOLVER_PORT = 53
READY_TIMEOUT = 30.0
PREDICT_TIMEOUT = 90.0
OUTCOME_TIMEOUT = 60.0  # from submission to the first deliver/defer/bounce
STOP_TIMEOUT = 10.0
WORKERS = int(os.environ.get("MXDOCTOR_CONFORMANCE_WORKERS", "4"))

_counter = itertools.count(1)
_counter_lock = threading.Lock()


class HarnessError(Exception):
    """A step of the harness itself failed (not the MTA's verdict)."""


# -- the namespace ------------------------------------------------------------------------------------------


class Namespace:
    """A network namespace with loopback up and its own resolv.conf (and passwd/group when given)."""

    def __init__(self, work: Path) -> None:
        with _counter_lock:
            self.name = f"mxdc-{os.getpid()}-{next(_counter)}"
        self.work = work
        self.etc = Path("/etc/netns") / self.name
        self.children: list[subprocess.Popen[bytes]] = []
        self.uids: dict[str, int] = {}

    def create(
        self,
        resolver: str,
        extra_users: Sequence[str] = (),
        library_dirs: Sequence[Path] = (),
        *,
        trust_ad: bool = False,
    ) -> None:
        self.etc.mkdir(parents=True, exist_ok=True)
        # timeout/attempts: the lab resolver answers a dropped upstream query with SERVFAIL after ~2 s.
        # trust-ad: glibc passes the resolver's AD bit on only with it, and DANE MTAs act on that bit.
        options = "options timeout:5 attempts:2" + (" trust-ad" if trust_ad else "")
        (self.etc / "resolv.conf").write_text(f"nameserver {resolver}\n{options}\n")
        if extra_users:
            self.uids = _overlay_users(self.etc, extra_users)
        if library_dirs:
            _overlay_libraries(self.etc, library_dirs)
        # A fully qualified name for this host: Sendmail sleeps and retries while its own name is unqualified.
        hosts = f"{MTA_ADDRESS} sender.conformance.invalid {socket.gethostname()}\n"
        (self.etc / "hosts").write_text(hosts + Path("/etc/hosts").read_text())
        _must(["ip", "netns", "add", self.name])
        self.exec_ok(["ip", "link", "set", "lo", "up"])
        self.exec_ok(["ip", "addr", "add", f"{MTA_ADDRESS}/32", "dev", "lo"])
        # A dual-stack host: resolvers using AI_ADDRCONFIG (OpenSMTPD's libasr, Sendmail) ask AAAA only
        # when a non-loopback IPv6 address exists. A documentation address on lo: no route leads out.
        self.exec_ok(["ip", "addr", "add", DUMMY_V6, "dev", "lo", "nodad"])

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def exec(
        self,
        cmd: Sequence[str],
        *,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(cmd),
            input=stdin.decode() if stdin is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    def exec_ok(self, cmd: Sequence[str], **kw: object) -> str:
        result = self.exec(cmd, **kw)  # type: ignore[arg-type]
        if result.returncode != 0:
            raise HarnessError(
                f"{' '.join(cmd)} (in {self.name}) exited {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()[-600:]}"
            )
        return result.stdout

    def spawn(
        self, cmd: Sequence[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.argv(cmd),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.children.append(proc)
        return proc

    def pids(self) -> list[int]:
        result = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, timeout=10
        )
        return [int(p) for p in result.stdout.split() if p.isdigit()]

    def kill_all(self) -> None:
        """Every process in the namespace (all started by this harness): TERM, then KILL."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT / 2
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.1)
        for proc in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)

    def delete(self) -> None:
        with contextlib.suppress(Exception):
            self.kill_all()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10)
        shutil.rmtree(self.etc, ignore_errors=True)


def remove_stale_namespaces() -> list[str]:
    """Delete the namespaces a harness run left behind when it was killed: ``mxdc-<pid>-<n>`` whose pid
    is gone. Namespaces of harness runs still alive (another test session) are left alone."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    removed = []
    for line in listing.splitlines():
        m = re.fullmatch(r"(mxdc-(\d+)-\d+)(?: .*)?", line.strip())
        if m is None or Path(f"/proc/{m[2]}").exists():
            continue
        ns = Namespace.__new__(Namespace)
        ns.name, ns.etc, ns.children = m[1], Path("/etc/netns") / m[1], []
        ns.delete()
        removed.append(m[1])
    return removed


def _overlay_libraries(etc: Path, dirs: Sequence[Path]) -> None:
    """A dynamic-linker cache for the namespace that also finds the unpacked MTA's private libraries.

    LD_LIBRARY_PATH is not enough: set-id binaries (Exim re-executing itself, Sendmail's setgid) run in
    secure mode, which ignores it, while the cache is always read. ``-X`` leaves every symlink alone.
    """
    conf = etc / "ld.so.conf"
    conf.write_text("".join(f"{d}\n" for d in dirs) + "include /etc/ld.so.conf.d/*.conf\n")
    _must(["ldconfig", "-X", "-C", str(etc / "ld.so.cache"), "-f", str(conf)])


def _overlay_users(etc: Path, users: Sequence[str]) -> dict[str, int]:
    """passwd/group for the namespace: the host's plus the MTA's system users. ``ip netns exec``
    bind-mounts them over /etc for the processes it starts only; the host's own files are not changed."""
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    uids = {}
    for i, user in enumerate(users):
        uid = 64000 + i
        if f"\n{user}:" not in "\n" + passwd:
            passwd += f"{user}:x:{uid}:{uid}:{user}:/nonexistent:/usr/sbin/nologin\n"
        if f"\n{user}:" not in "\n" + group:
            group += f"{user}:x:{uid}:\n"
        line = next(x for x in passwd.splitlines() if x.startswith(f"{user}:"))
        uids[user] = int(line.split(":")[2])
    (etc / "passwd").write_text(passwd)
    (etc / "group").write_text(group)
    return uids


def _must(cmd: Sequence[str]) -> None:
    result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)}: {result.stderr.strip()}")


# -- the lab ------------------------------------------------------------------------------------------------


@dataclass
class LabRun:
    card: dict[str, object]
    messages_file: Path

    def messages(self) -> list[dict[str, object]]:
        if not self.messages_file.exists():
            return []
        return [json.loads(line) for line in self.messages_file.read_text().splitlines() if line.strip()]


@contextlib.contextmanager
def lab(ns: Namespace, scenario: str, tag: str) -> Iterator[LabRun]:
    ready = ns.work / f"card-{tag}.json"
    messages = ns.work / f"messages-{tag}.jsonl"
    proc = ns.spawn(
        [
            PYTHON,
            str(NS_SCRIPT),
            "serve",
            scenario,
            "--port",
            str(RESOLVER_PORT),
            "--smtp-port",
            "25",
            "--ready-file",
            str(ready),
            "--messages-file",
            str(messages),
        ],
        ns.work / f"lab-{tag}.log",
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (ns.work / f"lab-{tag}.log").read_text(errors="replace")[-800:]
                raise HarnessError(f"lab {scenario} did not start in {ns.name}: {log}")
            time.sleep(0.1)
        yield LabRun(json.loads(ready.read_text()), messages)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)


def _unbound_config() -> tuple[str, str, str]:
    """The Unbound configuration of the lab's Unbound tests (tests/lab/_resolver_unbound.py): the server
    template and its validating and non-validating parts, shared rather than copied."""
    for folder in (HERE.parent, HERE.parent / "lab"):
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
    import _resolver_unbound as shared

    return shared.CONFIG, shared.VALIDATING, shared.NO_DNSSEC


UNBOUND_PROBE = """\
import sys, dns.message, dns.query
dns.query.udp(dns.message.make_query("localhost.", "A"), sys.argv[1], port=53, timeout=0.5)
"""


@contextlib.contextmanager
def validating_resolver(ns: Namespace, run: LabRun, tag: str) -> Iterator[str]:
    """A real Unbound on UNBOUND_ADDRESS port 53 in the namespace, validating from the lab's trust anchor and
    iterating from its root hints (the lab's servers are on port 53 there), with a cold cache: yields its
    address; stops it on exit."""
    config, validating, plain = _unbound_config()
    anchor = str(run.card.get("trust_anchor") or "")
    work = ns.work / f"unbound-{tag}"
    work.mkdir()
    dnssec = validating.format(anchor=anchor) if anchor else plain
    conf = work / "unbound.conf"
    conf.write_text(config.format(address=UNBOUND_ADDRESS, port=RESOLVER_PORT, workdir=work,
                                  root_hints=run.card["root_hints"], dnssec=dnssec))
    log = ns.work / f"unbound-{tag}.log"
    proc = ns.spawn([UNBOUND, "-d", "-p", "-c", str(conf)], log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        # localhost is one of Unbound's own local zones: it answers without asking the lab.
        while ns.exec([PYTHON, "-c", UNBOUND_PROBE, UNBOUND_ADDRESS], timeout=10).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"Unbound did not start in {ns.name}: {log.read_text(errors='replace')[-800:]}")
            time.sleep(0.1)
        yield UNBOUND_ADDRESS
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def resolver_of(ns: Namespace, run: LabRun, tag: str, validating: bool) -> Iterator[str | None]:
    """The validating Unbound's address for the cases that run behind one; None (the lab's own internal
    resolver) for the others."""
    if not validating:
        yield None
        return
    with validating_resolver(ns, run, tag) as address:
        yield address


# -- outcomes, matching -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """What the real MTA did: outcome, enhanced status code when it logged one, its log text, the proof."""

    outcome: str  # deliver | defer | bounce | none (nothing decided in time) | unproven
    status: str
    text: str
    proof: str = ""


@dataclass
class Result:
    scenario: str
    mta: str
    knob: str = ""  # a model knob applied to both the MTA's configuration and the prediction
    predicted_outcome: str = ""
    predicted_status: str = ""
    predicted_text: str = ""
    real: Observed | None = None
    error: str = ""
    seconds: float = 0.0
    missing_words: tuple[str, ...] = field(default=())

    @property
    def outcome_match(self) -> bool:
        return self.real is not None and self.real.outcome == self.predicted_outcome

    @property
    def match(self) -> bool:
        return not self.error and self.outcome_match and not self.missing_words

    @property
    def who(self) -> str:
        return f"{self.mta} with {self.knob}" if self.knob else self.mta


STOPWORDS = {"delivers", "to", "the", "a", "an", "of", "for", "with", "is", "and", "or"}
_SPLIT = re.compile(r"[\s\[\](),;<>\"'=]+")


def words(text: str) -> list[str]:
    """Comparable tokens: split on blanks, brackets and '=', trailing dots/colons dropped, lower case."""
    out = []
    for raw in _SPLIT.split(text.lower()):
        token = raw.strip(".,:") if raw != "::1" else raw
        with contextlib.suppress(ValueError):  # one spelling per address: [IPv6:0:0:0:0:0:0:0:1] is ::1
            token = ipaddress.ip_address(token.removeprefix("ipv6:")).compressed
        if token:
            out.append(token)
    return out


def missing_key_words(predicted: str, real: str) -> tuple[str, ...]:
    """The predicted text's key words (its DSN code, names, addresses, wording) absent from the real text."""
    have = set(words(real))
    return tuple(w for w in dict.fromkeys(words(predicted)) if w not in STOPWORDS and w not in have)


# -- log texts: the predicted text against the real log line, both normalised -----------------------------

# What varies from run to run or between names of the same thing is masked; the wording is compared as is.
_MASKS = (
    (re.compile(r'result="(\w+)" stat="([^"]*)"'), r"\1: \2"),  # OpenSMTPD's two fields, read as one text
    (re.compile(r"\b(?:[0-9A-F]{10,14}|\w{6}-\w{6}-\w{2}|\w{6}-\w{11}-\w{4}|[0-9A-Za-z]{8}\d{6})\b"), "<qid>"),
    (re.compile(r"\[(?:IPv6:)?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]"), "[<address>]"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<address>"),
    (re.compile(r"(?<![\w.-])(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\.?(?![\w-])"), "<host>"),
)
_LEADING_DSN = re.compile(r"([245]\.\d{1,3}\.\d{1,3}) ")


def normalise(text: str) -> str:
    """A log text with queue ids, addresses and host names masked, blanks collapsed."""
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return " ".join(text.split())


@dataclass(frozen=True)
class TextCheck:
    """The predicted log text (its DSN code apart) against the real log line, both normalised."""

    predicted: str
    dsn: str  # the DSN code the predicted text starts with; "" when it has none
    real: str
    same: bool  # the predicted text occurs in the real line, and the DSN code is the one it logged


def compare_texts(predicted: str, real: str, real_status: str = "") -> TextCheck:
    want, got = normalise(predicted), normalise(real)
    m = _LEADING_DSN.match(want)
    dsn, body = (m[1], want[m.end():]) if m else ("", want)
    dsn_ok = not dsn or dsn == real_status or f"dsn={dsn}" in got
    return TextCheck(body, dsn, got, dsn_ok and body in got)


def text_check(r: Result) -> TextCheck | None:
    """The comparison for a case whose prediction is a log text (a defer or a bounce); None otherwise:
    a delivery is proven by the message, and mxdoctor's "delivers to" is no log line."""
    if r.real is None or r.predicted_outcome not in ("defer", "bounce"):
        return None
    return compare_texts(r.predicted_text, r.real.text, r.real.status)


# -- one case -----------------------------------------------------------------------------------------------


def run_case(scenario: str, mta: str, knob: str = "") -> Result:
    from conformance_mtas import DRIVERS

    result = Result(scenario, mta, knob)
    started = time.monotonic()
    driver_cls = DRIVERS[mta]
    base = install.BASE / "run"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{scenario}-{mta}-", dir=base))
    work.chmod(0o755)
    ns = Namespace(work)
    try:
        driver = driver_cls(ns, work, knob)
        libraries = install.library_dirs(driver.unpacked.root) if driver.unpacked else []
        validating = scenario in VALIDATING_SCENARIOS
        resolver = UNBOUND_ADDRESS if validating else "127.0.0.10"
        ns.create(resolver=resolver, extra_users=driver.users, library_dirs=libraries, trust_ad=validating)
        with lab(ns, scenario, "predict") as run, resolver_of(ns, run, "predict", validating) as address:
            _predict(ns, run, result, address)
        with lab(ns, scenario, "mta") as run, resolver_of(ns, run, "mta", validating):
            domain = str(run.card["domains"][0])  # type: ignore[index]
            rcpt = f"conformance@{domain}"
            token = f"mxdc-{scenario}-{mta}-{os.getpid()}-{int(time.time())}"
            driver.start()
            try:
                driver.submit(rcpt, token)
                result.real = _await(driver, run, rcpt, token)
            finally:
                with contextlib.suppress(Exception):
                    driver.stop()
    except (HarnessError, install.InstallError, subprocess.TimeoutExpired, OSError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        ns.delete()
        if not os.environ.get("MXDOCTOR_CONFORMANCE_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    if result.real is not None:
        result.real = _tidy(result.real, work)
        # For a delivery the proof names the lab server that received the message.
        real = f"{result.real.text} {result.real.proof}"
        result.missing_words = missing_key_words(result.predicted_text, real)
    result.seconds = time.monotonic() - started
    return result


def _tidy(seen: Observed, work: Path) -> Observed:
    """The observation without the temporary work directory's name, its queue listing kept short."""
    proof = " ".join(seen.proof.replace(str(work), "<work>").split())
    text = seen.text.replace(str(work), "<work>")
    return Observed(seen.outcome, seen.status, text, proof if len(proof) <= 240 else proof[:237] + "...")


def _predict(ns: Namespace, run: LabRun, result: Result, resolver: str | None = None) -> None:
    card = ns.work / "card-predict.json"
    knobs = [f"{result.mta}={k}" for k in RELEASE_KNOBS.get(result.mta, ())]
    knobs += [f"{result.mta}={result.knob}"] if result.knob else []
    # Behind a validating resolver the prediction asks that resolver, as the MTA does.
    knobs += [f"--resolver={resolver}:{RESOLVER_PORT}"] if resolver else []
    out = ns.exec_ok([PYTHON, str(NS_SCRIPT), "predict", str(card), *knobs], timeout=PREDICT_TIMEOUT)
    verdicts = {v["mta"]: v for v in json.loads(out)["verdicts"]}
    mine = verdicts[result.mta]
    result.predicted_outcome = mine["outcome"]
    result.predicted_status = mine["status"]
    result.predicted_text = mine["text"]


def _await(driver: MtaDriver, run: LabRun, rcpt: str, token: str) -> Observed:
    deadline = time.monotonic() + OUTCOME_TIMEOUT
    while time.monotonic() < deadline:
        seen = driver.observe(rcpt)
        if seen is not None:
            if seen.outcome != "deliver":
                return seen
            # The log says delivered: it counts once the lab holds the message (allow it a moment).
            for _ in range(30):
                got = [m for m in run.messages() if token in str(m.get("data", ""))]
                if got:
                    where = f"received by lab server {got[0]['server']} for {', '.join(got[0]['rcpt_tos'])}"  # type: ignore[arg-type]
                    return Observed("deliver", seen.status, seen.text, where)
                time.sleep(0.2)
            return Observed(
                "unproven", seen.status, seen.text, "logged as delivered, but no lab server received it"
            )
        time.sleep(0.25)
    return Observed("none", "", f"no outcome within {OUTCOME_TIMEOUT:.0f} s; queue: {driver.queue_summary()}")


class MtaDriver:
    """One MTA in one namespace: its configuration, process, submission, and reading of log and queue."""

    name = ""
    users: tuple[str, ...] = ()  # system users the MTA needs (added to the namespace's passwd only)
    unpacks = False  # runs from the unpacked Debian packages (conformance_install), not the host's

    knobs: dict[str, str] = {}  # model knob name -> the configuration that sets it

    def __init__(self, ns: Namespace, work: Path, knob: str = "") -> None:
        if knob and knob not in self.knobs:
            raise HarnessError(f"{self.name} has no configuration for the knob {knob!r}")
        self.ns = ns
        self.work = work
        self.knob = knob
        self.setting = self.knobs.get(knob, "")
        self.unpacked = install.unpacked(self.name) if self.unpacks else None

    def bin(self, relative: str) -> str:
        assert self.unpacked is not None
        return str(self.unpacked.path(relative))

    def start(self) -> None:
        raise NotImplementedError

    def submit(self, rcpt: str, token: str) -> None:
        raise NotImplementedError

    def observe(self, rcpt: str) -> Observed | None:
        """The first outcome the MTA logged for ``rcpt``, or None while it has logged none."""
        raise NotImplementedError

    def queue_summary(self) -> str:
        return ""

    def stop(self) -> None:
        pass


SUBMIT = """\
import smtplib, sys
with smtplib.SMTP(sys.argv[1], 25, timeout=30) as client:
    client.sendmail("", [sys.argv[2]], sys.stdin.buffer.read())
"""


def submit_smtp(ns: Namespace, rcpt: str, token: str) -> None:
    """Submit over SMTP to the MTA's own address, from inside the namespace (for MTAs whose command-line
    submission needs set-id bits that an unpacked copy lacks)."""
    ns.exec_ok([PYTHON, "-c", SUBMIT, MTA_ADDRESS, rcpt], stdin=message(token, rcpt))


def message(token: str, rcpt: str) -> bytes:
    return (
        f"From: conformance@sender.conformance.invalid\nTo: {rcpt}\nSubject: conformance {token}\n"
        f"X-Mxdoctor-Token: {token}\n\nconformance test message {token}\n"
    ).encode()


# -- the whole table ----------------------------------------------------------------------------------------


def run_table(cases: Sequence[tuple[str, str, str]], workers: int = WORKERS) -> list[Result]:
    remove_stale_namespaces()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda c: run_case(*c), cases))


INTRO = """Each real MTA ran against each lab scenario inside a network namespace of its own: the lab
on ports 53 and 25 there, `/etc/netns/<ns>/resolv.conf` naming the lab's internal resolver (127.0.0.10),
the MTA bound to {address} with a configuration of its own. One message was submitted; the table shows
what mxdoctor predicted (its analysis of the same lab through the same resolver, from inside the
namespace) next to what the MTA did. **deliver** is proven by the message arriving at the lab SMTP
server, not by a log line. A row matches when the outcome is the same and every key word of the
predicted text (its DSN code, names, addresses and wording) occurs in the real one."""


DISAGREEMENTS = """Where a real program disagreed with its model, the model was changed, not this table:
each change is a note citing CONFORMANCE in docs/mta-behaviour.md (Exim's routing-failure texts; AAAA
NXDOMAIN making the host unusable for the MTAs that ask AAAA first, because the caching resolver then
answers the A query from the NXDOMAIN it cached, RFC 2308 §5; Sendmail's null-MX and MX-SERVFAIL texts;
OpenSMTPD before 7.0 has no null MX support, now the model's `release<7` knob, which every OpenSMTPD
prediction here applies because Debian 12 ships 6.8.0p2). Rows marked "known" are disagreements the
models cannot express; their tests are strict xfails. Rows "`MTA with KNOB`" set that knob in the MTA's
configuration and in the prediction alike (mxdoctor's "with this change it delivers" alternatives)."""


VALIDATING_INTRO = """The `dnssec-*` scenarios ran the same way, but behind a real validating resolver:
Debian's Unbound in the namespace on {address} port 53, with the lab's trust anchor (the DS of its signed
root, from the card) and the lab's root hints, iterating to the lab's signed servers, a fresh one (cold
cache) for the prediction and for the MTA. resolv.conf names it with `options trust-ad`, without which glibc
clears the AD bit DANE clients act on. mxdoctor's prediction asks the same Unbound and validates from the
same trust anchor. The DANE scenarios ran with Postfix's `smtp_dns_support_level = dnssec` and
`smtp_tls_security_level = dane` (the knob `smtp_tls_security_level=dane`; the lab's SMTP server offers
STARTTLS with the certificate its TLSA record describes) and with Exim as it comes, which does DANE by
default, then with DANE off (`hosts_try_dane=`, an empty list) and required (`hosts_require_dane=*`).
`dnssec-dane-insecure` publishes a stale TLSA record in an unsigned zone: DANE does not apply there."""


VALIDATING_FINDINGS = """What these runs changed in the models (docs/mta-behaviour.md): Postfix logs
"Server certificate not verified" (4.7.5) for a certificate that matches no TLSA record, not "not trusted";
Exim 4.96 does DANE without any setting (hosts_try_dane defaults to *), so it defers on a stale TLSA record
and on a failed TLSA lookup, including the TLSA NODATA whose proof is missing in dnssec-aaaa-nodata-bogus
(where Postfix defers too with its DANE level, and delivers without it); Exim's texts are the observed ones; with
hosts_require_dane = * it fails at once an exchanger whose address is not DNSSEC-secure ("DANE error: HOST
lookup not DNSSEC") or that has no TLSA record ("tlsa lookup FAIL"), now the model's `dane_required`. The
Postfix driver's master.cf gained the tlsmgr service: without it Postfix has no TLS ("TLS is required, but
our TLS engine is unavailable"). A DANE client behind a resolver that does not validate never sees a secure
TLSA record, so the models apply DANE only through a view not found non-validating."""


def render(results: Sequence[Result]) -> str:
    from conformance_mtas import INSTALL_NOTES

    ok = sum(r.match for r in results)
    lines = [
        "# Conformance: mxdoctor's MTA models against the real programs",
        "",
        "Generated by `tests/conformance/conformance_harness.py` (`make conformance`); do not edit.",
        "",
        textwrap.fill(INTRO.format(address=MTA_ADDRESS), width=104),
        "",
        f"Result: **{ok} of {len(results)}** cases match.",
        "",
        "| scenario | MTA | predicted | real | match |",
        "|---|---|---|---|---|",
    ]
    validating = [r for r in results if r.scenario in VALIDATING_SCENARIOS]
    lines += [_row(r) for r in results if r.scenario not in VALIDATING_SCENARIOS]
    lines += [
        "",
        textwrap.fill(DISAGREEMENTS, width=104),
        "",
    ]
    if validating:
        lines += [
            "## Behind a validating resolver: DNSSEC and DANE",
            "",
            textwrap.fill(VALIDATING_INTRO.format(address=UNBOUND_ADDRESS), width=104),
            "",
            f"Result: **{sum(r.match for r in validating)} of {len(validating)}** cases match.",
            "",
            "| scenario | MTA | predicted | real | match |",
            "|---|---|---|---|---|",
            *(_row(r) for r in validating),
            "",
            textwrap.fill(VALIDATING_FINDINGS, width=104),
            "",
        ]
    lines += [*render_texts(results), ""]
    lines += [
        "## How the MTAs are installed",
        "",
        *INSTALL_NOTES,
        "",
        "## How to run it",
        "",
        "As root (network namespaces, port 53): `.venv/bin/pytest -m conformance` runs the table as tests",
        "(one per scenario and MTA; not root: skipped). `make conformance` runs it and rewrites this page.",
        "MXDOCTOR_CONFORMANCE_WORKERS sets how many cases run at once (default 4);",
        "MXDOCTOR_CONFORMANCE_KEEP=1 keeps each case's work directory (configuration, logs) under",
        f"`{install.BASE}/run/`.",
        "",
    ]
    return "\n".join(lines)


def _row(r: Result) -> str:
    real = r.real
    predicted = f"**{r.predicted_outcome}** `{_cell(r.predicted_text)}`" if r.predicted_outcome else "—"
    if r.error:
        shown, mark = f"harness error: {_prose(r.error)}", "✗ error"
    elif real is not None:
        shown = f"**{real.outcome}** `{_cell(real.text)}`" + (
            f"<br>{_prose(real.proof)}" if real.proof else ""
        )
        if r.match:
            mark = "✓"
        elif (r.scenario, r.mta, r.knob) in KNOWN:
            mark = f"✗ **MISMATCH**, known: {KNOWN[(r.scenario, r.mta, r.knob)]}"
        elif not r.outcome_match:
            mark = "✗ **MISMATCH** (outcome)"
        else:
            mark = "✗ **MISMATCH** (text lacks: " + ", ".join(f"`{w}`" for w in r.missing_words) + ")"
    else:
        shown, mark = "—", "✗"
    return f"| {r.scenario} | {r.who} | {predicted} | {shown} | {mark} |"


TEXTS_INTRO = """For every case where mxdoctor predicts a defer or a bounce, the text its verdict says the MTA
will log, next to the line the MTA logged, both normalised: queue ids, addresses and host names masked
(`<qid>`, `<address>`, `<host>`), blanks collapsed, OpenSMTPD's `result="X" stat="Y"` read as `X: Y`. They
are the same when the predicted text occurs word for word in the real line and its leading DSN code, if
any, is the one the MTA logged."""

TEXTS_CHANGES = """The models' texts were set from these lines where the real program said otherwise (notes citing
CONFORMANCE in docs/mta-behaviour.md): for an exchanger that does not exist (`mx-nxdomain`) Postfix logs
"Host not found", where the model said "Host found but no data record of requested type"; for a refused
connection (`smtp-refused`) it logs `connect to host[address]:25: Connection refused`, where the model
left the address empty (`host[]:25`) and added the probe's words; for a domain with neither MX nor
address (`no-mx`) Exim logs "Unrouteable address", not "all relevant MX records point to non-existent
hosts"; Sendmail logs "no data known" and "host not found" with the DSN codes shown, where the model said
"..."; OpenSMTPD logs "Network error on destination MXs", not "Connection refused". Sendmail asks AAAA
first, connects, and asks A only when AAAA gave no address or every IPv6 connect failed
(`a-servfail-aaaa-ok`: A answers SERVFAIL and Sendmail delivers over IPv6, where the model said defer;
`a-servfail-aaaa-refused`: IPv6 refuses, Sendmail asks A and defers on its SERVFAIL with 4.4.3, not with
the refused connection), now the model's `a_after_v6_connect`."""


def render_texts(results: Sequence[Result]) -> list[str]:
    checks = [(r, c) for r in results if (c := text_check(r)) is not None]
    same = sum(c.same for _, c in checks)
    lines = [
        "",
        "## Log texts: predicted and real",
        "",
        textwrap.fill(TEXTS_INTRO, width=104),
        "",
        f"Result: **{same} of {len(checks)}** texts are the same.",
        "",
        "| scenario | MTA | DSN | predicted text | real log line | same |",
        "|---|---|---|---|---|---|",
    ]
    for r, c in checks:
        mark = "✓" if c.same else "✗ **DIFFERS**"
        texts = f"`{_cell(c.predicted)}` | `{_cell(c.real)}`"
        lines.append(f"| {r.scenario} | {r.who} | {c.dsn or '—'} | {texts} | {mark} |")
    return [*lines, "", textwrap.fill(TEXTS_CHANGES, width=104)]


def _prose(text: str) -> str:
    """Text outside a code span: angle brackets would be read as HTML."""
    return _cell(text).replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def main(argv: Sequence[str]) -> int:
    if os.geteuid() != 0:
        print("the conformance harness needs root (network namespaces, port 53)", file=sys.stderr)
        return 3
    mtas = [m for m in argv if m in MTAS] or list(MTAS)
    scenarios = [s for s in argv if s in (*SCENARIOS, *VALIDATING_SCENARIOS)] or [*SCENARIOS, *VALIDATING_SCENARIOS]
    cases = [(s, m, "") for s in scenarios if s in SCENARIOS for m in mtas]
    cases += [c for c in (*KNOB_CASES, *VALIDATING_CASES) if c[0] in scenarios and c[1] in mtas]
    results = run_table(cases)
    for r in results:
        real = r.real.outcome if r.real else "-"
        print(
            f"{'ok ' if r.match else 'BAD'} {r.scenario:<18} {r.who:<10} predicted {r.predicted_outcome:<8} "
            f"real {real:<8} {r.seconds:5.1f}s {r.error or (r.real.text if r.real else '')}"
        )
    texts = [(r, c) for r in results if (c := text_check(r)) is not None]
    for r, c in texts:
        if not c.same:
            print(f"TEXT {r.scenario:<18} {r.who:<10} predicted {c.dsn} {c.predicted!r}\n     real {c.real!r}")
    if "--write-docs" in argv:
        DOCS.write_text(render(results), encoding="utf-8")
        print(f"wrote {DOCS}")
    return 0 if all(r.match for r in results) and all(c.same for _, c in texts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
