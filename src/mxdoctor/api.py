"""The typed public face of mxdoctor: diagnose a domain, audit its name servers, probe its SMTP
servers, explain saved evidence, read a mail queue. Every command's orchestration lives here.

Sync at the edge: each function runs the async probe to completion and returns plain typed values;
options are frozen dataclasses. Bad input raises an ``MxdoctorError`` subclass before any traffic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mxdoctor import analysis, evidence, probe, progress, route
from mxdoctor.audit import run as audit_run
from mxdoctor.checks import _registry as registry
from mxdoctor.checks import smtp as smtp_checks
from mxdoctor.checks._context import Context
from mxdoctor.diagnosis import Decision, Diagnosis, ExitStatus, Finding, exit_status
from mxdoctor.dns import probeset
from mxdoctor.dns.exchange import Engine, Recorder
from mxdoctor.errors import ConfigError, EvidenceError, InvalidTarget, MxdoctorError, QueueError
from mxdoctor.evidence import Evidence, ViewKind
from mxdoctor.mta.models import MODELS
from mxdoctor.queues import formats, parallel, shape, status
from mxdoctor.queues.record import Mta
from mxdoctor.queues.shape import Shape
from mxdoctor.queues.status import Status, Thresholds
from mxdoctor.smtp import probe as smtp_probe

if TYPE_CHECKING:
    from mxdoctor.lab import Card

__all__ = [
    "AuditOptions",
    "DiagnoseOptions",
    "Diagnosis",
    "Evidence",
    "ExitStatus",
    "LabDiagnosis",
    "QueueReport",
    "ScanOptions",
    "SmtpOptions",
    "SmtpResult",
    "Thresholds",
    "audit",
    "collect",
    "demo",
    "diagnose",
    "diagnose_summary",
    "explain",
    "lab_options",
    "probe_smtp",
    "queue_source",
    "read_queue",
    "save_evidence",
    "scan",
    "summarise",
]


# --- diagnose, explain ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiagnoseOptions:
    """How to probe: the views to compare, the DNS port and limits, and whether to probe SMTP too."""

    resolvers: tuple[str, ...] = ()  # the internal DNS servers the MTA uses (replace the system view)
    externals: tuple[str, ...] = ()  # external resolvers to compare with
    use_system: bool | None = None  # also /etc/resolv.conf's resolvers; None: only when no resolvers given
    authoritative: bool = True  # iterate from the root and ask every authoritative server
    root_hints: str | None = None  # named.root file instead of IANA's hints
    dns_port: int = 53
    timeout: float = 2.0  # per query
    deadline: float = 30.0  # the whole probe
    stub_timer: bool = True  # the MTA's view waits as the host's stub resolver does (resolv.conf)
    smtp: bool = False  # also probe port 25 of every exchanger address the MTA's view found
    smtp_port: int = 25
    smtp_cafile: str | None = None  # extra trusted CA (PEM) for the certificate check
    trust_anchor: str | None = None  # the root's DS/DNSKEY file (a lab's); None: IANA's, for IANA's root
    # told the lookups asked and answered and the deadline, e.g. to draw a progress bar
    on_progress: progress.Callback | None = field(default=None, compare=False, repr=False)

    def probe_options(self) -> probe.ProbeOptions:
        """The DNS probe's options; raises ConfigError for values no probe can run with."""
        options = probe.ProbeOptions(
            resolvers=tuple(self.resolvers),
            externals=tuple(self.externals),
            use_system=self.use_system,
            authoritative=self.authoritative,
            root_hints=self.root_hints,
            dns_port=self.dns_port,
            timeout=self.timeout,
            deadline=self.deadline,
            trust_anchor=self.trust_anchor,
            stub_timer=self.stub_timer,
        )
        options.check()
        return options


def check_models(mtas: Sequence[str] | None, knobs: Mapping[str, Sequence[str]] | None) -> None:
    """Raises MxdoctorError for an MTA model or a knob that does not exist (before any traffic)."""
    if mtas:
        analysis.check_mtas(mtas)
    for mta, names in (knobs or {}).items():
        model = MODELS.get(mta)
        if model is None:
            raise ConfigError(f"--knob {mta}:...: no MTA model {mta!r} (known: {', '.join(MODELS)})")
        for knob in names:
            if model.knob(knob) is None:
                known = ", ".join(k.name for k in model.knobs) or "none"
                raise ConfigError(f"--knob {mta}:{knob}: {mta} has no knob {knob!r} (known: {known})")


def _knobs(knobs: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]] | None:
    return {mta: tuple(names) for mta, names in knobs.items()} if knobs else None


def collect(target: str, options: DiagnoseOptions | None = None, *, started: float | None = None) -> Evidence:
    """Probe ``target`` (a domain or an address) through every view; raises InvalidTarget, ConfigError.

    ``options.deadline`` bounds the whole call, SMTP probes included, with a margin for the analysis,
    from ``started`` (a ``time.monotonic()`` value; the command's start in the CLI) or now."""
    started = time.monotonic() if started is None else started
    options = options or DiagnoseOptions()
    domain = route.normalise_target(target)
    ev = probe.collect(
        target if "@" not in target else domain, options.probe_options(), started=started,
        on_progress=options.on_progress,
    )  # fmt: skip
    if options.smtp:
        left = probe.probe_time(options.deadline) - (time.monotonic() - started)
        ev = _with_smtp(ev, options, left=left)
    return ev


def _with_smtp(ev: Evidence, options: DiagnoseOptions, *, left: float) -> Evidence:
    """Probe port 25 of every exchanger address the MTA's view found (the reference view)."""
    kinds = (ViewKind.RESOLVER, ViewKind.SYSTEM, ViewKind.AUTHORITATIVE)
    view = next((v.name for kind in kinds for v in ev.views if v.kind is kind), None)
    if view is None:
        return ev
    # One SMTP stage may take a few DNS time-outs, never the 60 s default: the diagnosis has a deadline.
    smtp_options = smtp_probe.Options(
        helo_name=smtp_probe.default_helo_name(),
        timeouts=smtp_probe.Timeouts.scaled(max(options.timeout * 3, 3.0)),
        cafile=options.smtp_cafile,
    )

    async def bounded() -> Evidence:
        try:
            return await asyncio.wait_for(
                smtp_probe.probe_evidence(ev, view=view, port=options.smtp_port, options=smtp_options), max(0.0, left)
            )
        except TimeoutError:
            cut = evidence.LimitReached("deadline", "the SMTP probes were unfinished")
            return evidence.replace(ev, deadline_hit=True, limits_reached=(*ev.limits_reached, cut))

    return asyncio.run(bounded())


def diagnose(
    target: str,
    options: DiagnoseOptions | None = None,
    *,
    mtas: Sequence[str] | None = None,
    knobs: Mapping[str, Sequence[str]] | None = None,
    started: float | None = None,
) -> Diagnosis:
    """Probe and analyse: the whole of ``mxdoctor diagnose`` without the rendering.

    ``mtas`` limits the verdicts to these MTA models; ``knobs`` maps a model to settings to apply.
    Raises InvalidTarget for a target that is no mail domain, ConfigError for unknown models, knobs
    or unusable options; network faults are findings, never exceptions.
    """
    check_models(mtas, knobs)
    return analysis.analyse(collect(target, options, started=started), mtas=mtas, knobs=_knobs(knobs))


def explain(
    path: str | Path,
    *,
    mtas: Sequence[str] | None = None,
    knobs: Mapping[str, Sequence[str]] | None = None,
) -> Diagnosis:
    """Re-analyse evidence saved by ``save_evidence`` (``--save-evidence``) offline; raises EvidenceError."""
    check_models(mtas, knobs)
    ev = evidence.load(path)
    for i, run in enumerate(ev.audit):
        # The audit's renderers look each probe up by name: one they do not know is bad evidence.
        if run.name not in probeset.BY_NAME:
            raise EvidenceError(f"{path}: audit[{i}].name: not an audit probe of this mxdoctor")
    return analysis.analyse(ev, mtas=mtas, knobs=_knobs(knobs))


def save_evidence(ev: Evidence, path: str | Path) -> None:
    """Write ``ev`` as JSON for ``explain``; raises MxdoctorError when the file cannot be written."""
    try:
        Path(path).write_text(evidence.dumps(ev) + "\n", encoding="utf-8")
    except OSError as exc:
        raise MxdoctorError(f"--save-evidence {path}: {exc.strerror or exc}") from None


def diagnose_summary(domain: str, options: DiagnoseOptions | None = None) -> dict[str, Any]:
    """A short summary for alerts: root cause, who defers, and the fix for each side."""
    return summarise(diagnose(domain, options))


def summarise(d: Diagnosis) -> dict[str, Any]:
    """The short form of a diagnosis that alerts and the dashboard carry."""
    causes = d.root_causes() or [f for f in d.findings if f.severity.rank >= 2]
    cause = causes[0] if causes else None
    return {
        "domain": d.domain,
        "exit_code": d.exit_code,
        "root_cause": cause.code if cause else None,
        "message": cause.message if cause else "no DNS fault found",
        "fix_receiver": cause.remediation.receiver if cause else "",
        "fix_sender": cause.remediation.sender if cause else "",
        "verdicts": {v.mta: v.outcome.value for v in d.verdicts},
        "deferring": [v.mta for v in d.verdicts if v.outcome in (Decision.DEFER, Decision.BOUNCE)],
        "texts": {v.mta: v.text for v in d.verdicts},
    }


# --- the lab ----------------------------------------------------------------------------------------


def lab_options(
    card: Card, *, timeout: float = 2.0, deadline: float = 30.0, smtp: bool = False
) -> DiagnoseOptions:
    """Options that diagnose through a running lab (``mxdoctor.lab.running`` card): its internal
    resolver as the MTA's, its external one to compare, its root, its ports and its CA."""
    from mxdoctor.lab import certs

    return DiagnoseOptions(
        resolvers=tuple(r.hostport for r in card.resolvers if r.name == "internal"),
        externals=tuple(r.hostport for r in card.resolvers if r.name == "external"),
        use_system=False,
        root_hints=card.root_hints,
        dns_port=card.dns_port,
        smtp_port=card.smtp_port,
        smtp_cafile=str(certs.lab_ca(Path(card.workdir) / "certs")[0]),
        trust_anchor=card.trust_anchor or None,
        timeout=timeout,
        deadline=deadline,
        stub_timer=False,  # the lab's tests choose their own per-query timeout
        smtp=smtp,
    )


@dataclass(frozen=True)
class LabDiagnosis:
    """A lab scenario's card (its servers, as they ran) and the diagnosis of its mail domain."""

    card: Card
    diagnosis: Diagnosis


def demo(
    scenario: str,
    *,
    port: int | None = None,
    mtas: Sequence[str] | None = None,
    knobs: Mapping[str, Sequence[str]] | None = None,
) -> LabDiagnosis:
    """Start a lab scenario, diagnose its first mail domain (with SMTP), stop the lab."""
    from mxdoctor import lab

    check_models(mtas, knobs)
    with lab.running(scenario, port=port) as card:
        if not card.domains:
            raise MxdoctorError(f"scenario {scenario} names no mail domain")
        ev = collect(card.domains[0], lab_options(card, timeout=1.0, deadline=20.0, smtp=True))
    return LabDiagnosis(card, analysis.analyse(ev, mtas=mtas, knobs=_knobs(knobs)))


# --- audit ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditOptions:
    """How to audit: where the root is, the DNS port, the limits, and how hard to press each server."""

    root_hints: str | None = None  # named.root file instead of IANA's hints
    trust_anchor: str | None = None  # the root's DS/DNSKEY file (a lab's); None: IANA's, for IANA's root
    dns_port: int = 53
    timeout: float = 2.0  # per query
    deadline: float = 60.0  # the whole audit
    per_server: int = 2  # queries in flight per server address at most
    # told the discovery's lookups, then the probes sent and answered
    on_progress: progress.Callback | None = field(default=None, compare=False, repr=False)


def audit(domain: str, options: AuditOptions | None = None, *, mtas: Sequence[str] | None = None) -> Diagnosis:
    """Audit every authoritative server of ``domain``'s zone and of its MX hosts' zones, and analyse
    it; the Diagnosis carries the audit evidence (``evidence.audit``). Raises ConfigError, InvalidTarget."""
    options = options or AuditOptions()
    check_models(mtas, None)
    if options.timeout <= 0 or options.deadline <= 0:
        raise ConfigError("--timeout and --deadline must be positive")
    run_options = audit_run.AuditOptions(
        root_hints=options.root_hints, trust_anchor=options.trust_anchor, dns_port=options.dns_port,
        timeout=options.timeout, deadline=options.deadline, per_server=options.per_server,
    )  # fmt: skip
    return analysis.analyse(audit_run.collect(domain, run_options, on_progress=options.on_progress), mtas=mtas)


# --- scan -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanOptions:
    """How to scan a list of domains (``mxdoctor scan``): the resolvers, how hard to press them, and
    the processes to scan with."""

    resolvers: tuple[str, ...] = ()  # ADDR[:PORT] to scan through; none: the system's, at most 20 queries/s
    concurrency: int = 64  # queries in flight at each resolver, never more
    qps: float | None = None  # queries per second in all; None: 100 through resolvers (20 without); 0: no limit
    timeout: float = 2.0  # the first attempt's; a retry waits twice as long
    retries: int = 1  # attempts after a timeout
    dns_port: int = 53  # of resolvers given without a port
    workers: int | None = 1  # processes scanning; None: one per usable CPU (as the command)
    chunk: int = 2000  # domains per worker task


def scan(domains: Iterable[str], options: ScanOptions | None = None) -> Iterator[dict[str, Any]]:
    """Resolve every domain (or ``user@domain``) of ``domains`` as diagnose does through the resolvers
    and yield its record (docs/scan.md: status, route, hosts, finding codes, a decision per MTA
    model), in order; a string that is no mail domain yields a record with status ``invalid``.
    Raises ConfigError for bad options before any traffic."""
    from mxdoctor.scan import run as scan_run

    options = options or ScanOptions()
    return scan_run.records(domains, scan_run.ScanOptions(
        resolvers=options.resolvers, concurrency=options.concurrency, qps=options.qps, timeout=options.timeout,
        retries=options.retries, dns_port=options.dns_port, workers=options.workers, chunk=options.chunk,
    ))  # fmt: skip


# --- smtp -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpOptions:
    """How to find the addresses and how far to go with each."""

    host: bool = False  # the target is a host: probe its A/AAAA, not its MX
    port: int = 25
    family: int | None = None  # 4 or 6: probe that family only
    rcpt: str | None = None  # also MAIL FROM and RCPT TO (default: the target when it is user@domain)
    mail_from: str | None = None  # default postmaster@HELO
    helo: str | None = None  # default this host's name
    starttls: bool = True
    tls_ca: str | None = None  # extra trusted CA certificates (PEM)
    timeout: float = 10.0  # per stage; connect gets half
    resolver: str | None = None  # DNS server to find the addresses (default the system's)
    dns_port: int = 53


@dataclass(frozen=True)
class SmtpResult:
    """The probes of every address, the SMTP findings, and how the addresses were found."""

    target: str
    evidence: Evidence
    findings: tuple[Finding, ...]
    note: str | None  # why nothing could be probed, or how the addresses were found

    @property
    def untested(self) -> bool:
        """Nothing probed, and not because the DNS said there is no address (that is a finding)."""
        return not self.evidence.smtp and not any(f.code == smtp_checks.SMTP_NO_ADDRESS.code for f in self.findings)

    @property
    def exit_code(self) -> int:
        return int(exit_status((f.severity for f in self.findings), untested=self.untested))


def _smtp_options(target: str, options: SmtpOptions) -> smtp_probe.Options:
    if options.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    if not 0 < options.port < 65536:
        raise ConfigError(f"--port {options.port}: must be from 1 to 65535")
    if options.family not in (None, 4, 6):
        raise ConfigError(f"address family {options.family}: must be 4 or 6")
    rcpt = options.rcpt
    if rcpt is None and "@" in target:
        rcpt = target
    helo = options.helo or smtp_probe.default_helo_name()
    if not helo.isascii() or any(c.isspace() for c in helo) or not helo.isprintable():
        raise ConfigError(f"--helo {helo!r}: not a host name")
    for label, value in (("--rcpt", rcpt), ("--mail-from", options.mail_from)):
        if value is not None and (any(c in value for c in "<> \t\r\n") or not value.isprintable()):
            raise InvalidTarget(f"{label} {value!r}: not a usable mail address")
    return smtp_probe.Options(
        helo_name=helo,
        rcpt=rcpt,
        mail_from=options.mail_from,
        starttls=options.starttls,
        timeouts=smtp_probe.Timeouts.scaled(options.timeout),
        cafile=options.tls_ca,
    )


def _smtp_dns_options(options: SmtpOptions) -> probe.ProbeOptions:
    opts = probe.ProbeOptions(
        resolvers=(options.resolver,) if options.resolver else (),
        authoritative=False,
        dns_port=options.dns_port,
        timeout=min(options.timeout, 3.0),
        deadline=max(options.timeout * 2, 10.0),
        stub_timer=False,  # finding the addresses to probe is no MTA verdict: mxdoctor's own timer
    )
    opts.check()
    return opts


def _family_record(options: SmtpOptions) -> dict[str, str]:
    """The family asked for, as the SMTP checks read it from the evidence options."""
    return {smtp_checks.SMTP_FAMILY_OPTION: str(options.family)} if options.family else {}


def _family_ok(options: SmtpOptions, address: str) -> bool:
    return options.family is None or smtp_probe.family_of(address) == options.family


async def _smtp_by_address(target: str, address: str, options: SmtpOptions, po: smtp_probe.Options) -> SmtpResult:
    ev = Evidence(target=target, domain=address, command="smtp")
    if not _family_ok(options, address):
        return SmtpResult(target, ev, (), f"{address} is not of the family asked for")
    probes = await smtp_probe.probe_many([smtp_probe.Target(address, address, options.port)], po)
    return SmtpResult(target, evidence.replace(ev, smtp=probes), (), None)


async def _smtp_by_host(target: str, host: str, options: SmtpOptions, po: smtp_probe.Options) -> SmtpResult:
    dopts = _smtp_dns_options(options)
    recorder = Recorder()
    engine = Engine(recorder, timeout=dopts.timeout)
    try:
        view = probe.build_views(dopts, engine)[0]
        qname = route.fqdn(host)
        lookups = await asyncio.gather(*(view.lookup(route.Question(qname, t)) for t in ("AAAA", "A")))
    finally:
        await engine.close()
    addresses = [a for lk in lookups if lk.outcome is evidence.Outcome.NOERROR for a in lk.records]
    wanted = [a for a in addresses if _family_ok(options, a)]
    ev = Evidence(
        target=target, domain=host, command="smtp", views=(view.describe(),),
        exchanges=tuple(recorder.exchanges), lookups=tuple(recorder.lookups), options=_family_record(options),
    )  # fmt: skip
    note = "; ".join(f"{lk.qtype} {lk.outcome.value}" + (f" {' '.join(lk.records)}" if lk.records else "")
                     for lk in lookups)
    probes = await smtp_probe.probe_many([smtp_probe.Target(host, a, options.port) for a in wanted], po)
    return SmtpResult(target, evidence.replace(ev, smtp=probes), (), f"{host}: {note} (view {view.name})")


def _mx_lookup_note(ev: Evidence, view: str, mx: evidence.Lookup | None) -> str:
    """Which lookup failed and why, e.g. "MX lookup for example.com through 127.0.0.254 timed out"."""
    v = ev.view(view)
    through = ", ".join(str(s) for s in v.servers) if v is not None and v.servers else f"view {view}"
    if mx is None:
        return f"MX lookup for {ev.domain} through {through} did not finish"
    failed = {evidence.Outcome.TIMEOUT: "timed out", evidence.Outcome.NETWORK_ERROR: "could not reach the server"}
    how = failed.get(mx.outcome, f"returned {mx.outcome.value}")
    errors = [x.error for i in mx.exchanges if (x := ev.exchange(i)) is not None and x.error]
    why = mx.detail or (errors[-1] if errors else None)
    return f"MX lookup for {ev.domain} through {through} {how}" + (f" ({why})" if why else "")


def _route_note(ev: Evidence, view: str) -> str:
    r = route.route_for_view(ev, view)
    if not r.exchangers:
        return f"{ev.domain}: no mail exchanger ({r.kind.value}): {_mx_lookup_note(ev, view, r.mx)}"
    parts = []
    for x in r.exchangers:
        fams = []
        for qtype in ("AAAA", "A"):
            lk = x.lookup(qtype)
            if lk is None:
                continue
            ok = lk.outcome is evidence.Outcome.NOERROR
            fams.append(" ".join(lk.records) if ok else f"{qtype} {lk.outcome.value}")
        label = "implicit MX" if x.implicit else f"MX {x.preference}"
        parts.append(f"{label} {x.host.rstrip('.')} ({'; '.join(fams) or 'no address lookups'})")
    return f"{ev.domain} through view {view}: " + ", ".join(parts)


async def _smtp_by_domain(target: str, domain: str, options: SmtpOptions, po: smtp_probe.Options) -> SmtpResult:
    ev = await probe.probe_domain(domain, _smtp_dns_options(options))
    view = ev.views[0].name
    targets = [t for t in smtp_probe.targets_of(ev, view, options.port) if _family_ok(options, t.address)]
    probes = await smtp_probe.probe_many(targets, po)
    recorded = {**ev.options, smtp_checks.SMTP_VIEW_OPTION: view, "smtp_port": str(options.port),
                **_family_record(options)}
    ev = evidence.replace(ev, smtp=probes, command="smtp", options=recorded)
    return SmtpResult(target, ev, (), _route_note(ev, view))


def probe_smtp(target: str, options: SmtpOptions | None = None) -> SmtpResult:
    """Find the addresses of ``target`` (a domain's MX route, a host's A/AAAA with ``host=True``, or
    an IP address), probe each in stages (never DATA), and judge the probes (the SMTP checks).
    Raises ConfigError or InvalidTarget for bad input."""
    options = options or SmtpOptions()
    po = _smtp_options(target, options)
    target = target.strip()
    bare = target.strip("[]")
    try:
        ipaddress.ip_address(bare)
        is_address = True
    except ValueError:
        is_address = False
    if is_address:
        result = asyncio.run(_smtp_by_address(target, bare, options, po))
    elif options.host:
        result = asyncio.run(_smtp_by_host(target, route.normalise_target(target).rstrip("."), options, po))
    else:
        domain = route.normalise_target(target.rpartition("@")[2] if "@" in target else target)
        result = asyncio.run(_smtp_by_domain(target, domain.rstrip("."), options, po))
    findings = tuple(registry.run(Context.build(result.evidence), families=["smtp"]))
    return dataclasses.replace(result, findings=findings)


# --- queue ------------------------------------------------------------------------------------------

def queue_source(
    path: str | None = None,
    *,
    mta: str | Mta | None = None,
    format: str | None = None,
    config_dir: str | None = None,
    timeout: str | float = 60.0,
) -> formats.Source:
    """What ``read_queue`` reads: a listing file (``-`` for stdin) or an MTA's queue command, never
    both; ``timeout`` bounds the command (``60s``, ``2m`` or seconds). Raises QueueError, ConfigError."""
    if mta is not None and not isinstance(mta, Mta):
        try:
            mta = Mta(mta)
        except ValueError:
            raise QueueError(f"unknown MTA {mta!r} (known: {', '.join(Mta)})") from None
    if mta is not None and path:
        raise QueueError("give either a SOURCE file or an MTA option, not both")
    if mta is None and not path:
        raise QueueError("no queue source: give a file, '-' for stdin, or --postfix/--exim/--sendmail/...")
    return formats.Source(
        path=path, mta=mta, format=format, config_dir=config_dir, timeout=status.parse_duration(timeout),
    )  # fmt: skip


@dataclass(frozen=True)
class QueueReport:
    """A queue's shape (domains × age, reasons), where it came from, and its monitoring status."""

    shape: Shape
    source: str  # the source's label: the file, "stdin", or the MTA command
    format: str | None  # the listing format it was read as (None for an empty listing)
    limits: Thresholds
    status: Status  # through the one exit policy: age/count thresholds as WARNING/CRITICAL
    top: int | None = 20  # per-domain rows to show (0 or None: all)

    @property
    def exit_code(self) -> int:
        return int(self.status)


def read_queue(
    source: formats.Source,
    *,
    queues: Sequence[str] = (),
    limits: Thresholds | None = None,
    now: float | None = None,
    jobs: int = 1,
    top: int | None = 20,
    on_progress: progress.Callback | None = None,
) -> QueueReport:
    """Read one queue listing, shape it and judge it against ``limits``; ``queues`` keeps only these
    queues (e.g. ``deferred``); ``jobs`` > 1 splits a big one-record-per-line file across processes.
    ``on_progress`` is told the bytes (of a file) or records (of a pipe) read, in one process only.
    Raises QueueError for an unreadable source; malformed lines are counted, not raised."""
    limits = limits or Thresholds()
    now = time.time() if now is None else now
    result = None
    fmt: str | None = None
    if jobs > 1 and source.path not in (None, "-"):
        assert source.path is not None
        fmt = formats.detected_format(source)
        if fmt is not None:
            result = parallel.build_file(source.path, fmt, now=now, queues=tuple(queues), jobs=jobs)
    if result is None:
        fmt, items = formats.open_source(source, now=now, on_progress=on_progress)
        result = shape.build(items, now=now, queues=list(queues) or None)
    return QueueReport(result, source.label, fmt, limits, status.evaluate(result, limits), top)
