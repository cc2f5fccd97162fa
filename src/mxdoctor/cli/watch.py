"""``mxdoctor watch``: the queue-watching daemon; options from a TOML file, each also on the command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING

from mxdoctor.cli import _args
from mxdoctor.diagnosis import exit_status
from mxdoctor.errors import ConfigError
from mxdoctor.monitor import config, state, watch
from mxdoctor.queues import formats

if TYPE_CHECKING:
    from mxdoctor.web import runtime  # imported when a watch starts: the web stack is heavy to load


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "watch",
        help="watch a mail queue: alert on delayed mail per domain, diagnose DNS deferrals, export metrics",
        description="Poll a queue source every interval; raise one alert per destination domain whose "
        "oldest message passes --alert-age (with the deferral reason and, for DNS-class deferrals, the "
        "diagnosed root cause) and clear it when the domain drains. State survives restarts.",
    )
    _args.add_queue_source(p)
    p.set_defaults(timeout=None)
    p.add_argument("--config", help="TOML file with any of these options (command line wins)")
    p.add_argument("--interval", help="time between polls (default 60s)")
    p.add_argument("--alert-age", help="alert when a domain's oldest message is older (default 30m)")
    p.add_argument("--state", help=f"SQLite state file (default {state.SYSTEM_STATE_DIR}/{state.STATE_FILE}, "
                   "or under $XDG_STATE_HOME when that is not writable)")
    p.add_argument("--queue", dest="queues", action="append", metavar="NAME", help="only this queue; may repeat")
    p.add_argument("--webhook", dest="webhooks", action="append", metavar="URL",
                   help="POST each alert as JSON (Slack/Teams compatible); may repeat")
    p.add_argument("--webhook-timeout", help="limit for each whole send, connect to answer (default 10s)")
    p.add_argument("--retry-max", help="longest wait between retries of a failed notification (default 5m)")
    p.add_argument("--email-relay", metavar="HOST[:PORT]", help="send alerts by mail through this relay")
    p.add_argument("--email-from")
    p.add_argument("--email-to", action="append", metavar="ADDRESS")
    p.add_argument("--email-tls", choices=("starttls", "implicit", "none"),
                   help="starttls (default: upgrade when offered), implicit (TLS from the start), none")
    p.add_argument("--email-starttls", action="store_true", default=None, help="send nothing without TLS")
    p.add_argument("--email-allow-plaintext", action="store_true", default=None,
                   help="allow the password to be sent without TLS")
    p.add_argument("--email-username")
    p.add_argument("--email-timeout")
    p.add_argument("--metrics", metavar="ADDR:PORT", help="serve Prometheus metrics here")
    p.add_argument("--web", metavar="ADDR:PORT",
                   help="serve the dashboard and the push API here (a token is required beyond loopback)")
    p.add_argument("--metrics-top", type=int, help="per-domain series for the N biggest domains (100)")
    p.add_argument("--no-diagnose", dest="diagnose", action="store_false", default=None,
                   help="do not diagnose DNS-class deferrals")
    p.add_argument("--diagnose-every", help="re-diagnose a domain at most this often (default: the interval)")
    p.add_argument("--max-diagnoses", type=int, help="new diagnoses per poll at most (10)")
    p.add_argument("--diagnoser", metavar="MODULE:FUNCTION",
                   help="a callable (domain) -> summary dict instead of mxdoctor's diagnosis")
    p.add_argument("--resolver", dest="resolvers", action="append", metavar="ADDR",
                   help="the MTA's resolver, for diagnosis; may repeat")
    p.add_argument("--external", dest="externals", action="append", metavar="ADDR",
                   help="an external resolver to compare with; may repeat")
    p.add_argument("--dns-port", type=int)
    p.add_argument("--root-hints")
    p.add_argument("--diagnose-deadline")
    p.add_argument("--no-log", dest="log", action="store_false", default=None, help="no alert lines on stdout")
    p.add_argument("--once", dest="max_polls", action="store_const", const=1, help="poll once and exit")
    p.add_argument("--max-polls", type=int, help=argparse.SUPPRESS)
    p.add_argument("--verbose", action="store_true", default=None)
    p.set_defaults(func=run)


def merged(args: argparse.Namespace) -> config.Settings:
    return config.merge(args.config, vars(args), os.environ)


def _custom_diagnoser(opts: config.Settings) -> watch.Diagnoser | None:
    spec = opts.diagnoser
    if not opts.diagnose or not spec:
        return None
    module, _, name = str(spec).partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"--diagnoser {spec}: {exc}") from None
    if not callable(fn):
        raise ConfigError(f"--diagnoser {spec}: not callable")
    return fn  # type: ignore[no-any-return]


_SOURCES = ("source", "postfix", "exim", "sendmail", "opensmtpd", "exchange")


def build(opts: config.Settings) -> runtime.Runtime:
    """The running watch (a ``web.runtime.Runtime``) from checked settings: the local queue's watcher
    (unless only pushed hosts are watched), one per pushed host, the dashboard and the metrics."""
    from mxdoctor import api
    from mxdoctor.web import runtime  # noqa: F811

    base = api.DiagnoseOptions(
        deadline=opts.diagnose_deadline, dns_port=opts.dns_port, resolvers=tuple(opts.resolvers or ()),
        externals=tuple(opts.externals or ()), root_hints=opts.root_hints or None,
    )
    base.probe_options()  # a bad resolver address is a one-line error now, not at the first diagnosis
    source = options = None
    local = any(getattr(opts, k) not in (None, False) for k in _SOURCES)
    if local or not opts.hosts:
        ns = argparse.Namespace(**{k: getattr(opts, k) for k in (*_SOURCES, "format")}, timeout=opts.timeout)
        source = _args.queue_source(ns)
    template = watch.WatchOptions(
        source=source or formats.Source(path=""), interval=opts.interval, alert_age=opts.alert_age,
        diagnose=opts.diagnose, diagnose_every=opts.diagnose_every, max_diagnoses=opts.max_diagnoses,
        queues=opts.queues, diagnose_wait=opts.diagnose_deadline + 10.0, retry_max=opts.retry_max,
    )
    options = template if source is not None else None
    return runtime.build(opts, source, options, base, _custom_diagnoser(opts), template=template)


def run(args: argparse.Namespace) -> int:
    opts = merged(args)
    logging.basicConfig(
        level=logging.INFO if opts.verbose else logging.WARNING, stream=sys.stderr,
        format="mxdoctor watch: %(levelname)s %(message)s",
    )
    running = build(opts)
    if opts.web is not None:
        assert running.web is not None
        print(f"mxdoctor watch: dashboard at {running.web.url}/", file=sys.stderr, flush=True)
    try:
        last = running.run(max_polls=opts.max_polls)
    finally:
        running.close()
    # --once, as from cron: the one exit policy, UNKNOWN when the queue could not be read.
    untested = opts.max_polls == 1 and last is not None and not last.ok
    if untested:
        assert last is not None
        print(f"mxdoctor: {last.error}", file=sys.stderr)
    return int(exit_status((), untested=untested))
