"""The diagnose, explain, checks, models and demo commands: arguments in, ``api`` call, renderer out."""

from __future__ import annotations

import argparse
import sys

from mxdoctor import api, progress, report
from mxdoctor.cli import _args, _progress
from mxdoctor.diagnosis import Diagnosis
from mxdoctor.mta.models import MODELS
from mxdoctor.report import Kind, catalogue


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "diagnose",
        help="why mail to a domain is stuck: resolve it as each MTA does, through every view",
        description="Resolve DOMAIN as each MTA does (MX, A and AAAA of every exchanger) through the system "
        "or internal resolver, external resolvers and every authoritative server, compare the views, and "
        "predict what each MTA does. Exit: 0 OK, 1 WARNING, 2 CRITICAL (an ERROR or CRITICAL finding, "
        "or some MTA defers or bounces), 3 UNKNOWN (not tested) or input error.",
    )
    p.add_argument("target", help="a mail domain or address (user@domain); IDNs accepted")
    _probe_args(p)
    _analysis_args(p)
    p.add_argument("--save-evidence", metavar="FILE", help="write the evidence (JSON) for `mxdoctor explain`")
    p.add_argument("--smtp", action="store_true", help="also probe port 25 of every MX address")
    p.add_argument("--smtp-port", type=int, default=25, metavar="N", help="SMTP port to probe (default 25)")
    p.set_defaults(func=run_diagnose)

    e = sub.add_parser("explain", help="re-analyse saved evidence offline, same output as diagnose")
    e.add_argument("file", help="an evidence file written by --save-evidence")
    _analysis_args(e)
    e.set_defaults(func=run_explain)

    c = sub.add_parser("checks", help="list the catalogue of finding codes")
    _args.add_output(c, Kind.CHECKS)
    c.add_argument("--markdown", dest="output_format", action="store_const", const="markdown",
                   help="the same as --format markdown (docs/checks.md)")
    c.set_defaults(func=run_checks)

    m = sub.add_parser("models", help="list the MTA behaviour models and their knobs")
    m.add_argument("--markdown", action="store_true", help="print the models as Markdown (docs/mta-behaviour.md)")
    m.set_defaults(func=run_models)

    d = sub.add_parser("demo", help="start the built-in lab, diagnose its broken domain, stop the lab")
    d.add_argument("scenario", nargs="?", default="aaaa-servfail", help="lab scenario (default aaaa-servfail)")
    d.add_argument("--port", type=int, default=None, help="lab DNS port (default 53 when root, else high)")
    _analysis_args(d)
    d.set_defaults(func=run_demo)


def _probe_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("views")
    g.add_argument("--resolver", action="append", default=[], metavar="ADDR[:PORT]",
                   help="the internal DNS server the MTA uses (repeatable; replaces the system view)")
    g.add_argument("--external", action="append", default=[], metavar="ADDR[:PORT]",
                   help="an external resolver to compare with (repeatable)")
    g.add_argument("--system", dest="use_system", action="store_true", default=None,
                   help="also query the system resolvers (/etc/resolv.conf) when --resolver is given")
    g.add_argument("--no-system", dest="use_system", action="store_false", help="skip the system resolvers")
    g.add_argument("--no-authoritative", dest="authoritative", action="store_false", default=True,
                   help="do not iterate from the root nor ask the authoritative servers")
    g.add_argument("--root-hints", metavar="FILE", help="root hints (named.root format) instead of IANA's")
    g.add_argument("--trust-anchor", metavar="FILE",
                   help="the root's DS or DNSKEY records to validate DNSSEC from (a lab's; default: IANA's "
                   "root keys, or none with --root-hints)")
    g.add_argument("--dns-port", type=int, default=53, metavar="N", help="port of all DNS traffic (default 53)")
    g.add_argument("--timeout", type=float, default=2.0, metavar="S", help="per query timeout (default 2)")
    g.add_argument("--deadline", type=float, default=30.0, metavar="S", help="overall deadline (default 30)")
    _progress.add_flag(g)


def _analysis_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    _args.add_models(g)
    _args.add_output(g, Kind.DIAGNOSIS)
    g.add_argument("--brief", action="store_true", help="leave out the resolution table")


def _options(args: argparse.Namespace, on_progress: progress.Callback | None = None) -> api.DiagnoseOptions:
    return api.DiagnoseOptions(
        resolvers=tuple(args.resolver),
        externals=tuple(args.external),
        use_system=args.use_system,
        authoritative=args.authoritative,
        root_hints=args.root_hints,
        trust_anchor=args.trust_anchor,
        dns_port=args.dns_port,
        timeout=args.timeout,
        deadline=args.deadline,
        smtp=args.smtp,
        smtp_port=args.smtp_port,
        on_progress=on_progress,
    )


def _emit(d: Diagnosis, args: argparse.Namespace) -> int:
    kind = Kind.AUDIT if d.evidence.command == "audit" else Kind.DIAGNOSIS  # audit evidence: audit report
    _args.emit(args, kind, d, brief=args.brief)
    return d.exit_code


def run_diagnose(args: argparse.Namespace) -> int:
    with _progress.shown(args) as on_progress:
        d = api.diagnose(args.target, _options(args, on_progress), mtas=_args.mtas(args), knobs=_args.knobs(args),
                         started=getattr(args, "started", None))  # set by the entry point: the command's deadline
    if args.save_evidence:
        api.save_evidence(d.evidence, args.save_evidence)
    return _emit(d, args)


def run_explain(args: argparse.Namespace) -> int:
    return _emit(api.explain(args.file, mtas=_args.mtas(args), knobs=_args.knobs(args)), args)


def run_checks(args: argparse.Namespace) -> int:
    _args.emit(args, Kind.CHECKS, None)
    return 0


def run_models(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(catalogue.models_markdown())
        return 0
    for m in MODELS.values():
        knobs = ", ".join(k.name for k in m.knobs) or "-"
        print(f"{m.name:<13} {m.title}  (order {'/'.join(m.order)}; knobs: {knobs})")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    result = api.demo(args.scenario, port=args.port, mtas=_args.mtas(args), knobs=_args.knobs(args))
    if args.output_format == "text" and args.output is None:
        console = report.make_console(color=False if args.no_color else None)
        # Soft-wrapped: the terminal folds long lines, so a path or command pastes whole.
        console.print(result.card.to_text(live=False), highlight=False, soft_wrap=True)
        console.print()
    _emit(result.diagnosis, args)
    return 0
