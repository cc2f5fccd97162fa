"""The ``mxdoctor smtp TARGET`` command: find the addresses (MX route of a domain, A/AAAA of a host, or
an address as given), probe each in stages, print a table per address and the findings.

Exit through the one policy: 0 every stage fine, 1 warnings (e.g. certificate), 2 unreachable, refused,
deferred or no address at all, 3 nothing could be tested (the resolver did not answer) or input error.
"""

from __future__ import annotations

import argparse

from mxdoctor import api
from mxdoctor.cli import _args
from mxdoctor.report import Kind


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "smtp",
        help="probe SMTP on every MX address of a domain (or a host, or an address), stage by stage",
        description="Probe port 25 of every MX address of DOMAIN (or of a host name with --host, or one "
        "address) in stages like swaks: connect, greeting, EHLO, STARTTLS (certificate read and checked), "
        "EHLO again, optionally MAIL FROM and RCPT TO, then RSET and QUIT; never DATA. Exit: 0 all stages "
        "fine, 1 warnings (e.g. certificate), 2 unreachable, refused, deferred or no address at all, 3 "
        "nothing could be tested (the resolver did not answer) or input error.",
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
    _args.add_output(p, Kind.SMTP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = api.SmtpOptions(
        host=args.host,
        port=args.port,
        family=4 if args.ipv4 else 6 if args.ipv6 else None,
        rcpt=args.rcpt,
        mail_from=args.mail_from,
        helo=args.helo,
        starttls=args.starttls,
        tls_ca=args.tls_ca,
        timeout=args.timeout,
        resolver=args.resolver,
        dns_port=args.dns_port,
    )
    result = api.probe_smtp(args.target, options)
    _args.emit(args, Kind.SMTP, result)
    return result.exit_code
