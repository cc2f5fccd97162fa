"""The audit command: arguments in, ``api.audit``, the audit report out."""

from __future__ import annotations

import argparse

from mxdoctor import api, progress
from mxdoctor.cli import _args, _progress
from mxdoctor.report import Kind


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        help="audit every authoritative server of a mail domain and of its MX hosts' zones",
        description="Find every authoritative server (every address) of DOMAIN's zone and of the zone of "
        "each MX host by delegation from the root, send each the audit probe set (A, AAAA, MX, TXT, "
        "unknown type, non-existent name, empty non-terminal, letter case, EDNS versions, options, flags "
        "and small buffers, TCP, unknown opcode, Z bit; for a signed zone its DNSKEY set against the parent's "
        "DS, the signatures and the NSEC/NSEC3 proofs of its answers and the DO bit), and compare the servers. "
        "Prints the probe x server matrix, the findings and what each MTA model would do. Exit: 0 OK, 1 WARNING, "
        "2 CRITICAL (an ERROR or CRITICAL finding, or some MTA defers), 3 UNKNOWN or input error.",
    )
    p.add_argument("domain", help="the mail domain (or an address user@domain)")
    p.add_argument("--root-hints", metavar="FILE", help="root hints (named.root format) instead of IANA's")
    p.add_argument("--trust-anchor", metavar="FILE",
                   help="the root's DS or DNSKEY records to validate the chain above the audited zones from (a "
                   "lab's; default: IANA's root keys, or none with --root-hints)")
    p.add_argument("--dns-port", type=int, default=53, metavar="N", help="port of all DNS traffic (default 53)")
    p.add_argument("--timeout", type=float, default=2.0, metavar="S", help="per query timeout (default 2)")
    p.add_argument("--deadline", type=float, default=60.0, metavar="S", help="overall deadline (default 60)")
    p.add_argument("--per-server", type=int, default=2, metavar="N",
                   help="at most N queries in flight per server address (default 2)")
    p.add_argument("--save-evidence", metavar="FILE", help="write the evidence (JSON) for `mxdoctor explain`")
    _progress.add_flag(p)
    _args.add_models(p, knobs=False)
    _args.add_output(p, Kind.AUDIT)
    p.set_defaults(func=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    with _progress.shown(args) as on_progress:
        d = api.audit(args.domain, _options(args, on_progress), mtas=_args.mtas(args))
    if args.save_evidence:
        api.save_evidence(d.evidence, args.save_evidence)
    _args.emit(args, Kind.AUDIT, d)
    return d.exit_code


def _options(args: argparse.Namespace, on_progress: progress.Callback | None) -> api.AuditOptions:
    return api.AuditOptions(
        root_hints=args.root_hints,
        trust_anchor=args.trust_anchor,
        dns_port=args.dns_port,
        timeout=args.timeout,
        deadline=args.deadline,
        per_server=args.per_server,
        on_progress=on_progress,
    )
