"""The watch's options: the TOML file's schema (frozen dataclasses, loaded by the typed loader), the
defaults, the merge with the command line, and the checked ``Settings`` the watch runs on.

Every mistyped or out-of-range value is a ConfigError naming its key path (or its option), never a
traceback and never ignored; durations are finite and bounded, ports 1-65535, URLs http(s) with a host.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mxdoctor import _loader
from mxdoctor.errors import ConfigError
from mxdoctor.monitor import fleet, notify
from mxdoctor.queues import formats
from mxdoctor.queues.status import DurationTooLong, parse_duration

Duration = str | float

MAX_DURATION = 365 * 86400.0  # past a year an interval is a typo, and threading's waits overflow
MTAS = ("postfix", "exim", "sendmail", "opensmtpd", "exchange")


@dataclass(frozen=True)
class WebhookTable:
    url: str | tuple[str, ...] | None = None
    urls: str | tuple[str, ...] | None = None
    timeout: Duration | None = None
    ca_file: str | None = None


@dataclass(frozen=True)
class EmailTable:
    relay: str | None = None
    from_: str | None = None  # "from" in the file
    to: str | tuple[str, ...] | None = None
    tls: str | None = None
    starttls: bool | None = None
    allow_plaintext: bool | None = None
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    timeout: Duration | None = None


@dataclass(frozen=True)
class WebTable:
    listen: str | None = None
    token: str | None = None
    token_file: str | None = None
    refresh: Duration | None = None


@dataclass(frozen=True)
class HostTable:
    token: str | None = None
    token_file: str | None = None
    silent_after: Duration | None = None


@dataclass(frozen=True)
class WatchFile:
    """Every key a watch config file may hold; a key not declared here is an error."""

    mta: str | None = None
    source: str | None = None
    postfix: str | None = None
    exim: bool | None = None
    sendmail: bool | None = None
    opensmtpd: bool | None = None
    exchange: bool | None = None
    format: str | None = None
    timeout: Duration | None = None
    interval: Duration | None = None
    alert_age: Duration | None = None
    state: str | None = None
    queues: tuple[str, ...] | None = None
    metrics: str | None = None
    metrics_top: int | None = None
    diagnose: bool | None = None
    diagnose_every: Duration | None = None
    max_diagnoses: int | None = None
    diagnoser: str | None = None
    resolvers: tuple[str, ...] | None = None
    externals: tuple[str, ...] | None = None
    dns_port: int | None = None
    root_hints: str | None = None
    diagnose_deadline: Duration | None = None
    log: bool | None = None
    webhook: WebhookTable | None = None
    webhooks: tuple[str, ...] | None = None
    webhook_timeout: Duration | None = None
    retry_max: Duration | None = None
    email: EmailTable | None = None
    email_relay: str | None = None
    email_from: str | None = None
    email_to: str | tuple[str, ...] | None = None
    email_tls: str | None = None
    email_starttls: bool | None = None
    email_allow_plaintext: bool | None = None
    email_ca_file: str | None = None
    email_username: str | None = None
    email_password: str | None = None
    email_timeout: Duration | None = None
    max_polls: int | None = None
    verbose: bool | None = None
    web: WebTable | None = None
    hosts: dict[str, HostTable] | None = None


# Every option by its command-line name, with its default. The command line wins over the file.
DEFAULTS: dict[str, Any] = {
    "source": None, "postfix": None, "exim": False, "sendmail": False, "opensmtpd": False, "exchange": False,
    "format": None, "timeout": "60s", "interval": "60s", "alert_age": "30m", "state": None,
    "queues": (), "metrics": None, "metrics_top": 100, "diagnose": True, "diagnose_every": None,
    "max_diagnoses": 10, "diagnoser": None, "resolvers": (), "externals": (), "dns_port": 53,
    "root_hints": None, "diagnose_deadline": "30s", "log": True, "webhooks": (), "webhook_timeout": "10s",
    "webhook_ca_file": None, "retry_max": "5m", "email_relay": None, "email_from": None, "email_to": (),
    "email_tls": "starttls", "email_starttls": False, "email_allow_plaintext": False, "email_ca_file": None,
    "email_username": None, "email_password": None, "email_timeout": "20s", "max_polls": None,
    "verbose": False, "web": None, "web_token": None, "web_token_file": None, "web_refresh": "30s", "hosts": {},
}
# Old spellings kept working: singular list names.
_ALIASES = {"queue": "queues", "resolver": "resolvers", "external": "externals"}
_TABLE_KEYS = {
    "webhook": {"url": "webhooks", "urls": "webhooks", "timeout": "webhook_timeout", "ca_file": "webhook_ca_file"},
    "email": {"relay": "email_relay", "from_": "email_from", "to": "email_to", "tls": "email_tls",
              "starttls": "email_starttls", "allow_plaintext": "email_allow_plaintext",
              "ca_file": "email_ca_file", "username": "email_username", "password": "email_password",
              "timeout": "email_timeout"},
    "web": {"listen": "web", "token": "web_token", "token_file": "web_token_file", "refresh": "web_refresh"},
}
_FLAGS = {"web": "--web", "queues": "--queue", "resolvers": "--resolver", "externals": "--external",
          "webhooks": "--webhook"}
_SOURCE_KEYS = ("source", "postfix", "exim", "sendmail", "opensmtpd", "exchange")


def load_file(path: str) -> dict[str, tuple[Any, str]]:
    """The options a TOML file sets, by command-line name, each with the key path it came from."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return from_data(_loader.parse_toml(text, source=path, error=ConfigError), path)


def from_data(data: dict[str, Any], path: str) -> dict[str, tuple[Any, str]]:
    """The options of a parsed config file (``path`` names it in errors); see ``load_file``."""
    raw = _normalise(data)
    try:
        parsed = _loader.convert(raw, WatchFile, source=path, error=ConfigError)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("from_", "from")) from None
    out: dict[str, tuple[Any, str]] = {}
    for f in dataclasses.fields(WatchFile):
        value = getattr(parsed, f.name)
        if value is None:
            continue
        if f.name in _TABLE_KEYS:
            for sub in dataclasses.fields(value):
                subvalue = getattr(value, sub.name)
                if subvalue is not None:
                    out[_TABLE_KEYS[f.name][sub.name]] = (subvalue, f"{path}: {f.name}.{sub.name.rstrip('_')}")
        elif f.name == "hosts":
            out["hosts"] = ({name: dataclasses.asdict(table) for name, table in value.items()}, f"{path}: hosts")
        elif f.name == "mta":
            if value not in MTAS:
                raise ConfigError(f"{path}: mta: must be one of {', '.join(MTAS)}, got {value!r}")
            out[value] = ("" if value == "postfix" else True, f"{path}: mta")
        else:
            out[f.name] = (value, f"{path}: {f.name}")
    return out


def _normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """``alert-age`` is ``alert_age``; singular list names are aliases; ``from`` is ``from_``."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        name = _ALIASES.get(name, name) if _ALIASES.get(name) not in raw else name
        if name in _TABLE_KEYS and isinstance(value, dict):
            value = {("from_" if k == "from" else k.replace("-", "_")): v for k, v in value.items()}
        if name == "hosts" and isinstance(value, dict):
            value = {host: {k.replace("-", "_"): v for k, v in table.items()} if isinstance(table, dict) else table
                     for host, table in value.items()}
        out[name] = value
    if isinstance(out.get("webhook"), str | list):
        out["webhooks"] = [out.pop("webhook")] if isinstance(out.get("webhook"), str) else out.pop("webhook")
    return out


@dataclass(frozen=True)
class EmailSettings:
    relay: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    tls: str
    require_tls: bool
    allow_plaintext: bool
    ca_file: str | None
    username: str | None
    password: str | None
    timeout: float


@dataclass(frozen=True)
class WebSettings:
    """The dashboard's listener; ``token`` is kept out of every repr (and so out of logs)."""

    host: str
    port: int
    token: str | None = dataclasses.field(default=None, repr=False)
    refresh: int = 30

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """Whether a listen address is loopback (127.0.0.0/8, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True)
class Settings:
    """The checked options the watch runs on: seconds as floats, addresses split, URLs checked."""

    source: str | None
    postfix: str | None
    exim: bool
    sendmail: bool
    opensmtpd: bool
    exchange: bool
    format: str | None
    timeout: float
    interval: float
    alert_age: float
    state: str | None  # None: the default path (state.default_path)
    queues: tuple[str, ...]
    metrics: tuple[str, int] | None
    metrics_top: int
    diagnose: bool
    diagnose_every: float | None
    max_diagnoses: int
    diagnoser: str | None
    resolvers: tuple[str, ...]
    externals: tuple[str, ...]
    dns_port: int
    root_hints: str | None
    diagnose_deadline: float
    log: bool
    webhooks: tuple[str, ...]
    webhook_timeout: float
    webhook_ca_file: str | None
    retry_max: float
    email: EmailSettings | None
    max_polls: int | None
    verbose: bool
    web: WebSettings | None = None
    hosts: tuple[fleet.Host, ...] = ()


def merge(config: str | dict[str, tuple[Any, str]] | None, command_line: Mapping[str, Any],
          environ: Mapping[str, str]) -> Settings:
    """Defaults, then the file (a path, or what ``from_data`` made of one), then the command line
    (values that are not None or empty), checked."""
    values: dict[str, tuple[Any, str]] = {k: (v, f"default {k}") for k, v in DEFAULTS.items()}
    if isinstance(config, dict):
        values.update(config)
    elif config:
        values.update(load_file(config))
    given = {k: v for k, v in command_line.items() if k in DEFAULTS and v is not None and v != [] and v != ()}
    if any(given.get(k) is not None and given.get(k) is not False for k in _SOURCE_KEYS):
        # A source on the command line replaces the file's source, whichever kind it is.
        for k in _SOURCE_KEYS:
            values[k] = (DEFAULTS[k], f"default {k}")
    for k, v in given.items():
        values[k] = (v, _FLAGS.get(k, "--" + k.replace("_", "-")))
    if values["email_password"][0] is None and environ.get("MXDOCTOR_SMTP_PASSWORD"):
        values["email_password"] = (environ["MXDOCTOR_SMTP_PASSWORD"], "MXDOCTOR_SMTP_PASSWORD")
    return _check(values)


def _check(values: dict[str, tuple[Any, str]]) -> Settings:
    c = _Checker(values)
    fmt = c.text("format")
    if fmt is not None and fmt not in formats.FORMATS:
        raise c.error("format", f"must be one of {', '.join(sorted(formats.FORMATS))}")
    diagnoser = c.text("diagnoser")
    if diagnoser is not None and not re.fullmatch(r"[\w.]+:\w+", diagnoser):
        raise c.error("diagnoser", "must be MODULE:FUNCTION")
    settings = Settings(
        source=c.text("source"), postfix=c.text("postfix"), exim=c.flag("exim"), sendmail=c.flag("sendmail"),
        opensmtpd=c.flag("opensmtpd"), exchange=c.flag("exchange"), format=fmt,
        timeout=c.duration("timeout", positive=True), interval=c.duration("interval", positive=True),
        alert_age=c.duration("alert_age"), state=c.text("state"), queues=c.texts("queues"),
        metrics=c.address("metrics"), metrics_top=c.integer("metrics_top", 0, 1_000_000),
        diagnose=c.flag("diagnose"), diagnose_every=c.optional_duration("diagnose_every"),
        max_diagnoses=c.integer("max_diagnoses", 0, 10_000), diagnoser=diagnoser,
        resolvers=c.texts("resolvers"), externals=c.texts("externals"), dns_port=c.integer("dns_port", 1, 65535),
        root_hints=c.text("root_hints"), diagnose_deadline=c.duration("diagnose_deadline", positive=True),
        log=c.flag("log"), webhooks=tuple(c.url("webhooks", u) for u in c.texts("webhooks", single=True)),
        webhook_timeout=c.duration("webhook_timeout", positive=True), webhook_ca_file=c.text("webhook_ca_file"),
        retry_max=c.duration("retry_max", positive=True), email=_email(c),
        max_polls=None if values["max_polls"][0] is None else c.integer("max_polls", 1, 10**9),
        verbose=c.flag("verbose"), web=_web(c), hosts=_hosts(c),
    )
    if settings.hosts and settings.web is None:
        raise c.error("hosts", "pushed hosts need the [web] listener (web.listen or --web ADDR:PORT)")
    return settings


MIN_TOKEN = 16


def _secret(where: str, token: object, token_file: object) -> str | None:
    """A token given in the file, or read from a token file; never echoed in an error."""
    if token is not None and token_file is not None:
        raise ConfigError(f"{where}: give token or token_file, not both")
    if token_file is not None:
        if not isinstance(token_file, str):
            raise ConfigError(f"{where}.token_file: expected text")
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}.token_file: cannot read {token_file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where}.token_file: {token_file} is not UTF-8 text") from None
    if token is None:
        return None
    if not isinstance(token, str):
        raise ConfigError(f"{where}.token: expected text")
    if len(token) < MIN_TOKEN or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ConfigError(f"{where}: a token of at least {MIN_TOKEN} printable characters without spaces")
    return token


def _web(c: _Checker) -> WebSettings | None:
    address = c.address("web")
    if address is None:
        for name in ("web_token", "web_token_file"):
            if c.raw(name) is not None:
                raise c.error(name, "a token without a listener: set web.listen (or --web ADDR:PORT)")
        return None
    # Errors name the file's web table when the token came from one.
    where = next((c.values[k][1].rsplit(".", 1)[0] for k in ("web_token", "web_token_file", "web")
                  if ": web." in c.values[k][1]), "web")
    token = _secret(where, c.raw("web_token"), c.raw("web_token_file"))
    refresh = c.duration("web_refresh", positive=True)
    if refresh > 86400:
        raise c.error("web_refresh", "must be at most 1d")
    web = WebSettings(host=address[0].strip("[]"), port=address[1], token=token, refresh=max(1, round(refresh)))
    if not web.loopback and token is None:
        raise c.error("web", f"listening on {web.host} (beyond loopback) requires a token "
                      "(web.token or web.token_file)")
    return web


def _hosts(c: _Checker) -> tuple[fleet.Host, ...]:
    raw = c.raw("hosts") or {}
    if not isinstance(raw, dict):
        raise c.error("hosts", "expected a table of [hosts.NAME] tables")
    source = c.values["hosts"][1].rpartition("hosts")[0]  # "FILE: "
    out = []
    for name, table in sorted(raw.items()):
        if not fleet.HOST_NAME.match(name):
            raise ConfigError(f"{source}hosts: {name!r} is not a host name (letters, digits, '.', '-', '_')")
        silent = table.get("silent_after")
        seconds = 20 * 60.0
        if silent is not None:
            one = _Checker({"silent_after": (silent, f"{source}hosts.{name}.silent_after")})
            seconds = one.duration("silent_after", positive=True)
        try:
            out.append(fleet.Host.make(name, token=table.get("token"), token_file=table.get("token_file"),
                                       silent_after=seconds))
        except ConfigError as exc:
            raise ConfigError(f"{source}{exc}") from None
    return tuple(out)


def _email(c: _Checker) -> EmailSettings | None:
    relay = c.text("email_relay")
    if relay is None:
        return None
    host, port = c.hostport("email_relay", relay)
    tls = c.text("email_tls") or "starttls"
    if tls not in notify.EMAIL_TLS_MODES:
        raise c.error("email_tls", f"must be one of {', '.join(notify.EMAIL_TLS_MODES)}, got {tls!r}")
    sender = c.text("email_from")
    recipients = c.texts("email_to", single=True)
    if not sender or not recipients:
        raise ConfigError("e-mail alerts need --email-from and at least one --email-to")
    for name, address in [("email_from", sender), *(("email_to", r) for r in recipients)]:
        if "@" not in address or any(ch.isspace() or ord(ch) < 32 for ch in address):
            raise c.error(name, f"not a mail address: {address!r}")
    username, allow_plaintext = c.text("email_username"), c.flag("email_allow_plaintext")
    require = c.flag("email_starttls")
    if tls == "none" and (require or (username and not allow_plaintext)):
        raise c.error("email_tls", "\"none\" would send credentials in clear text: set allow_plaintext = true")
    return EmailSettings(
        relay=host, port=port or (465 if tls == "implicit" else 25), sender=sender, recipients=recipients,
        tls=tls, require_tls=require, allow_plaintext=allow_plaintext, ca_file=c.text("email_ca_file"),
        username=username, password=c.text("email_password"), timeout=c.duration("email_timeout", positive=True),
    )


class _Checker:
    """Reads one option at a time and raises a ConfigError naming where a bad value came from."""

    def __init__(self, values: dict[str, tuple[Any, str]]) -> None:
        self.values = values

    def error(self, name: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.values[name][1]}: {problem}")

    def raw(self, name: str) -> Any:
        return self.values[name][0]

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(name, f"expected text, got {type(value).__name__}")
        return value

    def texts(self, name: str, *, single: bool = False) -> tuple[str, ...]:
        value = self.raw(name)
        if single and isinstance(value, str):
            value = (value,)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise self.error(name, "expected a list of text")
        return tuple(value)

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {value!r}")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise self.error(name, f"must be between {low} and {high}, got {value}")
        return value

    def duration(self, name: str, *, positive: bool = False) -> float:
        value = self.raw(name)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.error(name, f"expected a duration such as 90s or 30m, got {value!r}")
        if isinstance(value, int | float) and not (math.isfinite(value) and value >= 0):
            raise self.error(name, f"must be a finite duration of zero or more, got {value!r}")
        if isinstance(value, int | float) and value > MAX_DURATION:
            raise self.error(name, f"must be at most 365d, got {value!r}")
        try:
            seconds = parse_duration(value)
        except DurationTooLong:
            raise self.error(name, f"must be at most 365d, got {value!r}") from None
        except ConfigError as exc:
            raise self.error(name, str(exc)) from None
        if not math.isfinite(seconds) or seconds < 0:
            raise self.error(name, f"must be a finite duration of zero or more, got {value!r}")
        if positive and seconds <= 0:
            raise self.error(name, f"must be more than zero, got {value!r}")
        if seconds > MAX_DURATION:
            raise self.error(name, f"must be at most 365d, got {value!r}")
        return seconds

    def optional_duration(self, name: str) -> float | None:
        return None if self.raw(name) is None else self.duration(name, positive=True)

    def hostport(self, name: str, text: str) -> tuple[str, int | None]:
        """``HOST``, ``HOST:PORT`` or ``[v6]:PORT``; the port 1-65535."""
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else None
            if rest and port_text is None:
                raise self.error(name, f"wants HOST[:PORT], got {text!r}")
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
        else:
            host, port_text = text, None
        if not host or any(ch.isspace() or ord(ch) < 32 for ch in host):
            raise self.error(name, f"wants HOST[:PORT], got {text!r}")
        if port_text is None:
            return host, None
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise self.error(name, f"port must be 1-65535, got {port_text!r}")
        return host, int(port_text)

    def address(self, name: str) -> tuple[str, int] | None:
        text = self.text(name)
        if text is None:
            return None
        host, port = self.hostport(name, text)
        if port is None:
            raise self.error(name, f"wants ADDR:PORT, got {text!r}")
        return host, port

    def url(self, name: str, text: str) -> str:
        try:
            parts = urllib.parse.urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise self.error(name, f"not a URL: {text!r} ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.error(name, f"must be an http:// or https:// URL with a host, got {text!r}")
        if port == 0 or any(ch.isspace() or ord(ch) < 32 for ch in text):
            raise self.error(name, f"not a usable URL: {text!r}")
        return text


def notifiers(settings: Settings) -> list[notify.Notifier]:
    """The notifiers the settings ask for, in delivery order of their names: log, webhooks, e-mail."""
    out: list[notify.Notifier] = []
    if settings.log:
        out.append(notify.LogNotifier())
    for i, url in enumerate(settings.webhooks):
        name = "webhook" if i == 0 else f"webhook{i + 1}"
        out.append(notify.WebhookNotifier(url, settings.webhook_timeout, name=name,
                                          ca_file=settings.webhook_ca_file))
    e = settings.email
    if e is not None:
        out.append(notify.EmailNotifier(
            e.relay, e.port, e.sender, e.recipients, tls=e.tls, require_tls=e.require_tls,
            allow_plaintext=e.allow_plaintext, ca_file=e.ca_file, username=e.username, password=e.password,
            timeout=e.timeout,
        ))
    return out
