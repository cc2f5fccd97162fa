"""``mxdoctor watch``: the queue-watching daemon; options from a TOML file, each also on the command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tomllib
from functools import partial
from typing import Any

from mxdoctor.cli import _args
from mxdoctor.diagnosis import exit_status
from mxdoctor.errors import ConfigError
from mxdoctor.monitor import metrics as metrics_mod
from mxdoctor.monitor import notify, state, watch
from mxdoctor.queues.status import parse_duration

DEFAULT_STATE = "/var/lib/mxdoctor/watch.sqlite"

# Every option: its TOML key, its default. The command line wins over the file, the file over these.
DEFAULTS: dict[str, Any] = {
    "source": None, "postfix": None, "exim": False, "sendmail": False, "opensmtpd": False, "exchange": False,
    "format": None, "timeout": "60s", "interval": "60s", "alert_age": "30m", "state": DEFAULT_STATE,
    "queues": [], "metrics": None, "metrics_top": 100, "diagnose": True, "diagnose_every": None,
    "max_diagnoses": 10, "diagnoser": None, "resolvers": [], "externals": [], "dns_port": 53,
    "root_hints": None, "diagnose_deadline": "30s", "log": True, "webhooks": [], "webhook_timeout": "10s",
    "email_relay": None, "email_from": None, "email_to": [], "email_starttls": False, "email_username": None,
    "email_password": None, "email_timeout": "20s", "max_polls": None, "verbose": False,
}
_TABLES = {
    "webhook": {"url": "webhooks", "urls": "webhooks", "timeout": "webhook_timeout"},
    "email": {"relay": "email_relay", "from": "email_from", "to": "email_to", "starttls": "email_starttls",
              "username": "email_username", "password": "email_password", "timeout": "email_timeout"},
}


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
    p.add_argument("--state", help=f"SQLite state file (default {DEFAULT_STATE})")
    p.add_argument("--queue", dest="queues", action="append", metavar="NAME", help="only this queue; may repeat")
    p.add_argument("--webhook", dest="webhooks", action="append", metavar="URL",
                   help="POST each alert as JSON (Slack/Teams compatible); may repeat")
    p.add_argument("--webhook-timeout")
    p.add_argument("--email-relay", metavar="HOST[:PORT]", help="send alerts by mail through this relay")
    p.add_argument("--email-from")
    p.add_argument("--email-to", action="append", metavar="ADDRESS")
    p.add_argument("--email-starttls", action="store_true", default=None)
    p.add_argument("--email-username")
    p.add_argument("--email-timeout")
    p.add_argument("--metrics", metavar="ADDR:PORT", help="serve Prometheus metrics here")
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


def load_config(path: str | None) -> dict[str, Any]:
    """Options from a TOML file, flattened to the command-line names; unknown keys are errors."""
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not TOML: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name in _TABLES and isinstance(value, dict):
            for sub, subvalue in value.items():
                target = _TABLES[name].get(sub.replace("-", "_"))
                if target is None:
                    raise ConfigError(f"{path}: unknown option [{name}] {sub}")
                if target in ("webhooks", "email_to") and isinstance(subvalue, str):
                    subvalue = [subvalue]
                out[target] = subvalue
            continue
        name = {"queue": "queues", "resolver": "resolvers", "external": "externals", "webhook": "webhooks",
                "mta": "mta"}.get(name, name)
        if name == "mta":
            if value not in ("postfix", "exim", "sendmail", "opensmtpd", "exchange"):
                raise ConfigError(f"{path}: mta must be postfix, exim, sendmail, opensmtpd or exchange")
            out[value] = "" if value == "postfix" else True
            continue
        if name not in DEFAULTS:
            raise ConfigError(f"{path}: unknown option {key!r}")
        out[name] = value
    return out


def merged(args: argparse.Namespace) -> dict[str, Any]:
    opts = dict(DEFAULTS)
    opts.update(load_config(args.config))
    for name in DEFAULTS:
        value = getattr(args, name, None)
        if value is not None and value != []:
            opts[name] = value
    if any(getattr(args, k, None) for k in ("postfix", "exim", "sendmail", "opensmtpd", "exchange", "source")):
        # A source on the command line replaces the file's source, whichever kind it is.
        for k in ("postfix", "exim", "sendmail", "opensmtpd", "exchange", "source"):
            opts[k] = getattr(args, k, None) if k in ("postfix", "source") else bool(getattr(args, k, False))
    if opts.get("email_password") is None:
        opts["email_password"] = os.environ.get("MXDOCTOR_SMTP_PASSWORD")
    return opts


def _diagnoser(opts: dict[str, Any]) -> watch.Diagnoser | None:
    if not opts["diagnose"]:
        return None
    spec = opts["diagnoser"]
    if spec:
        module, _, name = str(spec).partition(":")
        try:
            fn = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(f"--diagnoser {spec}: {exc}") from None
        if not callable(fn):
            raise ConfigError(f"--diagnoser {spec}: not callable")
        return fn  # type: ignore[no-any-return]
    from mxdoctor import api

    options = api.DiagnoseOptions(
        deadline=parse_duration(opts["diagnose_deadline"]),
        dns_port=int(opts["dns_port"]),
        resolvers=tuple(opts["resolvers"] or ()),
        externals=tuple(opts["externals"] or ()),
        root_hints=opts["root_hints"] or None,
    )
    return partial(api.diagnose_summary, options=options)


def notifiers_from(opts: dict[str, Any]) -> list[notify.Notifier]:
    out: list[notify.Notifier] = []
    if opts["log"]:
        out.append(notify.LogNotifier())
    for i, url in enumerate(opts["webhooks"] or []):
        if not str(url).startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must be http:// or https://, got {url!r}")
        name = "webhook" if i == 0 else f"webhook{i + 1}"
        out.append(notify.WebhookNotifier(str(url), parse_duration(opts["webhook_timeout"]), name=name))
    if opts["email_relay"]:
        host, _, port = str(opts["email_relay"]).rpartition(":") if ":" in str(opts["email_relay"]) else (
            str(opts["email_relay"]), "", "25")
        if not port.isdigit():
            raise ConfigError(f"--email-relay wants HOST[:PORT], got {opts['email_relay']!r}")
        if not opts["email_from"] or not opts["email_to"]:
            raise ConfigError("e-mail alerts need --email-from and at least one --email-to")
        out.append(notify.EmailNotifier(
            host.strip("[]"), int(port), str(opts["email_from"]), tuple(opts["email_to"]),
            starttls=bool(opts["email_starttls"]), username=opts["email_username"],
            password=opts["email_password"], timeout=parse_duration(opts["email_timeout"]),
        ))
    return out


def build(opts: dict[str, Any]) -> tuple[watch.Watcher, Any]:
    """The watcher and (if asked) the running metrics server, from merged options."""
    ns = argparse.Namespace(**{k: opts[k] for k in ("source", "postfix", "exim", "sendmail", "opensmtpd",
                                                     "exchange", "format", "timeout")})
    source = _args.queue_source(ns)
    options = watch.WatchOptions(
        source=source,
        interval=parse_duration(opts["interval"]),
        alert_age=parse_duration(opts["alert_age"]),
        diagnose=bool(opts["diagnose"]),
        diagnose_every=parse_duration(opts["diagnose_every"]) if opts["diagnose_every"] else None,
        max_diagnoses=int(opts["max_diagnoses"]),
        queues=tuple(opts["queues"] or ()),
    )
    if options.interval <= 0:
        raise ConfigError("--interval must be positive")
    metrics = metrics_mod.WatchMetrics(top=int(opts["metrics_top"])) if opts["metrics"] else None
    notifiers = notifiers_from(opts)
    diagnoser = _diagnoser(opts)
    store = state.State(opts["state"])
    server = metrics_mod.serve(metrics, opts["metrics"]) if metrics is not None else None
    return watch.Watcher(options, store, notifiers, diagnoser, metrics), server


def run(args: argparse.Namespace) -> int:
    opts = merged(args)
    logging.basicConfig(
        level=logging.INFO if opts["verbose"] else logging.WARNING, stream=sys.stderr,
        format="mxdoctor watch: %(levelname)s %(message)s",
    )
    watcher, server = build(opts)
    try:
        last = watcher.run(max_polls=opts["max_polls"])
    finally:
        watcher.state.close()
        if server is not None:
            server.shutdown()
    # --once, as from cron: the one exit policy, UNKNOWN when the queue could not be read.
    untested = opts["max_polls"] == 1 and last is not None and not last.ok
    if untested:
        assert last is not None
        print(f"mxdoctor: {last.error}", file=sys.stderr)
    return int(exit_status((), untested=untested))
