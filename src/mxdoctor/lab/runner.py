"""Running a scenario: every DNS and SMTP server of it on loopback, and the card that says where.

``running(scenario)`` starts the servers on an asyncio loop in a background thread, writes the
root-hints file, waits until every server answers, yields the ``Card``, and frees everything on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shlex
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mxdoctor.dns import anchor as trust_anchor
from mxdoctor.errors import LabError, ScenarioError
from mxdoctor.lab import authoritative, dnsserver, signing
from mxdoctor.lab import scenario as scenario_mod

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from mxdoctor.lab import resolver as resolver_mod
    from mxdoctor.lab import smtp as smtp_mod

T = TypeVar("T")

READY_TIMEOUT = 10.0  # seconds for every server to answer after start
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 8


@dataclass(frozen=True)
class Endpoint:
    """Where one lab server listens."""

    name: str
    address: str
    port: int
    role: str = ""
    zones: tuple[str, ...] = ()

    @property
    def hostport(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "address": self.address, "port": self.port}
        if self.role:
            out["role"] = self.role
        if self.zones:
            out["zones"] = list(self.zones)
        return out


@dataclass(frozen=True)
class SmtpEndpoint:
    host: str
    addresses: tuple[str, ...]
    port: int
    greeting: int

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "addresses": list(self.addresses),
            "port": self.port,
            "greeting": self.greeting,
        }


@dataclass(frozen=True)
class Card:
    """What a running lab offers: its ports, resolvers, root hints and the command to try."""

    scenario: str
    description: str
    dns_port: int
    smtp_port: int
    root_hints: str
    resolvers: tuple[Endpoint, ...]
    domains: tuple[str, ...]
    servers: tuple[Endpoint, ...]
    smtp_servers: tuple[SmtpEndpoint, ...]
    expect: scenario_mod.Expect
    diagnose_command: str
    workdir: str
    trust_anchor: str = ""  # a file of the lab root's DS records when the scenario signs zones
    _lab: Lab | None = field(default=None, repr=False, compare=False)

    def resolver(self, name: str = "internal") -> Endpoint:
        for endpoint in self.resolvers:
            if endpoint.name == name:
                return endpoint
        raise KeyError(name)

    def server(self, name: str) -> Endpoint:
        """A DNS server by name: a resolver name, or an NS host name with or without its trailing dot."""
        for endpoint in self.servers:
            if endpoint.name in (name, name.lower(), name.lower() + "."):
                return endpoint
        raise KeyError(name)

    def dns_server(self, name: str) -> dnsserver.DnsServer:
        """The live server object (its ``queries`` log shows what it was asked)."""
        if self._lab is None:
            raise LookupError("this card is not attached to a running lab")
        return self._lab.dns_server(self.server(name).name)

    def smtp_messages(self) -> list[Any]:
        """Every message the lab SMTP servers received so far (``ReceivedMessage`` objects)."""
        if self._lab is None:
            return []
        return self._lab.smtp_messages()

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "description": self.description,
            "dns_port": self.dns_port,
            "smtp_port": self.smtp_port,
            "root_hints": self.root_hints,
            "resolvers": [r.to_json() for r in self.resolvers],
            "domains": list(self.domains),
            "servers": [s.to_json() for s in self.servers],
            "smtp_servers": [s.to_json() for s in self.smtp_servers],
            "expect": self.expect.to_json(),
            "diagnose_command": self.diagnose_command,
            "workdir": self.workdir,
            **({"trust_anchor": self.trust_anchor} if self.trust_anchor else {}),
        }

    def to_text(self, *, live: bool = True) -> str:
        """The card as text; ``live=False`` for a lab already stopped (no command to try against it)."""
        lines = [f"lab scenario {self.scenario}: {self.description}"]
        for endpoint in self.resolvers:
            lines.append(f"  resolver {endpoint.name:<9} {endpoint.hostport}")
        lines.append(f"  root hints        {self.root_hints}  (lab DNS port {self.dns_port})")
        if self.trust_anchor:
            lines.append(f"  trust anchor      {self.trust_anchor}  (DS of the signed lab root)")
        for mail in self.smtp_servers:
            lines.append(
                f"  smtp {mail.host} on {', '.join(mail.addresses)} port {mail.port} (greets {mail.greeting})"
            )
        lines.append(f"  mail domains      {', '.join(self.domains)}")
        if live:
            lines.append(f"  try: {self.diagnose_command}")
        else:
            lines.append(f"  (this lab has stopped; `mxdoctor lab serve {self.scenario}` runs it and prints "
                         "the diagnose command to try)")
        return "\n".join(lines)


def resolve_scenario(ref: str | os.PathLike[str] | scenario_mod.Scenario) -> scenario_mod.Scenario:
    if isinstance(ref, scenario_mod.Scenario):
        return ref
    return scenario_mod.load(ref if isinstance(ref, str) else Path(ref))


@contextlib.contextmanager
def running(
    scenario: str | os.PathLike[str] | scenario_mod.Scenario,
    *,
    port: int | None = None,
    smtp_port: int | None = None,
    allow_offbox: bool = False,
) -> Iterator[Card]:
    """Run a scenario's servers for the duration of the ``with`` block.

    ``scenario`` is a built-in name, a path, or a loaded Scenario. ``port`` is the one DNS port of the
    lab (default: 53 when root and free, else a free high port); ``smtp_port`` likewise (25 or high).
    A scenario whose resolvers would query addresses off the machine (forwarders, name server
    addresses) is refused unless ``allow_offbox``. Raises ScenarioError for a malformed or off-box
    scenario and LabError when the servers cannot start.
    """
    if os.name != "posix":
        # The lab binds many 127.0.0.x addresses and locks files the POSIX way; Windows has neither.
        raise LabError("the lab needs a POSIX host (Linux, BSD or macOS); diagnose, audit, queue and watch do not")
    loaded = resolve_scenario(scenario)
    if not allow_offbox:
        refuse_offbox(loaded)
    lab = Lab(loaded, port=port, smtp_port=smtp_port)
    card = lab.start()
    try:
        yield card
    finally:
        lab.stop()


def refuse_offbox(loaded: scenario_mod.Scenario) -> None:
    """Raise ScenarioError if the lab would send queries off the machine: nothing leaves it by default."""
    found = scenario_mod.offbox(loaded)
    if found:
        what, address = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ScenarioError(
            loaded.source,
            "",
            f"the lab would send queries off the machine, to {what} {address}{more}; "
            "`lab serve --allow-offbox` allows that",
        )


class Lab:
    """The live servers of one scenario; use ``running()`` rather than this class directly."""

    def __init__(self, scenario: scenario_mod.Scenario, *, port: int | None, smtp_port: int | None) -> None:
        self.scenario = scenario
        self.requested_port = port
        self.requested_smtp_port = smtp_port
        self.dns_port = 0
        self.smtp_port = 0
        self.workdir: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._dns: dict[str, dnsserver.DnsServer] = {}
        self._smtp: list[smtp_mod.LabSmtpServer] = []
        self._zones: dict[str, Any] = {}
        self._anchor: list[str] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Card:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"mxdoctor-lab-{self.scenario.name}-"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"mxdoctor-lab-{self.scenario.name}", daemon=True
        )
        self._thread.start()
        try:
            self._sign()
            self._start_dns()
            self._start_smtp()
            hints = self._write_root_hints()
            anchor = self._write_trust_anchor()
            self._wait_ready()
            return self._card(hints, anchor)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in self._smtp:
            with contextlib.suppress(Exception):
                server.stop()
        self._smtp = []
        if self._loop is not None:
            if self._dns:
                with contextlib.suppress(Exception):
                    self._call(self._stop_dns(list(self._dns.values())), STOP_TIMEOUT)
            self._dns = {}
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(STOP_TIMEOUT)
            if not self._loop.is_running():
                self._loop.close()
            self._loop = None
            self._thread = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        assert self._loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    # -- DNS ------------------------------------------------------------------------------------

    def _start_dns(self) -> None:
        candidates = _candidate_ports(self.requested_port, privileged=53)
        last: OSError | None = None
        for candidate in candidates:
            servers = self._build_dns(candidate)
            try:
                self._call(self._start_all(servers), READY_TIMEOUT)
            except OSError as exc:
                last = exc
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES) or self.requested_port is not None:
                    break
                continue
            self.dns_port = candidate
            self._dns = {s.name: s for s in servers}
            return
        where = f"port {self.requested_port}" if self.requested_port is not None else "any DNS port tried"
        raise LabError(f"cannot start the lab DNS servers on {where}: {last}")

    def _sign(self) -> None:
        """Parse the zones and sign those the scenario signs, with keys made now."""
        zones = {z.origin: z.parse() for z in self.scenario.zones}
        self._publish_tlsa(zones)
        specs = {z.origin: z.signing for z in self.scenario.zones if z.signing is not None}
        self._anchor = signing.sign_all(zones, specs, now=time.time()) if specs else []
        self._zones = zones

    def _publish_tlsa(self, zones: dict[str, Any]) -> None:
        """TLSA at _25._tcp.<host> for SMTP servers that ask for one, from the certificate they will
        present (made now, in the directory the SMTP servers take it from)."""
        wanted = [s for s in self.scenario.smtp if s.tlsa]
        if not wanted:
            return
        import hashlib

        import dns.name
        import dns.rdata
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        from mxdoctor.checks import _dane
        from mxdoctor.lab import certs

        assert self.workdir is not None
        cert_dir = self.workdir / "certs"
        cert_dir.mkdir(exist_ok=True)
        for spec in wanted:
            assert spec.tlsa is not None
            usage, selector, mtype = (int(w) for w in spec.tlsa.split())
            pem, _key = certs.make_certificate([spec.host], cert_dir)
            chain = [c.public_bytes(serialization.Encoding.DER)
                     for c in x509.load_pem_x509_certificates(Path(pem).read_bytes())]
            der = chain[0] if usage == 3 else chain[-1]
            data = _dane.association(der, selector, mtype) or b""
            if spec.tlsa_stale:
                # The record of the key before a certificate change: same shape, another value.
                data = hashlib.sha256(b"stale " + data).digest() if mtype != 2 else hashlib.sha512(data).digest()
            owner = dns.name.from_text(f"_25._tcp.{spec.host}.")
            zone = max((z for o, z in zones.items() if owner.is_subdomain(dns.name.from_text(o))),
                       key=lambda z: len(z.origin), default=None)
            if zone is None:
                continue
            rdata = dns.rdata.from_text("IN", "TLSA", f"{usage} {selector} {mtype} {data.hex()}")
            zone.find_rdataset(owner, "TLSA", create=True).add(rdata, 3600)

    def _build_dns(self, port: int) -> list[dnsserver.DnsServer]:
        zones = self._zones
        servers = []
        for spec in self.scenario.servers:
            handler: dnsserver.Handler
            if spec.recursive:
                handler = self._resolver(spec, port).handle
            else:
                handler = authoritative.Authoritative([zones[o] for o in spec.zones]).handle
            servers.append(dnsserver.DnsServer(spec.name, spec.address, port, handler, spec.faults))
        return servers

    def _resolver(self, spec: scenario_mod.Server, port: int) -> resolver_mod.RecursiveResolver:
        from mxdoctor.lab import resolver as resolver_mod

        forwarders: list[tuple[str, int]] = []
        for ref in spec.forwarders:
            parsed = scenario_mod.forwarder_address(ref)
            if parsed is not None:
                forwarders.append((parsed[0], parsed[1] if parsed[1] is not None else port))
            else:
                forwarders.append((self.scenario.server(ref).address, port))
        anchor = [trust_anchor.rdata_of(line) for line in self._anchor] if spec.validate else []
        return resolver_mod.RecursiveResolver(
            list(self.scenario.root_hints),
            port,
            forwarders=forwarders,
            stale=spec.stale,
            query_timeout=spec.query_timeout,
            trust_anchor=anchor,
        )

    async def _start_all(self, servers: Sequence[dnsserver.DnsServer]) -> None:
        started: list[dnsserver.DnsServer] = []
        try:
            for server in servers:
                await server.start()
                started.append(server)
        except BaseException:
            await self._stop_dns(started)
            raise

    @staticmethod
    async def _stop_dns(servers: Sequence[dnsserver.DnsServer]) -> None:
        await asyncio.gather(*(s.stop() for s in servers), return_exceptions=True)

    def dns_server(self, name: str) -> dnsserver.DnsServer:
        return self._dns[name]

    # -- SMTP -----------------------------------------------------------------------------------

    def _start_smtp(self) -> None:
        if not self.scenario.smtp:
            self.smtp_port = self.requested_smtp_port or 0
            return
        # Imported here: starting a lab without SMTP servers needs neither aiosmtpd nor TLS.
        from mxdoctor.lab import smtp as smtp_mod

        assert self.workdir is not None
        cert_dir = self.workdir / "certs"
        cert_dir.mkdir(exist_ok=True)
        last: OSError | None = None
        for candidate in _candidate_ports(self.requested_smtp_port, privileged=25):
            started: list[smtp_mod.LabSmtpServer] = []
            try:
                for spec in self.scenario.smtp:
                    config = smtp_mod.SmtpConfig(
                        hostname=spec.host,
                        greeting_code=spec.greeting,
                        greeting_text=spec.greeting_text,
                        extensions=spec.extensions,
                        starttls=spec.starttls,
                        rcpt_reject=spec.rcpt_reject,
                    )
                    for address in spec.addresses:
                        server = smtp_mod.LabSmtpServer(config, address, candidate, cert_dir)
                        server.start()
                        started.append(server)
            except OSError as exc:
                last = exc
                for server in started:
                    with contextlib.suppress(Exception):
                        server.stop()
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES) or self.requested_smtp_port is not None:
                    break
                continue
            self.smtp_port = candidate
            self._smtp = started
            return
        where = (
            f"port {self.requested_smtp_port}"
            if self.requested_smtp_port is not None
            else "any SMTP port tried"
        )
        raise LabError(f"cannot start the lab SMTP servers on {where}: {last}")

    def smtp_messages(self) -> list[smtp_mod.ReceivedMessage]:
        return [message for server in self._smtp for message in server.messages]

    # -- readiness and the card -----------------------------------------------------------------

    def _write_root_hints(self) -> Path:
        assert self.workdir is not None
        path = self.workdir / "root.hints"
        lines = [
            f"; root hints of the mxdoctor lab scenario {self.scenario.name} (named.root format)",
            f"; every lab server listens on port {self.dns_port}",
        ]
        for name, address in self.scenario.root_hints:
            rtype = "AAAA" if ":" in address else "A"
            lines.append(f".                        3600000      NS    {name.upper()}")
            lines.append(f"{name.upper():<24} 3600000      {rtype:<5} {address}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def _write_trust_anchor(self) -> Path | None:
        if not self._anchor:
            return None
        assert self.workdir is not None
        path = self.workdir / "root.key"
        header = f"; trust anchor of the mxdoctor lab scenario {self.scenario.name}: DS of the lab root\n"
        path.write_text(header + "\n".join(self._anchor) + "\n", encoding="utf-8")
        return path

    def _wait_ready(self) -> None:
        targets = [(s.address, s.port) for s in self._dns.values()]
        targets += [(a, self.smtp_port) for spec in self.scenario.smtp for a in spec.addresses]
        deadline = time.monotonic() + READY_TIMEOUT
        for address, port in targets:
            while True:
                try:
                    with socket.create_connection((address, port), timeout=1.0):
                        break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        raise LabError(f"lab server {address} port {port} does not answer: {exc}") from None
                    time.sleep(0.05)

    def _card(self, hints: Path, anchor: Path | None = None) -> Card:
        assert self.workdir is not None
        scenario = self.scenario
        resolvers = tuple(
            Endpoint(s.name, s.address, self.dns_port, s.role) for s in scenario.servers if s.recursive
        )
        servers = tuple(Endpoint(s.name, s.address, self.dns_port, s.role, s.zones) for s in scenario.servers)
        smtp = tuple(SmtpEndpoint(s.host, s.addresses, self.smtp_port, s.greeting) for s in scenario.smtp)
        command = diagnose_command(
            scenario.domains[0], resolvers, hints, self.dns_port, self.smtp_port if scenario.smtp else None,
            trust_anchor=anchor,
        )
        return Card(
            scenario=scenario.name,
            description=scenario.description,
            dns_port=self.dns_port,
            smtp_port=self.smtp_port,
            root_hints=str(hints),
            resolvers=resolvers,
            domains=scenario.domains,
            servers=servers,
            smtp_servers=smtp,
            expect=scenario.expect,
            diagnose_command=command,
            workdir=str(self.workdir),
            trust_anchor=str(anchor) if anchor is not None else "",
            _lab=self,
        )


def diagnose_command(
    domain: str, resolvers: Sequence[Endpoint], hints: Path, dns_port: int, smtp_port: int | None = None,
    *, trust_anchor: Path | None = None,
) -> str:
    """The command line that diagnoses ``domain`` through this lab (and probes its SMTP servers)."""
    words = ["mxdoctor", "diagnose", domain]
    by_name = {r.name: r for r in resolvers}
    if "internal" in by_name:
        words += ["--resolver", by_name["internal"].hostport]
    if "external" in by_name:
        words += ["--external", by_name["external"].hostport]
    words += ["--root-hints", str(hints), "--dns-port", str(dns_port)]
    if trust_anchor is not None:
        words += ["--trust-anchor", str(trust_anchor)]
    if smtp_port:
        words += ["--smtp", "--smtp-port", str(smtp_port)]
    return shlex.join(words)


def card_json(card: Card) -> str:
    return json.dumps(card.to_json(), indent=2, sort_keys=False)


def _candidate_ports(requested: int | None, *, privileged: int) -> list[int]:
    if requested is not None:
        return [requested]
    ports: list[int] = []
    if os.geteuid() == 0:
        ports.append(privileged)
    while len(ports) < PORT_ATTEMPTS:
        port = _free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now (others may still take it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise LabError("no free port found on 127.0.0.1")
