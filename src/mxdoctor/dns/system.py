"""Where the DNS servers of a run come from: /etc/resolv.conf, ``ADDR[:PORT]`` arguments and
named.root hint files, parsed into ``evidence.Server`` values.
"""

from __future__ import annotations

import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

from mxdoctor import evidence
from mxdoctor.errors import ConfigError

RESOLV_CONF = "/etc/resolv.conf"
MAXNS = 3  # glibc reads at most three nameserver lines


def parse_server(text: str, default_port: int = 53) -> evidence.Server:
    """``"192.0.2.1"``, ``"192.0.2.1:5300"``, ``"::1"`` or ``"[::1]:5300"`` -> Server.

    Raises ConfigError for anything that is not an IP address with an optional port.
    """
    raw = text.strip()
    host, port = raw, default_port
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise ConfigError(f"{text!r}: missing ']' after the IPv6 address")
        host, rest = raw[1:end], raw[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"{text!r}: expected ':PORT' after ']'")
            port = _port(text, rest[1:])
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
        port = _port(text, port_text)
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        raise ConfigError(f"{text!r} is not an IP address (ADDR or ADDR:PORT, IPv6 as [ADDR]:PORT)") from None
    return evidence.Server(address.compressed, port)


def _port(text: str, port_text: str) -> int:
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{text!r}: port must be a number from 1 to 65535")
    return int(port_text)


def resolv_conf_servers(path: str | Path = RESOLV_CONF, port: int = 53) -> tuple[evidence.Server, ...]:
    """The nameservers of a resolv.conf, in order, as the stub resolver reads them.

    Without any (no file, no usable line) glibc asks the local host, and so do we.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    servers: list[evidence.Server] = []
    for line in text.splitlines():
        fields = line.split("#")[0].split(";")[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                address = ipaddress.ip_address(fields[1].split("%")[0])
            except ValueError:
                continue
            servers.append(evidence.Server(address.compressed, port))
    return tuple(servers[:MAXNS]) or (evidence.Server("127.0.0.1", port),)


@dataclass(frozen=True)
class StubTimer:
    """How long the host's stub resolver (glibc) waits for one question: ``timeout`` seconds per
    try, ``attempts`` tries (resolv.conf ``options timeout:N attempts:N``; defaults 5 s and 2)."""

    timeout: float = 5.0
    attempts: int = 2

    @property
    def wait(self) -> float:
        return self.timeout * self.attempts


_TIMEOUT_MAX = 30  # glibc RES_MAXRETRANS
_ATTEMPTS_MAX = 5  # glibc RES_MAXRETRY


def resolv_conf_timer(path: str | Path = RESOLV_CONF) -> StubTimer:
    """The stub's timer from a resolv.conf as glibc reads it: the last value of each option wins,
    values are capped as glibc caps them, unreadable values are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    timeout, attempts = StubTimer.timeout, StubTimer.attempts
    for line in text.splitlines():
        fields = line.split("#")[0].split(";")[0].split()
        if not fields or fields[0] != "options":
            continue
        for option in fields[1:]:
            key, _, value = option.partition(":")
            if not value.isdigit():
                continue
            if key == "timeout":
                timeout = float(min(max(int(value), 1), _TIMEOUT_MAX))
            elif key == "attempts":
                attempts = min(max(int(value), 1), _ATTEMPTS_MAX)
    return StubTimer(timeout, attempts)


def system_servers(path: str | Path = RESOLV_CONF, port: int = 53) -> tuple[evidence.Server, ...]:
    """The servers the host's stub resolver asks: /etc/resolv.conf on POSIX; on Windows, the
    adapters' DNS servers from the registry, as dnspython reads them (there is no resolv.conf)."""
    if sys.platform == "win32" and Path(path) == Path(RESOLV_CONF):
        return windows_servers(port)
    return resolv_conf_servers(path, port)


def windows_servers(port: int = 53) -> tuple[evidence.Server, ...]:
    """The Windows resolver configuration through dnspython's registry reader."""
    import dns.resolver

    try:
        names = dns.resolver.Resolver(configure=True).nameservers
    except (dns.resolver.NoResolverConfiguration, OSError) as exc:
        raise ConfigError(f"cannot read the Windows DNS client configuration: {exc}") from None
    servers = []
    for name in names:
        try:
            servers.append(evidence.Server(ipaddress.ip_address(str(name).split("%")[0]).compressed, port))
        except ValueError:
            continue  # a DNS-over-HTTPS URL or a name: not a classic server address
    if not servers:
        raise ConfigError("the Windows DNS client configuration names no DNS server")
    return tuple(servers)


def parse_root_hints(text: str, source: str = "root hints") -> dict[str, tuple[str, ...]]:
    """A named.root file -> {root server name: addresses}, in the file's order.

    Raises ConfigError when it names no root server with an address.
    """
    names: list[str] = []
    addresses: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split(";")[0].split()
        if not fields:
            continue
        if len(fields) < 3:
            raise ConfigError(f"{source}: cannot read line {line.strip()!r}")
        owner, kind, value = fields[0].lower(), fields[-2].upper(), fields[-1].lower()
        owner = owner if owner.endswith(".") else owner + "."
        if kind == "NS" and owner == ".":
            names.append(value if value.endswith(".") else value + ".")
        elif kind in ("A", "AAAA"):
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                raise ConfigError(f"{source}: {value!r} is not an address") from None
            addresses.setdefault(owner, []).append(address.compressed)
    hints = {n: tuple(addresses.get(n, ())) for n in dict.fromkeys(names) if addresses.get(n)}
    if not hints:
        hints = {n: tuple(a) for n, a in addresses.items()}
    if not hints:
        raise ConfigError(f"{source}: no root server with an address")
    return hints


def load_root_hints(path: str | Path | None) -> dict[str, tuple[str, ...]]:
    """Root hints from a named.root file, or the built-in IANA list when ``path`` is None."""
    if path is None:
        from mxdoctor.dns import _roothints

        return parse_root_hints(_roothints.NAMED_ROOT, "built-in root hints")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read root hints ({exc})") from None
    return parse_root_hints(text, str(path))
