"""The realdns harness: real Debian DNS servers and resolvers in one namespace, every fault × resolver cell.

``world()`` creates the namespace (the conformance suite's ``Namespace``), writes the zones and configs
(realdns_servers), starts every daemon in the foreground and waits until each answers. ``run_cell`` sends
the MTA's queries through one resolver (realdns_ns, as glibc's stub does) and then runs ``mxdoctor diagnose
--json`` through the same resolver with the fake root's hints, and compares the root cause, side and
servers with what the fault calls for. ``python realdns_harness.py --write-docs`` writes docs/realdns.md;
``--update-docs FAULT...`` runs those faults again and replaces only their rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "conformance"))

import realdns_servers as servers  # noqa: E402
from conformance_harness import HarnessError, Namespace, _cell, remove_stale_namespaces  # noqa: E402

REPO = HERE.parent.parent
PYTHON = sys.executable
MXDOCTOR = str(Path(sys.executable).with_name("mxdoctor"))
NS_SCRIPT = HERE / "realdns_ns.py"
DOCS = REPO / "docs" / "realdns.md"
BASE = Path(os.environ.get("MXDOCTOR_REALDNS_DIR", "/var/tmp/mxdoctor-realdns"))
READY_TIMEOUT = 30.0
PROBE_TIMEOUT = 60.0  # three stub lookups of at most 10 s each, with room
DIAGNOSE_TIMEOUT = 90.0
# mxdoctor's run deadline (default 30 s): the cells that wait out dropped queries take about 20 s of it on an
# idle machine, and a busy one (two cores shared, 16 cells at once) must not cut them short.
RUN_DEADLINE = 60
WORKERS = int(os.environ.get("MXDOCTOR_REALDNS_WORKERS", "16"))
MTAS = ("exchange2010", "exchange2013", "postfix", "exim", "sendmail", "opensmtpd")
# Cells where mxdoctor is known to differ from the expected diagnosis, with the reason (strict xfails):
# none left; a new one goes here with its reason rather than into the expectation.
KNOWN: dict[tuple[str, str], str] = {}


@dataclass
class World:
    ns: Namespace
    work: Path

    @property
    def hints(self) -> Path:
        return self.work / "root.hints"

    @property
    def silent_hints(self) -> Path:
        return self.work / "silent-root.hints"

    @property
    def trust_anchor(self) -> Path:
        """The signed root's KSK as a DS record, which the validating resolvers are configured with."""
        return self.work / "root.key"


@contextlib.contextmanager
def world() -> Iterator[World]:
    BASE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="world-", dir=BASE))
    work.chmod(0o755)
    ns = Namespace(work)
    try:
        ns.create(resolver=servers.RESOLVERS["unbound"])
        ns.exec_ok(["ip", "addr", "add", servers.NET, "dev", "lo"])
        batch = "".join(f"addr add {a}/32 dev lo\n" for a in servers.all_addresses() if a != servers.ROOT)
        ns.exec_ok(["ip", "-batch", "-"], stdin=batch.encode())
        for daemon in servers.write_world(work):
            log = work / f"{daemon.name}.log"
            proc = ns.spawn(daemon.argv, log)
            _await_ready(ns, daemon, proc, log)
        yield World(ns, work)
    finally:
        ns.delete()
        if not os.environ.get("MXDOCTOR_REALDNS_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


def _await_ready(ns: Namespace, daemon: servers.Daemon, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    cmd = ["dig", "+time=1", "+tries=1", f"@{daemon.ready_address}", daemon.ready_name, daemon.ready_type]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        out = ns.exec(cmd, timeout=10).stdout
        if "status: NOERROR" in out:
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-1200:] if log.exists() else ""
    raise HarnessError(f"{daemon.name} did not answer {daemon.ready_name} {daemon.ready_type}: {tail}")


# -- one cell -----------------------------------------------------------------------------------------------


@dataclass
class Cell:
    fault: str
    resolver: str
    answers: list[dict[str, object]] = field(default_factory=list)  # the MTA's queries through the resolver
    code: str = ""
    side: str = ""
    servers: tuple[str, ...] = ()
    zone: str = ""  # the zone the root cause names (DNSSEC findings)
    validation: str = ""  # what mxdoctor says of the resolver view: "validates", "not validating" or ""
    message: str = ""
    verdicts: dict[str, str] = field(default_factory=dict)  # MTA -> deliver/defer/bounce/unknown
    findings: tuple[str, ...] = ()
    exit_code: int = -1
    seconds: float = 0.0
    diagnose_seconds: float = 0.0  # the `mxdoctor diagnose` process alone
    error: str = ""

    @property
    def spec(self) -> servers.Fault:
        return next(f for f in servers.FAULTS if f.key == self.fault)

    @property
    def problems(self) -> list[str]:
        """Where mxdoctor's conclusion differs from the expected one (empty: it matches)."""
        f = self.spec
        if self.error:
            return [f"error: {self.error}"]
        out = []
        if self.code not in f.expect_codes:
            out.append("root cause")
        if self.side != f.expect_side:
            out.append("side")
        if set(self.servers) != set(servers.expected_servers(f)):
            out.append("servers")
        if f.signed and self.zone != f.zone:
            out.append("zone")
        if f.signed and self.validation != ("validates" if self.resolver in servers.VALIDATING else "not validating"):
            out.append("view")
        expected = expected_mtas(self)
        if expected is not None and _failing(self) != expected:
            out.append("verdicts")
        if set(f.expect_also) - set(self.findings):
            out.append("missing " + ", ".join(sorted(set(f.expect_also) - set(self.findings))))
        return out

    @property
    def match(self) -> bool:
        return not self.problems


def expected_mtas(cell: Cell) -> str | None:
    """The MTAs a signed fault stops, as the table writes them (None: not checked)."""
    f = cell.spec
    if not f.signed:
        return None
    kind = f.expect_mtas if cell.resolver in servers.VALIDATING else f.expect_mtas_control
    return {
        "defer": "defer: " + ", ".join(MTAS),
        "aaaa": "defer: exchange2010, sendmail",  # they stop at the failed AAAA lookup; the others ask A
        # and Exim, whose DANE (on by default) gets SERVFAIL for the TLSA lookup: the deleted proof also
        # covered _25._tcp.<host> (docs/conformance.md: real Exim defers on the lab's twin)
        "aaaa-dane": "defer: exchange2010, exim, sendmail",
        "bounce": "bounce: " + ", ".join(MTAS),
        "deliver": "all deliver",
    }[kind]


def run_cell(w: World, fault: str, resolver: str) -> Cell:
    cell = Cell(fault, resolver)
    spec = cell.spec
    address = servers.RESOLVERS[resolver]
    started = time.monotonic()
    try:
        edns = ["--edns"] if spec.signed else []  # so that the resolver can give its EDE
        out = w.ns.exec_ok([PYTHON, str(NS_SCRIPT), "probe", *edns, address, spec.domain], timeout=PROBE_TIMEOUT)
        cell.answers = json.loads(out)
        hints = w.silent_hints if spec.silent_root else w.hints
        cmd = [MXDOCTOR, "diagnose", spec.domain, "--resolver", address, "--no-system",
               "--root-hints", str(hints), "--deadline", str(RUN_DEADLINE), "--json"]
        if spec.signed:
            cmd += ["--trust-anchor", str(w.trust_anchor)]
        diagnosing = time.monotonic()
        result = w.ns.exec(cmd, timeout=DIAGNOSE_TIMEOUT)
        cell.diagnose_seconds = round(time.monotonic() - diagnosing, 1)
        if result.returncode not in (0, 1, 2, 3) or not result.stdout.strip():
            raise HarnessError(f"mxdoctor exited {result.returncode}: {result.stderr.strip()[-600:]}")
        _read_diagnosis(cell, json.loads(result.stdout))
    except (HarnessError, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
        cell.error = f"{type(exc).__name__}: {exc}"
    cell.seconds = round(time.monotonic() - started, 1)
    return cell


_ADDRESS = re.compile(r"\b10\.53\.\d+\.\d+\b")


def _read_diagnosis(cell: Cell, d: dict[str, object]) -> None:
    verdicts: list[dict[str, object]] = d["verdicts"]  # type: ignore[assignment]
    findings: list[dict[str, object]] = d["findings"]  # type: ignore[assignment]
    cell.exit_code = int(d["exit_code"])  # type: ignore[call-overload]
    cell.verdicts = {str(v["mta"]): str(v["outcome"]) for v in verdicts}
    cell.findings = tuple(str(f["code"]) for f in findings)
    if "DNSSEC_RESOLVER_NOT_VALIDATING" in cell.findings:
        cell.validation = "not validating"
    elif "DNSSEC_RESOLVER_VALIDATES" in cell.findings:
        cell.validation = "validates"
    failing = {str(c) for v in verdicts if v["outcome"] in ("defer", "bounce") for c in v["because"]}  # type: ignore[attr-defined]
    causes = [f for f in findings if f["code"] in failing]
    if not causes:  # nothing fails: the headline is the worst finding there is
        causes = [f for f in findings if f["severity"] in ("CRITICAL", "ERROR", "WARNING")] or [
            f for f in findings if f["code"] == "MAIL_ROUTE_OK"] or findings[:1]
    if not causes:
        return
    top = causes[0]
    cell.code = str(top["code"])
    cell.message = str(top["message"])
    # A DNSSEC finding's subject begins with the zone it names ("example.net. mail.example.net. A").
    cell.zone = str(top["subject"]).split()[0] if cell.code.startswith("DNSSEC_") else ""
    receiver = str(top["remediation"]["receiver"])  # type: ignore[index]
    cell.side = "" if cell.code == "MAIL_ROUTE_OK" else (
        "sender" if receiver.startswith("Nothing") or not receiver else "receiver"
    )
    # The servers named: every authoritative server in the findings of that code (one per server or zone).
    resolvers = set(servers.RESOLVERS.values())
    named = [
        a for f in findings if f["code"] == cell.code for s in f["seen"]  # type: ignore[attr-defined]
        for a in _ADDRESS.findall(str(s.get("server") or "")) if a not in resolvers
    ]
    cell.servers = tuple(sorted(set(named)))


# -- the whole table ----------------------------------------------------------------------------------------


def schedule(cells: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The cells in the order to start them: first those that wait out dropped queries (their verdicts hang
    on timers, and mxdoctor's run deadline is near: starting them before the CPU-bound cells keeps them
    from being starved on a busy machine), then the rest in table order."""
    slow = {f.key for f in servers.FAULTS
            if f.silent_root or any("DropAction" in r for r in f.rules1 + f.rules2)}
    return sorted(cells, key=lambda c: c[0] not in slow)


def run_table(cells: Sequence[tuple[str, str]], workers: int = WORKERS) -> list[Cell]:
    remove_stale_namespaces()
    with world() as w, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="realdns") as pool:
        futures = {c: pool.submit(run_cell, w, *c) for c in schedule(cells)}
        return [futures[c].result() for c in cells]


def all_cells() -> list[tuple[str, str]]:
    return [(f.key, r) for f in servers.FAULTS for r in f.resolvers]


def missing() -> str:
    """Why the suite cannot run here ('' when it can)."""
    if os.geteuid() != 0:
        return "the realdns suite needs root (network namespaces, port 53)"
    if shutil.which("ip") is None or shutil.which("dig") is None:
        return "the realdns suite needs ip and dig"
    gone = servers.missing_binaries()
    if gone:
        return f"the realdns suite needs the Debian packages {' '.join(servers.PACKAGES)} (missing {gone[0]})"
    return ""


# -- docs/realdns.md ----------------------------------------------------------------------------------------

LIMITS = """The verdict column is mxdoctor's MTA models over the lookups of the MTA's view (the
`--resolver`), which asks as the MTA does: MX first, then each exchanger's AAAA and then its A, one after
the other (the order of Exchange, Exim, Sendmail and OpenSMTPD; Postfix asks A first, so where a resolver
answers the A query from the NXDOMAIN the AAAA query left in its cache, Postfix's verdict reads the A answer
of the authoritative servers, which a fresh resolver would pass on), and waits for each answer as long as the
host's stub resolver would (resolv.conf timeout × attempts, glibc's default 5 s × 2; a note under each
verdict says how long that MTA waits; Exchange's own client waits 5 s per server). The other views ask
in parallel on mxdoctor's own time-outs (2 s, then 4 s). Where a resolver's answer depends on order or
timing, the notes under a cell say where that differs between resolvers: BIND applies a fresh AAAA
NXDOMAIN to the A query that follows; BIND and PowerDNS Recursor turn silence into SERVFAIL (10 s, 3 s),
which an MTA reads as a temporary failure, while Unbound and Knot Resolver (10.9 s) leave the stub to
time out."""

INTRO = """Real authoritative servers and resolvers from Debian ran in one network namespace, each on its own
address: Knot serves the root, NSD the TLDs com. and net., BIND (authoritative only) each mail zone
`example-<fault>.com` (MX 10 `mail.example-<fault>.net.`), and the MX host's zone `example-<fault>.net` is
served by NSD (ns1) and PowerDNS Authoritative with the bind backend (ns2), each behind a dnsdist whose
rules inject the fault. Each fault has its own zones and server addresses (the signed zones of the DNSSEC
faults are described in their own section below). Each of the five resolvers
served in turn as the MTA's internal resolver: first the MTA's own queries went through it as glibc's stub
asks them (MX, then AAAA and A of the exchanger, one after the other, no EDNS, 5 s × 2 tries), then
`mxdoctor diagnose DOMAIN --resolver RESOLVER --no-system --root-hints <the fake root> --deadline 60
--json` (the authoritative view on, default timers; the run's deadline doubled so that a busy machine does
not cut the cells that wait out dropped queries). A cell matches when mxdoctor's root cause (the first finding that
makes an MTA defer or bounce, else the worst finding), its side (the receiver when the finding asks the
receiving side to change something) and the authoritative servers it names equal the expected ones."""


SIGNED = """For the DNSSEC faults the root, com. and net. are signed too (Knot serves the signed root, NSD the
signed TLDs), and each fault has its own signed zones: `example-<fault>.com` (BIND) with MX 10
`mail.example-<fault>.net.`, and the MX host's zone `example-<fault>.net`, served by NSD behind dnsdist
(ns1) and by a Knot that serves the signed file as it is (ns2); the zone Knot signs itself is served by
that Knot on both addresses. BIND's `dnssec-signzone` signed the files (ECDSA P-256, NSEC or NSEC3; the
root RSA/SHA-256), and where a fault needs it the signed file was then edited, as the field breaks
zones; Knot's automatic signing signed the Knot zone. The suite writes the root's trust anchor (its
KSK's DS, `root.key`) and gives it to validating twins of four resolvers: Unbound
(`trust-anchor-file`, `ede: yes`), BIND (`trust-anchors { . static-ds ...; }`), Knot Resolver
(`trust_anchors.add_file`) and PowerDNS Recursor (`addTA` in its Lua configuration,
`extended-resolution-errors=yes`); dnsmasq, forwarding to an Unbound that does not validate, is the
control where MTAs deliver what validating resolvers fail. The MTA's queries carry an OPT record (glibc's
`options edns0`, no DO) so that a resolver can say why it failed; `mxdoctor diagnose` ran with `--trust-anchor
root.key`. A cell matches when the root cause, the zone it names, the side, the servers and the MTAs that
do not deliver are the expected ones, mxdoctor says that the validating resolvers validate and that
dnsmasq does not, and the healthy zones give DNSSEC_SECURE, the unsupported algorithm DNSSEC_INSECURE."""

EDE_TEXT = """Extended DNS Errors (RFC 8914) the validating resolvers gave the MTA's queries on the signed faults
where one of them failed (and Knot Resolver's on an insecure answer). BIND 9.18 gives none for DNSSEC
failures; PowerDNS Recursor gives none for a bogus NXDOMAIN proof; the others do not always agree on the
code: for a DS that matches no key, EDE 9 "DNSKEY Missing" or 6 "DNSSEC Bogus"; for the missing NODATA
proof Unbound may say EDE 9 ("no NSEC3 records ... for DS mail.example-snodata.net. while building chain
of trust": not knowing where the zone cut is, it asks for a DS at the MX host, whose denial is missing
too) where the others say EDE 12 "NSEC Missing", and which of the two depends on what its cache holds.
Knot Resolver adds EDE 0 "LSLC: unsupported digest/key" to the insecure answers of the zone whose DS has
algorithm 253, which is information, not a failure. mxdoctor does not depend on the code: it validates
the answers itself, and says a view validates from its AD bits, a SERVFAIL with a validation EDE, or
(as with BIND, which gives no EDE) a SERVFAIL for an answer that the servers give and that does not
validate."""


def _answers(cell: Cell) -> str:
    parts = []
    for a in cell.answers:
        took = float(a["seconds"])  # type: ignore[arg-type]
        parts.append(f"{a['qtype']} {a['rcode']}" + _ede(a) + (f" {took:.1f} s" if took >= 0.5 else ""))
    return ", ".join(parts) or "—"


def _ede(answer: dict[str, object]) -> str:
    """" EDE 7" (or " EDE 6, 9") for an answer that carried Extended DNS Errors."""
    codes = [str(e).split()[0] for e in answer.get("ede") or ()]  # type: ignore[attr-defined]
    return f" EDE {', '.join(codes)}" if codes else ""


def _failing(cell: Cell) -> str:
    if cell.error:
        return "—"
    out = []
    for outcome in ("defer", "bounce", "unknown"):
        who = [m for m in MTAS if cell.verdicts.get(m) == outcome]
        if who:
            out.append(f"{outcome}: " + ", ".join(who))
    return "; ".join(out) or "all deliver"


def _names(addresses: Sequence[str]) -> str:
    names = servers.server_names()
    return ", ".join(names.get(a, a) for a in sorted(addresses)) or "—"


def resolver_notes(cells: Sequence[Cell]) -> dict[tuple[str, str], str]:
    """Where one resolver answers the MTA's queries unlike most resolvers, and whether the verdicts change."""
    notes: dict[tuple[str, str], str] = {}
    by_fault: dict[str, list[Cell]] = {}
    for c in cells:
        by_fault.setdefault(c.fault, []).append(c)
    for fault, group in by_fault.items():
        shapes = Counter(_shape(c) for c in group)
        if len(shapes) < 2:
            continue
        common, _ = shapes.most_common(1)[0]
        usual = next(c for c in group if _shape(c) == common)
        for c in group:
            if _shape(c) == common:
                continue
            title = servers.RESOLVER_TITLES[c.resolver]
            note = f"{title} answers {_shape_text(c)} where most answer {_shape_text(usual)}"
            if _failing(c) != _failing(usual):
                note += f": the verdicts change ({_failing(c)} instead of {_failing(usual)})"
            notes[(fault, c.resolver)] = note
    return notes


def _shape(cell: Cell) -> tuple[str, ...]:
    return tuple(f"{a['qtype']} {a['rcode']}{_ede(a)}" for a in cell.answers)


def _shape_text(cell: Cell) -> str:
    return ", ".join(_shape(cell)) or "nothing"


def ede_by_resolver(cells: Sequence[Cell]) -> dict[str, str]:
    """For each validating resolver, the Extended DNS Errors it gave the MTA's queries, fault by fault."""
    out: dict[str, str] = {}
    for resolver in servers.VALIDATING:
        parts = []
        for c in cells:
            if c.resolver != resolver or not c.spec.signed:
                continue
            codes = sorted({str(e).split()[0] for a in c.answers for e in a.get("ede") or ()},  # type: ignore[attr-defined]
                           key=int)
            if codes or any(a["rcode"] == "SERVFAIL" for a in c.answers):
                parts.append(f"{c.fault}: {', '.join(codes) or 'none'}")
        out[resolver] = "; ".join(parts) or "—"
    return out


def _mark(c: Cell, notes: dict[tuple[str, str], str]) -> str:
    if c.match:
        mark = "✓"
    elif (c.fault, c.resolver) in KNOWN:
        mark = f"✗ **MISMATCH** ({', '.join(c.problems)}), known: {KNOWN[(c.fault, c.resolver)]}"
    else:
        mark = f"✗ **MISMATCH** ({', '.join(c.problems)})"
    note = notes.get((c.fault, c.resolver))
    if note:
        mark += f"<br>*{_cell(note)}*"
    return mark


def render(cells: Sequence[Cell], seconds: float) -> str:
    ok = sum(c.match for c in cells)
    notes = resolver_notes(cells)
    lines = [
        "# Real DNS: mxdoctor against real authoritative servers and resolvers",
        "",
        "Generated by `tests/realdns/realdns_harness.py` (`make realdns`); do not edit.",
        "",
        textwrap.fill(INTRO, width=104),
        "",
        f"Result: **{ok} of {len(cells)}** cells match ({len(cells) - ok} mismatches); the table took "
        f"{seconds:.0f} s.",
        "",
        "## Faults",
        "",
        "| fault | mail domain | how it is injected | expected root cause | side | servers |",
        "|---|---|---|---|---|---|",
    ]
    for f in servers.FAULTS:
        if not f.signed:
            lines.append(
                f"| {f.title} | `{f.domain}` | {f.how} | {' or '.join(f.expect_codes)} | "
                f"{f.expect_side or '—'} | {_names(servers.expected_servers(f))} |"
            )
    lines += [
        "",
        "## Fault × resolver",
        "",
        "| fault | resolver | the resolver answered the MTA | mxdoctor: root cause | side | servers "
        "| MTAs not delivering | diagnose took | match |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        if not c.spec.signed:
            lines.append(
                f"| {c.spec.title} | {servers.RESOLVER_TITLES[c.resolver]} | {_answers(c)} | "
                f"{c.code or '—'} | {c.side or '—'} | {_names(c.servers)} | {_failing(c)} | "
                f"{c.diagnose_seconds:.1f} s | {_mark(c, notes)} |"
            )
    lines += ["", textwrap.fill(LIMITS, width=104), "", "## DNSSEC: signed zones through validating resolvers", "",
              textwrap.fill(SIGNED, width=104), "", "### Signed faults", "",
              "| fault | mail domain | how it is made | expected root cause | zone | side | servers "
              "| MTAs not delivering (validating resolver; dnsmasq) |",
              "|---|---|---|---|---|---|---|---|"]
    for f in servers.SIGNED:
        mtas = {"defer": "all defer", "aaaa": "Exchange 2010, Sendmail defer", "bounce": "all bounce",
                "aaaa-dane": "Exchange 2010, Sendmail defer (AAAA), Exim (DANE: the TLSA proof is gone too)",
                "deliver": "all deliver"}
        control = f"; {mtas[f.expect_mtas_control]}" if f.key in servers.DNSMASQ_CONTROL else ""
        also = f" (and {', '.join(f.expect_also)})" if f.expect_also else ""
        lines.append(
            f"| {f.title} | `{f.domain}` | {f.how} | {' or '.join(f.expect_codes)}{also} | {f.zone or '—'} | "
            f"{f.expect_side or '—'} | {_names(servers.expected_servers(f))} | {mtas[f.expect_mtas]}{control} |"
        )
    lines += [
        "",
        "### Signed fault × resolver",
        "",
        "| fault | resolver | the resolver answered the MTA (EDE) | mxdoctor: root cause | zone | side | servers "
        "| mxdoctor: the view | MTAs not delivering | diagnose took | match |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        if c.spec.signed:
            lines.append(
                f"| {c.spec.title} | {servers.RESOLVER_TITLES[c.resolver]} | {_answers(c)} | "
                f"{c.code or '—'} | {c.zone or '—'} | {c.side or '—'} | {_names(c.servers)} | "
                f"{c.validation or 'undetermined'} | {_failing(c)} | {c.diagnose_seconds:.1f} s | {_mark(c, notes)} |"
            )
    lines += ["", textwrap.fill(EDE_TEXT, width=104), "", "| resolver | EDE per fault |", "|---|---|"]
    lines += [f"| {servers.RESOLVER_TITLES[r]} | {text} |" for r, text in ede_by_resolver(cells).items()]
    lines += [
        "",
        "## How to run it",
        "",
        "As root: `.venv/bin/pytest -m realdns` runs the table as tests (one per fault and resolver; not root",
        "or without the packages: skipped). `make realdns` runs it and rewrites this page. The Debian",
        f"packages: {', '.join(servers.PACKAGES)} (the Makefile's DEBS; the services they would start are",
        "not used: the harness starts its own daemons with its own configurations in the namespace).",
        "`MXDOCTOR_REALDNS_WRITE_DOCS=1 .venv/bin/pytest -m realdns` rewrites it too when the whole table ran.",
        "MXDOCTOR_REALDNS_KEEP=1 keeps the configurations and logs under",
        f"`{BASE}/`.",
        "",
    ]
    return "\n".join(lines)


_ROW = re.compile(r"^\| ([^|]+?) \| ([^|]+?) \|")
_TOOK = re.compile(r"the table took (\d+) s")


def update_docs(old: str, cells: Sequence[Cell], seconds: float) -> str:
    """The page again with the rows of ``cells`` (whole faults, run on their own) in place of theirs, every other
    row as the last whole run wrote it, and the counts taken over all rows."""
    rerun = {c.fault for c in cells}
    titles = {t: r for r, t in servers.RESOLVER_TITLES.items()}
    faults = {f.title: f for f in servers.FAULTS}

    def rows(text: str) -> dict[tuple[str, str], str]:
        out = {}
        for line in text.splitlines():
            m = _ROW.match(line)
            if m and m[1] in faults and m[2] in titles:
                out[(faults[m[1]].key, titles[m[2]])] = line
        return out

    def ede(text: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for line in text.splitlines():
            m = _ROW.match(line)
            if m and m[1] in titles and titles[m[1]] in servers.VALIDATING:
                out[titles[m[1]]] = dict(p.split(": ", 1) for p in m[2].split("; ") if ": " in p)
        return out

    page = render(cells, seconds)
    before, now = rows(old), rows(page)
    ede_before, ede_now = ede(old), ede(page)
    merged = {c: (now if c[0] in rerun else before).get(c, "") for c in all_cells()}
    out: list[str] = []
    for line in page.splitlines():
        m = _ROW.match(line)
        if m and m[1] in faults and m[2] in titles:
            continue  # the rows come in table order after the header
        if m and m[1] in titles and titles[m[1]] in servers.VALIDATING:
            r = titles[m[1]]
            parts = {f.key: (ede_now if f.key in rerun else ede_before).get(r, {}).get(f.key)
                     for f in servers.SIGNED}
            line = f"| {m[1]} | {'; '.join(f'{k}: {v}' for k, v in parts.items() if v) or '—'} |"
        out.append(line)
        if line.startswith("|---") and out[-2].startswith("| fault | resolver |"):
            signed = "zone" in out[-2]
            out += [row for c, row in merged.items() if row and bool(servers.FAULTS[_index(c[0])].signed) == signed]
    ok = sum(row.rstrip().rsplit("|", 2)[-2].strip().startswith("✓") for row in merged.values() if row)
    took = _TOOK.search(old)
    again = ", ".join(sorted(rerun))
    result = (f"Result: **{ok} of {len(merged)}** cells match ({len(merged) - ok} mismatches); the table took "
              f"{took[1] if took else '?'} s, and the rows of {again} were run again on their own ({seconds:.0f} s).")
    return "\n".join(result if line.startswith("Result: ") else line for line in out) + "\n"


def _index(key: str) -> int:
    return next(i for i, f in enumerate(servers.FAULTS) if f.key == key)


def main(argv: Sequence[str]) -> int:
    why = missing()
    if why:
        print(why, file=sys.stderr)
        return 3
    faults = [a for a in argv if a in {f.key for f in servers.FAULTS}]
    chosen = [c for c in all_cells() if not faults or c[0] in faults]
    started = time.monotonic()
    cells = run_table(chosen)
    seconds = time.monotonic() - started
    for c in cells:
        print(
            f"{'ok ' if c.match else 'BAD'} {c.fault:<12} {c.resolver:<14} {c.code or '-':<22} {c.side or '-':<9} "
            f"{','.join(c.servers) or '-':<24} {c.seconds:5.1f}s (diagnose {c.diagnose_seconds:4.1f}s) "
            f"{_answers(c)} {c.error}"
        )
    bad = sum(not c.match for c in cells)
    print(f"{len(cells) - bad} of {len(cells)} cells match, {bad} mismatches, {seconds:.0f} s")
    if "--write-docs" in argv:
        DOCS.write_text(render(cells, seconds), encoding="utf-8")
        print(f"wrote {DOCS}")
    elif "--update-docs" in argv and faults:
        DOCS.write_text(update_docs(DOCS.read_text(encoding="utf-8"), cells, seconds), encoding="utf-8")
        print(f"updated the rows of {', '.join(faults)} in {DOCS}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
