"""The diagnose, explain, checks and demo commands: arguments in, library call, renderer out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mxdoctor import analysis, api, evidence
from mxdoctor.analysis import Diagnosis
from mxdoctor.errors import ConfigError, MxdoctorError
from mxdoctor.mta.models import MODELS
from mxdoctor.report import catalogue, text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "diagnose",
        help="why mail to a domain is stuck: resolve it as each MTA does, through every view",
        description="Resolve DOMAIN as each MTA does (MX, A and AAAA of every exchanger) through the system "
        "or internal resolver, external resolvers and every authoritative server, compare the views, and "
        "predict what each MTA does. Exit: 0 every MTA delivers, 1 warnings, 2 some MTA defers or "
        "bounces, 3 unknown or input error.",
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
    c.add_argument("--markdown", action="store_true", help="print the catalogue as Markdown (docs/checks.md)")
    c.add_argument("--json", action="store_true", help="print the catalogue as JSON")
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
    g.add_argument("--dns-port", type=int, default=53, metavar="N", help="port of all DNS traffic (default 53)")
    g.add_argument("--timeout", type=float, default=2.0, metavar="S", help="per query timeout (default 2)")
    g.add_argument("--deadline", type=float, default=30.0, metavar="S", help="overall deadline (default 30)")


def _analysis_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--mta", action="append", default=[], metavar="NAME",
                   help=f"limit the verdicts to these MTA models ({', '.join(MODELS)}); repeatable")
    g.add_argument("--knob", action="append", default=[], metavar="MTA:KNOB",
                   help="evaluate an MTA with a setting, e.g. sendmail:WorkAroundBrokenAAAA")
    g.add_argument("--json", action="store_true", help="print the diagnosis as JSON (docs/json.md in the sdist)")
    g.add_argument("--no-color", action="store_true", help="no colour (NO_COLOR is honoured too)")
    g.add_argument("--brief", action="store_true", help="leave out the resolution table")


def _mtas(args: argparse.Namespace) -> list[str] | None:
    names = [n.strip() for item in args.mta for n in item.split(",") if n.strip()]
    return analysis.check_mtas(names) if names else None


def _knobs(args: argparse.Namespace) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for item in args.knob:
        mta, sep, knob = item.partition(":")
        model = MODELS.get(mta)
        if not sep or model is None:
            raise ConfigError(f"--knob {item!r}: expected MTA:KNOB with MTA one of {', '.join(MODELS)}")
        if model.knob(knob) is None:
            known = ", ".join(k.name for k in model.knobs) or "none"
            raise ConfigError(f"--knob {item!r}: {mta} has no knob {knob!r} (known: {known})")
        out[mta] = out.get(mta, ()) + (knob,)
    return out


def _render(d: Diagnosis, args: argparse.Namespace) -> int:
    if args.json:
        sys.stdout.write(analysis.dumps(d) + "\n")
    else:
        console = text.make_console(color=False if args.no_color else None)
        text.render(d, console, show_table=not args.brief)
    return d.exit_code


def run_diagnose(args: argparse.Namespace) -> int:
    mtas, knobs = _mtas(args), _knobs(args)
    ev = api.collect(
        args.target,
        resolvers=args.resolver,
        externals=args.external,
        use_system=args.use_system,
        authoritative=args.authoritative,
        root_hints=args.root_hints,
        dns_port=args.dns_port,
        timeout=args.timeout,
        deadline=args.deadline,
        smtp=args.smtp,
        smtp_port=args.smtp_port,
        started=getattr(args, "started", None),  # set by the entry point: the command's deadline
    )
    if args.save_evidence:
        try:
            Path(args.save_evidence).write_text(evidence.dumps(ev) + "\n", encoding="utf-8")
        except OSError as exc:
            raise MxdoctorError(f"--save-evidence {args.save_evidence}: {exc.strerror or exc}") from None
    return _render(analysis.analyse(ev, mtas=mtas, knobs=knobs), args)


def run_explain(args: argparse.Namespace) -> int:
    d = api.explain(args.file, mtas=_mtas(args), knobs=_knobs(args))
    if d.evidence.command == "audit":
        from mxdoctor.audit import _cli as audit_cli  # audit evidence gets the audit report

        return audit_cli.emit(d, args)
    return _render(d, args)


def run_checks(args: argparse.Namespace) -> int:
    if args.markdown:
        sys.stdout.write(catalogue.markdown())
    elif args.json:
        sys.stdout.write(catalogue.json_text() + "\n")
    else:
        catalogue.table(text.make_console())
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
    from mxdoctor import lab

    mtas, knobs = _mtas(args), _knobs(args)
    console = text.make_console(color=False if args.no_color else None)
    with lab.running(args.scenario, port=args.port) as card:
        if not card.domains:
            raise MxdoctorError(f"scenario {args.scenario} names no mail domain")
        if not args.json:
            console.print(card.to_text(), highlight=False)
            console.print()
        ev = api.collect(card.domains[0], **api.lab_options(card), timeout=1.0, deadline=20.0, smtp=True)
    d = analysis.analyse(ev, mtas=mtas, knobs=knobs)
    _render(d, args)
    return 0
