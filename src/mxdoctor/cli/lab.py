"""The ``mxdoctor lab`` commands: list the built-in scenarios, show one, serve one until interrupted."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from mxdoctor.lab import runner, scenario

EXIT_UNKNOWN = 3


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = subparsers.add_parser(
        "lab",
        help="run a simulated DNS-and-SMTP internet on loopback",
        description="A simulated internet on loopback (root, TLDs, name servers, resolvers, SMTP servers) "
        "whose servers misbehave as a scenario says. See docs/lab.md in the source tree or sdist.",
    )
    sub = lab.add_subparsers(dest="lab_command", metavar="SUBCOMMAND")
    lab.set_defaults(func=lambda args: _usage(lab))

    listing = sub.add_parser("list", help="list the built-in scenarios")
    listing.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="print a scenario: description, servers, faults, expected diagnosis")
    show.add_argument("scenario", metavar="SCENARIO", help="a built-in scenario name or a scenario file")
    show.add_argument("--zones", action="store_true", help="also print every zone, root and TLDs included")
    show.set_defaults(func=cmd_show)

    serve = sub.add_parser("serve", help="run a scenario until interrupted (Ctrl-C or SIGTERM)")
    serve.add_argument("scenario", metavar="SCENARIO", help="a built-in scenario name or a scenario file")
    serve.add_argument("--port", type=_port, help="the lab's DNS port (default: 53 when root and free, else free)")
    serve.add_argument("--smtp-port", type=_port, help="the lab's SMTP port (default: 25 when root and free)")
    serve.add_argument(
        "--ready-file", type=Path, metavar="PATH", help="write the card as JSON here once every server answers"
    )
    serve.add_argument(
        "--messages-file", type=Path, metavar="PATH",
        help="append one JSON line per message the lab SMTP servers accept (sender, recipients, data)",
    )
    serve.add_argument("--json", action="store_true", help="print the card as JSON instead of text")
    serve.add_argument(
        "--allow-offbox", action="store_true",
        help="let the lab's resolvers query forwarders and name servers off this machine (refused by default)",
    )
    serve.set_defaults(func=cmd_serve)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_UNKNOWN


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {value}")
    return value


def cmd_list(args: argparse.Namespace) -> int:
    names = scenario.builtin_names()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {scenario.load(name).description}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    loaded = scenario.load(args.scenario)
    out = [f"{loaded.name}: {loaded.description}", f"mail domains: {', '.join(loaded.domains)}", "", "DNS servers:"]
    for server in loaded.servers:
        what = f"serves {', '.join(server.zones)}" if server.zones else server.role
        if server.forwarders:
            what += f", forwards to {', '.join(server.forwarders)}"
        tag = "  (generated)" if server.generated else ""
        out.append(f"  {server.name:<24} {server.address:<12} {what}{tag}")
        for fault in server.faults:
            params = ", ".join(f"{k}={v}" for k, v in fault.to_toml().items() if k != "kind")
            out.append(f"      fault {fault.kind}" + (f" ({params})" if params else ""))
        for stale in server.stale:
            out.append(f"      stale {stale.name} {stale.rtype} {stale.rdata} (ttl {stale.ttl})")
    if loaded.smtp:
        out += ["", "SMTP servers:"]
        for mail in loaded.smtp:
            out.append(f"  {mail.host:<24} {', '.join(mail.addresses):<12} greets {mail.greeting}")
    expect = loaded.expect
    out += ["", "expected diagnosis:"]
    if expect.findings:
        out.append(f"  findings:  {', '.join(expect.findings)}")
    if expect.forbidden:
        out.append(f"  forbidden: {', '.join(expect.forbidden)}")
    if expect.verdicts:
        out.append("  verdicts:  " + ", ".join(f"{mta} {v}" for mta, v in expect.verdicts.items()))
    if expect.diagnosis:
        out.append(f"  {expect.diagnosis}")
    if args.zones:
        for zone in loaded.zones:
            tag = " (generated)" if zone.generated else ""
            out += ["", f"; zone {zone.origin}{tag}", zone.text.rstrip()]
    print("\n".join(out))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    loaded = scenario.load(args.scenario)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    ready: Path | None = args.ready_file
    try:
        with runner.running(
            loaded, port=args.port, smtp_port=args.smtp_port, allow_offbox=args.allow_offbox
        ) as card:
            if args.json:
                print(runner.card_json(card), flush=True)
            else:
                print(card.to_text(), flush=True)
                print("serving; Ctrl-C stops the lab", file=sys.stderr, flush=True)
            if ready is not None:
                _write_atomically(ready, json.dumps(card.to_json(), indent=2) + "\n")
            logged = 0
            while not stop.wait(0.2):
                logged = _log_messages(card, args.messages_file, logged)
            _log_messages(card, args.messages_file, logged)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if ready is not None:
            ready.unlink(missing_ok=True)
    print("lab stopped", file=sys.stderr, flush=True)
    return 0


def _log_messages(card: runner.Card, path: Path | None, logged: int) -> int:
    """Append the messages received since the last call; a harness proves delivery by reading them."""
    received = card.smtp_messages()
    if path is None or len(received) <= logged:
        return logged
    with path.open("a", encoding="utf-8") as out:
        for message in received[logged:]:
            record = {
                "mail_from": message.mail_from,
                "rcpt_tos": list(message.rcpt_tos),
                "server": message.server,
                "peer": message.peer,
                "data": message.data.decode("utf-8", "replace"),
            }
            out.write(json.dumps(record) + "\n")
    return len(received)


def _write_atomically(path: Path, text: str) -> None:
    """Write so that a script polling for the file never reads half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
