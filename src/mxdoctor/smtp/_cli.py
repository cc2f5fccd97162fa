"""The ``mxdoctor smtp TARGET`` command: find the addresses (MX route of a domain, A/AAAA of a host, or
an address as given), probe each in stages, print a table per address and the findings.

Exit: 0 every stage fine, 1 warnings (e.g. certificate), 2 unreachable, refused or deferred, 3 input error.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from mxdoctor import _codec, evidence, route
from mxdoctor import probe as dns_probe
from mxdoctor.checks import _registry as registry
from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import Finding, Severity
from mxdoctor.dns.exchange import Engine, Recorder
from mxdoctor.errors import ConfigError, InvalidTarget
from mxdoctor.smtp import probe, render

SCHEMA = "mxdoctor.smtp"
SCHEMA_VERSION = "1.0"
EXIT_OK, EXIT_WARNING, EXIT_CRITICAL = 0, 1, 2
# A deferred recipient is a delivery that does not happen now: as bad as a refusal for this command.
_CRITICAL_CODES = {"RCPT_TEMPFAIL"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "smtp",
        help="probe SMTP on every MX address of a domain (or a host, or an address), stage by stage",
        description="Probe port 25 of every MX address of DOMAIN (or of a host name with --host, or one "
        "address) in stages like swaks: connect, greeting, EHLO, STARTTLS (certificate read and checked), "
        "EHLO again, optionally MAIL FROM and RCPT TO, then RSET and QUIT; never DATA. Exit: 0 all stages "
        "fine, 1 warnings (e.g. certificate), 2 unreachable, refused or deferred, 3 input error.",
    )
    p.add_argument("target", help="a mail domain, user@domain (also sets --rcpt), a host name with --host, "
                   "or an IP address")
    p.add_argument("--host", action="store_true", help="TARGET is a host: probe its A/AAAA, not its MX")
    p.add_argument("--port", type=int, default=25, metavar="N", help="SMTP port (default 25)")
    fam = p.add_mutually_exclusive_group()
    fam.add_argument("-4", "--ipv4", action="store_true", help="probe IPv4 addresses only")
    fam.add_argument("-6", "--ipv6", action="store_true", help="probe IPv6 addresses only")
    p.add_argument("--rcpt", metavar="ADDR", help="also send MAIL FROM and RCPT TO with this recipient")
    p.add_argument("--mail-from", metavar="ADDR", help="sender for MAIL FROM (default postmaster@HELO)")
    p.add_argument("--helo", metavar="NAME", help="name to announce in EHLO (default: this host's name)")
    p.add_argument("--no-starttls", dest="starttls", action="store_false", help="do not try STARTTLS")
    p.add_argument("--tls-ca", metavar="FILE", help="extra trusted CA certificates (PEM) for the chain check")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S",
                   help="seconds per stage (connect gets half; default 10)")
    p.add_argument("--resolver", metavar="ADDR[:PORT]", help="DNS server to find the addresses (default: "
                   "the system's, /etc/resolv.conf)")
    p.add_argument("--dns-port", type=int, default=53, metavar="N", help="port of the DNS servers (default 53)")
    p.add_argument("--json", action="store_true", help="print probes and findings as JSON")
    p.add_argument("--no-color", action="store_true", help="no colour (NO_COLOR is honoured too)")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Result:
    target: str
    evidence: evidence.Evidence
    findings: tuple[Finding, ...]
    note: str | None  # why nothing could be probed, or how the addresses were found

    @property
    def exit_code(self) -> int:
        if not self.evidence.smtp:
            return EXIT_CRITICAL
        worst = max((f.severity.rank for f in self.findings), default=0)
        if worst >= Severity.ERROR.rank or any(f.code in _CRITICAL_CODES for f in self.findings):
            return EXIT_CRITICAL
        return EXIT_WARNING if worst >= Severity.WARNING.rank else EXIT_OK


def _options(args: argparse.Namespace) -> probe.Options:
    if args.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port}: must be from 1 to 65535")
    rcpt = args.rcpt
    if rcpt is None and "@" in args.target:
        rcpt = args.target
    helo = args.helo or probe.default_helo_name()
    if not helo.isascii() or any(c.isspace() for c in helo) or not helo.isprintable():
        raise ConfigError(f"--helo {helo!r}: not a host name")
    for label, value in (("--rcpt", rcpt), ("--mail-from", args.mail_from)):
        if value is not None and (any(c in value for c in "<> \t\r\n") or not value.isprintable()):
            raise InvalidTarget(f"{label} {value!r}: not a usable mail address")
    return probe.Options(
        helo_name=helo,
        rcpt=rcpt,
        mail_from=args.mail_from,
        starttls=args.starttls,
        timeouts=probe.Timeouts.scaled(args.timeout),
        cafile=args.tls_ca,
    )


def _dns_options(args: argparse.Namespace) -> dns_probe.ProbeOptions:
    opts = dns_probe.ProbeOptions(
        resolvers=(args.resolver,) if args.resolver else (),
        authoritative=False,
        dns_port=args.dns_port,
        timeout=min(args.timeout, 3.0),
        deadline=max(args.timeout * 2, 10.0),
    )
    opts.check()
    return opts


def _family_ok(args: argparse.Namespace, address: str) -> bool:
    version = probe.family_of(address)
    return not (args.ipv4 and version != 4 or args.ipv6 and version != 6)


async def _by_address(args: argparse.Namespace, address: str, options: probe.Options) -> Result:
    ev = evidence.Evidence(target=args.target, domain=address, command="smtp")
    if not _family_ok(args, address):
        return Result(args.target, ev, (), f"{address} is not of the family asked for")
    probes = await probe.probe_many([probe.Target(address, address, args.port)], options)
    return Result(args.target, evidence.replace(ev, smtp=probes), (), None)


async def _by_host(args: argparse.Namespace, host: str, options: probe.Options) -> Result:
    dopts = _dns_options(args)
    recorder = Recorder()
    engine = Engine(recorder, timeout=dopts.timeout)
    try:
        view = dns_probe.build_views(dopts, engine)[0]
        qname = route.fqdn(host)
        lookups = await asyncio.gather(*(view.lookup(route.Question(qname, t)) for t in ("AAAA", "A")))
    finally:
        await engine.close()
    addresses = [a for lk in lookups if lk.outcome is evidence.Outcome.NOERROR for a in lk.records]
    wanted = [a for a in addresses if _family_ok(args, a)]
    ev = evidence.Evidence(
        target=args.target, domain=host, command="smtp", views=(view.describe(),),
        exchanges=tuple(recorder.exchanges), lookups=tuple(recorder.lookups),
    )  # fmt: skip
    note = "; ".join(f"{lk.qtype} {lk.outcome.value}" + (f" {' '.join(lk.records)}" if lk.records else "")
                     for lk in lookups)
    probes = await probe.probe_many([probe.Target(host, a, args.port) for a in wanted], options)
    return Result(args.target, evidence.replace(ev, smtp=probes), (), f"{host}: {note} (view {view.name})")


def _mx_lookup_note(ev: evidence.Evidence, view: str, mx: evidence.Lookup | None) -> str:
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


def _route_note(ev: evidence.Evidence, view: str) -> str:
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


async def _by_domain(args: argparse.Namespace, domain: str, options: probe.Options) -> Result:
    ev = await dns_probe.probe_domain(domain, _dns_options(args))
    view = ev.views[0].name
    targets = [t for t in probe.targets_of(ev, view, args.port) if _family_ok(args, t.address)]
    probes = await probe.probe_many(targets, options)
    recorded = {**ev.options, "smtp_view": view, "smtp_port": str(args.port)}
    ev = evidence.replace(ev, smtp=probes, command="smtp", options=recorded)
    return Result(args.target, ev, (), _route_note(ev, view))


def collect(args: argparse.Namespace) -> Result:
    """Find the addresses, probe them and analyse the probes (the SMTP family of checks)."""
    options = _options(args)
    target = args.target.strip()
    bare = target.strip("[]")
    try:
        ipaddress.ip_address(bare)
        is_address = True
    except ValueError:
        is_address = False
    if is_address:
        result = asyncio.run(_by_address(args, bare, options))
    elif args.host:
        result = asyncio.run(_by_host(args, route.normalise_target(target).rstrip("."), options))
    else:
        domain = route.normalise_target(target.rpartition("@")[2] if "@" in target else target)
        result = asyncio.run(_by_domain(args, domain.rstrip("."), options))
    ctx = Context.build(result.evidence)
    findings = tuple(registry.run(ctx, families=["smtp"]))
    return Result(result.target, result.evidence, findings, result.note)


def to_dict(r: Result) -> dict[str, Any]:
    """The JSON form: every stage of every address, the findings, and the exit code."""
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "target": r.target,
        "exit_code": r.exit_code,
        "note": r.note,
        "probes": _codec.dump(r.evidence.smtp),
        "findings": [
            {
                "code": f.code,
                "severity": f.severity.value,
                "subject": f.subject,
                "title": f.title,
                "message": f.message,
                "seen": _codec.dump(f.seen),
                "remediation": {"sender": f.remediation.sender, "receiver": f.remediation.receiver},
                "rfcs": list(f.rfcs),
            }
            for f in r.findings
        ],
        "evidence": evidence.to_dict(r.evidence),
    }


_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.ERROR: "red",
    Severity.WARNING: "yellow",
    Severity.NOTICE: "cyan",
    Severity.INFO: "green",
}


def render_text(r: Result, console: Console) -> None:
    if r.note:
        console.print(Text(r.note))
        console.print()
    if not r.evidence.smtp:
        console.print(Text("nothing to probe: no address was found", style="bold red"))
    render.render(r.evidence.smtp, console)
    if r.findings:
        console.print()
    for f in r.findings:
        line = Text()
        line.append(f"{f.severity.value:<8} ", style=_STYLE[f.severity])
        line.append(f"{f.code}  ", style="bold")
        line.append(f.message)
        console.print(line)
        if f.severity.rank >= Severity.WARNING.rank and f.remediation.receiver:
            console.print(Text(f"         receiving side: {f.remediation.receiver}", style="dim"))


def run(args: argparse.Namespace) -> int:
    result = collect(args)
    if args.json:
        sys.stdout.write(json.dumps(to_dict(result), indent=2, ensure_ascii=False) + "\n")
    else:
        render_text(result, Console(no_color=True if args.no_color else None, highlight=False, emoji=False))
    return result.exit_code
