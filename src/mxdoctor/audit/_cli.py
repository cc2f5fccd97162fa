"""The audit command: arguments in, ``audit.run`` and ``analysis.analyse``, the audit report out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mxdoctor import analysis, evidence
from mxdoctor.audit import report, run
from mxdoctor.errors import ConfigError, MxdoctorError
from mxdoctor.mta.models import MODELS
from mxdoctor.report import text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        help="audit every authoritative server of a mail domain and of its MX hosts' zones",
        description="Find every authoritative server (every address) of DOMAIN's zone and of the zone of "
        "each MX host by delegation from the root, send each the audit probe set (A, AAAA, MX, TXT, "
        "unknown type, non-existent name, empty non-terminal, letter case, EDNS versions, options, flags "
        "and small buffers, TCP, unknown opcode, Z bit), and compare the servers. Prints the probe x "
        "server matrix, the findings and what each MTA model would do. Exit: 0 OK, 1 warnings, "
        "2 errors or some MTA defers, 3 unknown or input error.",
    )
    p.add_argument("domain", help="the mail domain (or an address user@domain)")
    p.add_argument("--root-hints", metavar="FILE", help="root hints (named.root format) instead of IANA's")
    p.add_argument("--dns-port", type=int, default=53, metavar="N", help="port of all DNS traffic (default 53)")
    p.add_argument("--timeout", type=float, default=2.0, metavar="S", help="per query timeout (default 2)")
    p.add_argument("--deadline", type=float, default=60.0, metavar="S", help="overall deadline (default 60)")
    p.add_argument("--per-server", type=int, default=2, metavar="N",
                   help="at most N queries in flight per server address (default 2)")
    p.add_argument("--json", action="store_true", help="print the audit as JSON (docs/audit.md in the sdist)")
    p.add_argument("--save-evidence", metavar="FILE", help="write the evidence (JSON) for `mxdoctor explain`")
    p.add_argument("--mta", action="append", default=[], metavar="NAME",
                   help=f"limit the verdicts to these MTA models ({', '.join(MODELS)}); repeatable")
    p.add_argument("--no-color", action="store_true", help="no colour (NO_COLOR is honoured too)")
    p.set_defaults(func=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    names = [n.strip() for item in args.mta for n in item.split(",") if n.strip()]
    mtas = analysis.check_mtas(names) if names else None
    if args.timeout <= 0 or args.deadline <= 0:
        raise ConfigError("--timeout and --deadline must be positive")
    options = run.AuditOptions(
        root_hints=args.root_hints,
        dns_port=args.dns_port,
        timeout=args.timeout,
        deadline=args.deadline,
        per_server=args.per_server,
    )
    ev = run.collect(args.domain, options)
    if args.save_evidence:
        try:
            Path(args.save_evidence).write_text(evidence.dumps(ev) + "\n", encoding="utf-8")
        except OSError as exc:
            raise MxdoctorError(f"--save-evidence {args.save_evidence}: {exc.strerror or exc}") from None
    return emit(analysis.analyse(ev, mtas=mtas), args)


def emit(d: analysis.Diagnosis, args: argparse.Namespace) -> int:
    """Print an audit diagnosis as the arguments ask (also used by ``explain`` for audit evidence)."""
    if getattr(args, "json", False):
        sys.stdout.write(report.dumps(d) + "\n")
    else:
        console = text.make_console(color=False if getattr(args, "no_color", False) else None)
        report.render(d, console)
    return report.exit_code(d)
