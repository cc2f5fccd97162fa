"""Lab scenarios: TOML typed by the one loader, size-limited, completed into frozen dataclasses with the
DNS hierarchy filled in (root and TLD zones and servers, delegations and glue, the SOA and NS a zone
lacks, the healthy `internal` and `external` resolvers)."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from mxdoctor import _loader
from mxdoctor.errors import ScenarioError
from mxdoctor.lab import faults as faults_mod
from mxdoctor.lab import signing as signing_mod
from mxdoctor.lab.resolver import StaleRecord
from mxdoctor.mta import models as mta_models

MTAS = tuple(mta_models.MODELS)  # the names expect.verdicts may use
VERDICTS = ("deliver", "defer", "bounce")
ROLES = ("authoritative", "recursive", "forwarder")

ROOT_SERVER = ("a.root-servers.net.", "127.0.0.2")
TLD_SERVER = ("a.gtld-servers.net.", "127.0.0.3")
DEFAULT_RESOLVERS = (("internal", "127.0.0.10"), ("external", "127.0.0.20"))
FIRST_AUTO_ADDRESS = 30  # 127.0.0.30 onwards for DNS servers declared without an address
DEFAULT_TTL = 3600
NEGATIVE_TTL = 300
DEFAULT_EXTENSIONS = ("PIPELINING", "8BITMIME", "SIZE 10240000")

# Size limits: far above any scenario of ours, far below what would cost seconds or much memory.
MAX_FILE_BYTES = 1024 * 1024
MAX_ZONE_BYTES = 512 * 1024
MAX_ZONE_RECORDS = 5000  # per zone, $GENERATE included
MAX_RECORDS = 20000  # in all the zones of a scenario
MAX_SERVERS = 100  # DNS servers, SMTP servers and zones, each
MAX_FAULTS = 100  # per server
_CODE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
_RESOLVER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Zone:
    """One zone in master-file text with absolute names; ``generated`` for the loader's own."""

    origin: str
    text: str
    generated: bool = False
    signing: signing_mod.ZoneSigning | None = None  # signed when the lab starts (keys are made then)

    def parse(self) -> dns.zone.Zone:
        return dns.zone.from_text(self.text, origin=self.origin, relativize=False)


@dataclass(frozen=True)
class Server:
    """A lab DNS server. Authoritative servers are named by their NS host name (FQDN, trailing dot)."""

    name: str
    address: str
    role: str = "authoritative"
    zones: tuple[str, ...] = ()
    faults: tuple[faults_mod.Fault, ...] = ()
    forwarders: tuple[str, ...] = ()
    stale: tuple[StaleRecord, ...] = ()
    lame: tuple[str, ...] = ()
    query_timeout: float = 1.0
    generated: bool = False
    validate: bool = True  # a recursive resolver validates DNSSEC when the lab has a trust anchor

    @property
    def recursive(self) -> bool:
        return self.role in ("recursive", "forwarder")


@dataclass(frozen=True)
class SmtpServer:
    host: str
    addresses: tuple[str, ...]
    greeting: int = 220
    greeting_text: str | None = None
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    starttls: bool = True
    rcpt_reject: tuple[tuple[str, int, str], ...] = ()
    tlsa: str | None = None  # "usage selector mtype": a TLSA record for its certificate, made at start
    tlsa_stale: bool = False  # the TLSA names a key the server no longer uses (a certificate change)


@dataclass(frozen=True)
class Expect:
    findings: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    verdicts: Mapping[str, str] = field(default_factory=dict)
    diagnosis: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "findings": list(self.findings),
            "forbidden": list(self.forbidden),
            "verdicts": dict(self.verdicts),
            "diagnosis": self.diagnosis,
        }


@dataclass(frozen=True)
class Scenario:
    name: str
    source: str
    description: str
    domains: tuple[str, ...]
    zones: tuple[Zone, ...]
    servers: tuple[Server, ...]
    smtp: tuple[SmtpServer, ...] = ()
    expect: Expect = field(default_factory=Expect)

    def server(self, name: str) -> Server:
        for server in self.servers:
            if server.name == name or server.name == _fqdn_or_none(name):
                return server
        raise KeyError(name)

    def zone(self, origin: str) -> Zone:
        wanted = _fqdn_or_none(origin)
        for zone in self.zones:
            if zone.origin == wanted:
                return zone
        raise KeyError(origin)

    @property
    def resolvers(self) -> tuple[Server, ...]:
        return tuple(s for s in self.servers if s.recursive)

    @property
    def authoritative(self) -> tuple[Server, ...]:
        return tuple(s for s in self.servers if not s.recursive)

    @property
    def root_hints(self) -> tuple[tuple[str, str], ...]:
        return tuple((s.name, s.address) for s in self.authoritative if "." in s.zones)

    def servers_of(self, origin: str) -> tuple[Server, ...]:
        wanted = _fqdn_or_none(origin)
        return tuple(s for s in self.authoritative if wanted in s.zones)


# ---------------------------------------------------------------------------------------------
# The file as written: typed by the loader, checked and completed by the builder below


@dataclass(frozen=True)
class _SigningFaultFile:
    kind: str
    name: str | None = None
    type: str | None = None

    def __post_init__(self) -> None:
        kinds = [k.value for k in signing_mod.FaultKind]
        if self.kind not in kinds:
            raise _loader.field_error("kind", f"expected one of {', '.join(kinds)}; got {_loader.shown(self.kind)}")
        if self.name is not None:
            try:
                dns.name.from_text(self.name)
            except dns.exception.DNSException:
                raise _loader.field_error("name", f"not a domain name: {_loader.shown(self.name)}") from None
        if self.type is not None:
            try:
                dns.rdatatype.from_text(self.type.upper())
            except Exception:
                raise _loader.field_error("type", f"unknown record type {_loader.shown(self.type)}") from None


@dataclass(frozen=True)
class _ZoneTable:
    text: str
    dnssec: bool = False
    algorithm: Literal[8, 13, 15] = 13
    denial: Literal["nsec", "nsec3"] = "nsec"
    dnssec_faults: tuple[_SigningFaultFile, ...] = ()

    def __post_init__(self) -> None:
        if self.dnssec_faults and not self.dnssec:
            raise _loader.field_error("dnssec_faults", "only a signed zone (dnssec = true) has signing faults")
        if len(self.dnssec_faults) > MAX_FAULTS:
            raise _loader.field_error("dnssec_faults", f"more than {MAX_FAULTS} faults on one zone")

    def signing(self, origin: str) -> signing_mod.ZoneSigning | None:
        if not self.dnssec:
            return None
        faults = tuple(
            signing_mod.SigningFault(
                signing_mod.FaultKind(f.kind),
                dns.name.from_text(f.name, dns.name.from_text(origin)).to_text().lower() if f.name else None,
                f.type.upper() if f.type else None,
            )
            for f in self.dnssec_faults
        )
        return signing_mod.ZoneSigning(self.algorithm, self.denial, faults)


@dataclass(frozen=True)
class _StaleFile:
    name: str
    type: str
    rdata: str
    ttl: int = 86400

    def __post_init__(self) -> None:
        if not 0 <= self.ttl <= 2**31 - 1:
            raise _loader.field_error("ttl", "must be a whole number of seconds")


@dataclass(frozen=True)
class _ServerFile:
    name: str
    address: str = ""
    role: Literal["authoritative", "recursive", "forwarder"] = "authoritative"
    zones: tuple[str, ...] = ()
    # Each fault is typed by the class of its kind (faults.parse), so here it is still a table.
    faults: tuple[dict[str, Any], ...] = ()
    forwarders: tuple[str, ...] = ()
    stale: tuple[_StaleFile, ...] = ()
    lame: tuple[str, ...] = ()
    query_timeout: float = 1.0
    validate: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise _loader.field_error("name", "missing: a server needs a name (its NS host name if authoritative)")
        if not 0 < self.query_timeout <= 30:
            raise _loader.field_error("query_timeout", "must be a number of seconds, more than 0 and at most 30")
        if len(self.faults) > MAX_FAULTS:
            raise _loader.field_error("faults", f"more than {MAX_FAULTS} faults on one server")


@dataclass(frozen=True)
class _RejectFile:
    pattern: str
    code: int = 550
    text: str = "no such user"

    def __post_init__(self) -> None:
        if not self.pattern:
            raise _loader.field_error("pattern", "missing: an fnmatch pattern on the address")
        if not 400 <= self.code <= 599:
            raise _loader.field_error("code", f"must be a 4xx or 5xx reply code; got {self.code}")


@dataclass(frozen=True)
class _SmtpFile:
    host: str
    addresses: tuple[str, ...] | None = None
    greeting: int = 220
    greeting_text: str | None = None
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    starttls: bool = True
    rcpt_reject: tuple[_RejectFile, ...] = ()
    tlsa: str | None = None
    tlsa_stale: bool = False

    def __post_init__(self) -> None:
        if self.tlsa is not None:
            words = self.tlsa.split()
            if len(words) != 3 or words[0] not in ("2", "3") or words[1] not in ("0", "1") or words[2] not in (
                    "0", "1", "2"):
                raise _loader.field_error("tlsa", 'must be "USAGE SELECTOR MTYPE" with usage 2 or 3, selector 0 or 1, '
                                                  f"matching type 0, 1 or 2; got {_loader.shown(self.tlsa)}")
        if self.tlsa_stale and self.tlsa is None:
            raise _loader.field_error("tlsa_stale", "only a server with a tlsa record has a stale one")
        if not 200 <= self.greeting <= 599:
            raise _loader.field_error("greeting", f"must be an SMTP reply code such as 220 or 421; got {self.greeting}")


@dataclass(frozen=True)
class _ExpectFile:
    findings: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    verdicts: dict[str, str] = field(default_factory=dict)
    diagnosis: str = ""

    def __post_init__(self) -> None:
        for key in ("findings", "forbidden"):
            for j, code in enumerate(getattr(self, key)):
                if not _CODE.match(code):
                    raise _loader.field_error(f"{key}[{j}]", "a finding code is UPPER_SNAKE words")
        both = set(self.findings) & set(self.forbidden)
        if both:
            raise _loader.field_error("forbidden", f"{sorted(both)[0]} is both expected and forbidden")
        for mta, verdict in self.verdicts.items():
            where = f"verdicts.{_loader.shown_key(mta)}"
            if mta not in MTAS:
                raise _loader.field_error(where, f"unknown MTA (known: {', '.join(MTAS)})")
            if verdict not in VERDICTS:
                raise _loader.field_error(where, f"must be deliver, defer or bounce; got {_loader.shown(verdict)}")


@dataclass(frozen=True)
class _ScenarioFile:
    description: str
    domains: tuple[str, ...]
    zones: dict[str, str | _ZoneTable] = field(default_factory=dict)
    servers: tuple[_ServerFile, ...] = ()
    smtp: tuple[_SmtpFile, ...] = ()
    expect: _ExpectFile = field(default_factory=_ExpectFile)

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise _loader.field_error("description", "missing or empty: say in one line what the scenario shows")
        if not self.domains:
            problem = 'missing: the mail domain(s) the scenario is about, e.g. ["example.com"]'
            raise _loader.field_error("domains", problem)
        for key in ("servers", "smtp", "zones"):
            if len(getattr(self, key)) > MAX_SERVERS:
                raise _loader.field_error(key, f"more than {MAX_SERVERS} entries")


# Every key a scenario file may hold, by table (docs/lab.md documents each).
_TOP_KEYS = frozenset(f.name for f in dataclasses.fields(_ScenarioFile))
_SERVER_KEYS = frozenset(f.name for f in dataclasses.fields(_ServerFile))
_SMTP_KEYS = frozenset(f.name for f in dataclasses.fields(_SmtpFile))
_EXPECT_KEYS = frozenset(f.name for f in dataclasses.fields(_ExpectFile))


# ---------------------------------------------------------------------------------------------
# Finding and loading


def scenarios_dir() -> Path:
    return Path(str(resources.files("mxdoctor.lab").joinpath("scenarios")))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in scenarios_dir().glob("*.toml"))


def load(ref: str | Path) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path; raise ScenarioError if malformed."""
    path = Path(ref)
    if isinstance(ref, str) and "/" not in ref and not ref.endswith(".toml"):
        builtin = scenarios_dir() / f"{ref}.toml"
        if builtin.is_file():
            path = builtin
        elif not path.is_file():
            known = ", ".join(builtin_names())
            raise ScenarioError(str(ref), "", f"no such built-in scenario or file (built-in: {known})")
    text = _loader.read_text(path, limit=MAX_FILE_BYTES, error=ScenarioError)
    return parse(text, source=str(path), name=path.stem)


def parse(text: str, *, source: str = "<scenario>", name: str = "scenario") -> Scenario:
    """Parse scenario TOML text; raise ScenarioError naming ``source``, the key and the problem."""
    data = _loader.parse_toml(text, source=source, error=ScenarioError)
    typed = _loader.convert(data, _ScenarioFile, source=source, error=ScenarioError)
    return _Builder(typed, source, name).build()


def offbox(loaded: Scenario) -> list[tuple[str, str]]:
    """Where the lab would send queries off the machine: (what, address) for each forwarder and each
    address record of a name server (glue) outside 127.0.0.0/8 and ::1."""
    found: list[tuple[str, str]] = []
    for server in loaded.resolvers:
        for fwd in server.forwarders:
            parsed = forwarder_address(fwd)
            if parsed is not None and not ipaddress.ip_address(parsed[0]).is_loopback:
                found.append((f"forwarder of {server.name}", parsed[0]))
    zones = {z.origin: z.parse() for z in loaded.zones}
    targets = {
        rdata.target
        for zone in zones.values()
        for _name, rdataset in zone.iterate_rdatasets(dns.rdatatype.NS)
        for rdata in rdataset
    }
    for zone in zones.values():
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            for owner, rdataset in zone.iterate_rdatasets(rdtype):
                if owner not in targets:
                    continue
                for rdata in rdataset:
                    if not ipaddress.ip_address(rdata.address).is_loopback:
                        found.append((f"name server {owner}", rdata.address))
    return sorted(set(found))


# ---------------------------------------------------------------------------------------------
# The builder


class _Builder:
    def __init__(self, data: _ScenarioFile, source: str, name: str) -> None:
        self.data = data
        self.source = source
        self.name = name

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(self.source, key, problem)

    def build(self) -> Scenario:
        data = self.data
        domains = tuple(
            _fqdn(self, item, f"domains[{i}]").rstrip(".") or "." for i, item in enumerate(data.domains)
        )
        declared = self.zone_texts(data.zones)
        servers = self.servers(data.servers, declared)
        zones = self.complete_zones(declared, servers)
        servers = self.add_infrastructure(servers, zones)
        self.add_server_addresses(zones, servers)
        self.add_delegations(zones)
        smtp = self.smtp(data.smtp, zones)
        expect = data.expect
        self.check_addresses(servers, smtp)
        signing = self.signing(data.zones)
        rendered = tuple(
            Zone(origin, _to_text(zone), origin not in declared, signing.get(origin))
            for origin, zone in sorted(zones.items(), key=lambda item: _sort_key(item[0]))
        )
        return Scenario(
            name=self.name,
            source=self.source,
            description=" ".join(data.description.split()),
            domains=domains,
            zones=rendered,
            servers=tuple(servers),
            smtp=smtp,
            expect=Expect(
                expect.findings, expect.forbidden, dict(expect.verdicts), " ".join(expect.diagnosis.split())
            ),
        )

    # -- zones ----------------------------------------------------------------------------------

    def signing(self, value: Mapping[str, str | _ZoneTable]) -> dict[str, signing_mod.ZoneSigning]:
        """How each zone is signed: the declared ones as they say, and the lab's root and TLD zones
        above any signed zone, so the chain of trust starts at the lab root."""
        out: dict[str, signing_mod.ZoneSigning] = {}
        for raw, body in value.items():
            origin = _fqdn(self, raw, f"zones.{_loader.shown_key(raw)}")
            spec = body.signing(origin) if isinstance(body, _ZoneTable) else None
            if spec is not None:
                out[origin] = spec
        declared = {_fqdn(self, raw, "zones") for raw in value}
        for origin in list(out):
            name = dns.name.from_text(origin)
            while name != dns.name.root:
                name = name.parent()
                above = name.to_text().lower()
                if above not in declared and above not in out:
                    out[above] = signing_mod.ZoneSigning()
        return out

    def zone_texts(self, value: Mapping[str, str | _ZoneTable]) -> dict[str, dns.zone.Zone]:
        zones: dict[str, dns.zone.Zone] = {}
        texts: dict[str, str] = {}
        total = 0
        for raw, body in value.items():
            origin = _fqdn(self, raw, f"zones.{_loader.shown_key(raw)}")
            key = _zone_key(origin)
            if origin in texts:
                raise self.fail(key, "zone declared twice")
            texts[origin] = body.text if isinstance(body, _ZoneTable) else body
            # Count every zone before the parser expands any: a $GENERATE line can stand for millions.
            total += _record_estimate(self, texts[origin], key)
            if total > MAX_RECORDS:
                raise self.fail(key, f"the zones hold more than {MAX_RECORDS} records in all")
        for origin, text in texts.items():
            key = _zone_key(origin)
            outside = _name_outside(text, origin)
            if outside:
                # The zone parser would drop the record without a word; say so instead.
                raise self.fail(key, f"{_loader.shown_key(outside)} is outside the zone: declare a zone for it")
            try:
                zones[origin] = dns.zone.from_text(
                    f"$TTL {DEFAULT_TTL}\n{text}", origin=origin, relativize=False, check_origin=False
                )
            except (dns.exception.DNSException, ValueError) as exc:
                raise self.fail(key, f"bad zone text: {_one_line(exc)}") from None
        return zones

    # -- servers --------------------------------------------------------------------------------

    def servers(self, value: Sequence[_ServerFile], declared: Mapping[str, dns.zone.Zone]) -> list[Server]:
        servers: list[Server] = []
        seen: set[str] = set()
        for i, table in enumerate(value):
            key = f"servers[{i}]"
            server = self.server(table, key, declared)
            if server.name in seen:
                raise self.fail(f"{key}.name", f"server {_loader.shown(server.name)} declared twice")
            seen.add(server.name)
            servers.append(server)
        for default_name, _address in DEFAULT_RESOLVERS:
            if default_name not in seen:
                servers.append(Server(default_name, "", "recursive", generated=True))
        # Addresses: the defaults where free, then 127.0.0.30 onwards.
        used = {s.address for s in servers if s.address} | {ROOT_SERVER[1], TLD_SERVER[1]}
        defaults = dict(DEFAULT_RESOLVERS)
        next_octet = FIRST_AUTO_ADDRESS
        placed: list[Server] = []
        for server in servers:
            if not server.address:
                address = defaults.get(server.name, "")
                if not address or address in used:
                    while f"127.0.0.{next_octet}" in used:
                        next_octet += 1
                    address = f"127.0.0.{next_octet}"
                used.add(address)
                server = dataclasses.replace(server, address=address)
            placed.append(server)
        names = {s.name for s in placed}
        for i, server in enumerate(placed):
            for j, fwd in enumerate(server.forwarders):
                if fwd not in names and forwarder_address(fwd) is None:
                    raise self.fail(
                        f"servers[{i}].forwarders[{j}]",
                        f"{_loader.shown(fwd)} is neither a server of this scenario nor an address",
                    )
        return placed

    def server(self, table: _ServerFile, key: str, declared: Mapping[str, dns.zone.Zone]) -> Server:
        role = table.role
        if role == "authoritative":
            name = _fqdn(self, table.name, f"{key}.name")
        else:
            name = table.name.lower()
            if not _RESOLVER_NAME.match(name):
                raise self.fail(f"{key}.name", "a resolver name is one word of letters, digits and dashes")
        address = _loopback(self, table.address, f"{key}.address") if table.address else ""
        zones = tuple(_fqdn(self, z, f"{key}.zones[{j}]") for j, z in enumerate(table.zones))
        lame = tuple(_fqdn(self, z, f"{key}.lame[{j}]") for j, z in enumerate(table.lame))
        for j, origin in enumerate(zones):
            if origin not in declared:
                raise self.fail(f"{key}.zones[{j}]", f"zone {origin} is not declared in [zones]")
        if role != "authoritative" and (zones or lame):
            raise self.fail(f"{key}.zones", "only authoritative servers serve zones")
        if role == "authoritative" and table.forwarders:
            raise self.fail(f"{key}.forwarders", "only recursive and forwarder servers forward")
        if role == "forwarder" and not table.forwarders:
            raise self.fail(f"{key}.forwarders", "missing: a forwarder needs at least one forwarder")
        stale = tuple(self.stale(item, f"{key}.stale[{j}]") for j, item in enumerate(table.stale))
        if role == "authoritative" and not table.validate:
            raise self.fail(f"{key}.validate", "only recursive resolvers validate")
        if role == "authoritative" and stale:
            raise self.fail(f"{key}.stale", "only recursive resolvers keep stale records")
        found = tuple(
            faults_mod.parse(item, self.source, f"{key}.faults[{j}]") for j, item in enumerate(table.faults)
        )
        return Server(
            name=name,
            address=address,
            role=role,
            zones=zones,
            faults=found,
            forwarders=table.forwarders,
            stale=stale,
            lame=lame,
            query_timeout=float(table.query_timeout),
            validate=table.validate,
        )

    def stale(self, item: _StaleFile, key: str) -> StaleRecord:
        name = _fqdn(self, item.name, f"{key}.name")
        try:
            rdtype = dns.rdatatype.from_text(item.type.upper())
        except Exception:
            raise self.fail(f"{key}.type", f"unknown record type {_loader.shown(item.type)}") from None
        try:
            dns.rdata.from_text(dns.rdataclass.IN, rdtype, item.rdata)
        except Exception as exc:
            problem = f"bad {dns.rdatatype.to_text(rdtype)} data {_loader.shown(item.rdata)}: {_one_line(exc)}"
            raise self.fail(f"{key}.rdata", problem) from None
        return StaleRecord(name, dns.rdatatype.to_text(rdtype), item.rdata, item.ttl)

    # -- SMTP -----------------------------------------------------------------------------------

    def smtp(self, value: Sequence[_SmtpFile], zones: Mapping[str, dns.zone.Zone]) -> tuple[SmtpServer, ...]:
        out = []
        for i, table in enumerate(value):
            key = f"smtp[{i}]"
            host = _fqdn(self, table.host, f"{key}.host")
            if table.addresses is not None:
                addresses = tuple(_loopback(self, a, f"{key}.addresses[{j}]") for j, a in enumerate(table.addresses))
            else:
                addresses = _addresses_in(zones, host)
            if not addresses:
                raise self.fail(
                    f"{key}.addresses", f"missing: {host} has no A/AAAA record in the zones to listen on"
                )
            for j, address in enumerate(addresses):
                _loopback(self, address, f"{key}.addresses[{j}]")
            out.append(
                SmtpServer(
                    host=host.rstrip("."),
                    addresses=addresses,
                    greeting=table.greeting,
                    greeting_text=table.greeting_text,
                    extensions=table.extensions,
                    starttls=table.starttls,
                    rcpt_reject=tuple((r.pattern, r.code, r.text) for r in table.rcpt_reject),
                    tlsa=table.tlsa,
                    tlsa_stale=table.tlsa_stale,
                )
            )
        return tuple(out)

    # -- the hierarchy --------------------------------------------------------------------------

    def complete_zones(
        self, declared: dict[str, dns.zone.Zone], servers: list[Server]
    ) -> dict[str, dns.zone.Zone]:
        """Add the SOA and NS a declared zone lacks, and generate the root and TLD zones."""
        zones = dict(declared)
        for origin, zone in declared.items():
            listed = [s.name for s in servers if origin in s.zones or origin in s.lame]
            if not listed:
                raise self.fail(_zone_key(origin), "no authoritative server serves this zone (servers.zones)")
            _fill_apex(zone, listed)
        wanted = {"."}
        names = (
            list(declared)
            + [s.name for s in servers if s.role == "authoritative"]
            + [
                ROOT_SERVER[0],
                TLD_SERVER[0],
            ]
        )
        for name in names:
            labels = dns.name.from_text(name).labels
            if len(labels) >= 2:
                wanted.add(labels[-2].decode().lower() + ".")
        for origin in sorted(wanted - set(zones)):
            server = ROOT_SERVER[0] if origin == "." else TLD_SERVER[0]
            zone = dns.zone.Zone(origin, relativize=False)
            _fill_apex(zone, [server])
            zones[origin] = zone
        return zones

    def add_infrastructure(self, servers: list[Server], zones: Mapping[str, dns.zone.Zone]) -> list[Server]:
        declared = {z for s in servers for z in s.zones}
        generated_tlds = tuple(
            o for o in sorted(zones) if o != "." and o not in declared and o.count(".") == 1
        )
        infra: list[Server] = []
        if "." not in declared:
            infra.append(Server(ROOT_SERVER[0], ROOT_SERVER[1], zones=(".",), generated=True))
        if generated_tlds:
            infra.append(Server(TLD_SERVER[0], TLD_SERVER[1], zones=generated_tlds, generated=True))
        return infra + servers

    def add_server_addresses(self, zones: Mapping[str, dns.zone.Zone], servers: Sequence[Server]) -> None:
        """Give every authoritative server's name an address record in the zone that owns the name."""
        for server in servers:
            if server.role != "authoritative":
                continue
            owner = _owning_zone(zones, server.name)
            if owner is None:
                continue
            name = dns.name.from_text(server.name)
            node = owner.get_node(name)
            if node is not None and (
                node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.A) is not None
                or node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.AAAA) is not None
            ):
                continue
            rdtype = dns.rdatatype.AAAA if ":" in server.address else dns.rdatatype.A
            rdataset = owner.find_rdataset(name, rdtype, create=True)
            rdataset.add(dns.rdata.from_text(dns.rdataclass.IN, rdtype, server.address), DEFAULT_TTL)

    def add_delegations(self, zones: Mapping[str, dns.zone.Zone]) -> None:
        """In each parent zone, NS records (and glue) for each child zone that lacks them."""
        for origin, child in zones.items():
            if origin == ".":
                continue
            parent = _owning_zone({o: z for o, z in zones.items() if o != origin}, origin)
            if parent is None:
                continue
            cut = dns.name.from_text(origin)
            child_ns = child.get_rdataset(cut, dns.rdatatype.NS)
            if child_ns is None or parent.get_rdataset(cut, dns.rdatatype.NS) is not None:
                continue
            _copy_into(parent.find_rdataset(cut, dns.rdatatype.NS, create=True), child_ns)
            for rdata in child_ns:
                target: dns.name.Name = rdata.target
                # Glue for in-bailiwick names, and for siblings the parent holds too (as the root does).
                if not target.is_subdomain(parent.origin or dns.name.root):
                    continue
                for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    addresses = _rdataset_in(zones, target, rdtype)
                    if addresses is not None:
                        _copy_into(parent.find_rdataset(target, rdtype, create=True), addresses)

    def check_addresses(self, servers: Sequence[Server], smtp: Sequence[SmtpServer]) -> None:
        seen: dict[str, str] = {}
        for server in servers:
            if server.address in seen:
                other = seen[server.address]
                raise self.fail("servers", f"{server.name} and {other} share the address {server.address}")
            seen[server.address] = server.name
        smtp_seen: dict[str, str] = {}
        for i, mail in enumerate(smtp):
            for address in mail.addresses:
                if address in smtp_seen:
                    other = smtp_seen[address]
                    raise self.fail(
                        f"smtp[{i}].addresses", f"{mail.host} and {other} share the address {address}"
                    )
                smtp_seen[address] = mail.host


# ---------------------------------------------------------------------------------------------
# Helpers


def _name_outside(text: str, origin: str) -> str | None:
    """The first absolute owner name in master-file text that is not in the zone, if any."""
    top = dns.name.from_text(origin)
    for line in text.splitlines():
        if not line or line[0].isspace() or line[0] in "$;(":
            continue
        owner = line.split(None, 1)[0]
        if not owner.endswith("."):
            continue
        try:
            if not dns.name.from_text(owner).is_subdomain(top):
                return owner
        except dns.exception.DNSException:
            continue
    return None


def _zone_key(origin: str) -> str:
    return f"zones.{origin.rstrip('.') or '.'}"


def _fqdn(builder: _Builder, value: str, key: str) -> str:
    if not value.strip():
        raise builder.fail(key, "must be a domain name; got an empty string")
    try:
        name = dns.name.from_text(value.strip())
    except dns.exception.DNSException as exc:
        raise builder.fail(key, f"not a domain name: {_one_line(exc)}") from None
    return name.to_text().lower()


def _fqdn_or_none(value: str) -> str | None:
    try:
        return dns.name.from_text(value).to_text().lower()
    except dns.exception.DNSException:
        return None


def _loopback(builder: _Builder, value: str, key: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise builder.fail(key, f"not an IP address: {_loader.shown(value)}") from None
    if not address.is_loopback:
        raise builder.fail(key, f"{address} is not a loopback address: lab servers live on 127.0.0.0/8 and ::1")
    return str(address)


_GENERATE = re.compile(r"^\$GENERATE\s+(\d+)-(\d+)(?:/(\d+))?\s", re.I)


def _record_estimate(builder: _Builder, text: str, key: str) -> int:
    """The records a zone text stands for, counted before any expansion; raise past the limits."""
    if len(text) > MAX_ZONE_BYTES:
        raise builder.fail(key, f"zone text longer than {MAX_ZONE_BYTES} bytes")
    count = 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        if stripped.upper().startswith("$GENERATE"):
            m = _GENERATE.match(stripped + " ")
            if not m:
                raise builder.fail(key, "bad zone text: a $GENERATE line needs START-STOP[/STEP]")
            start, stop, step = int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)
            if stop < start or step < 1:
                raise builder.fail(key, "bad zone text: a $GENERATE range runs from START up to STOP")
            count += (stop - start) // step + 1
        elif not stripped.startswith("$"):
            count += 1
        if count > MAX_ZONE_RECORDS:
            raise builder.fail(key, f"more than {MAX_ZONE_RECORDS} records in one zone ($GENERATE included)")
    return count


def forwarder_address(value: str) -> tuple[str, int | None] | None:
    """``address``, ``address:port`` or ``[v6]:port`` -> (address, port or None)."""
    host, port = value, None
    match = re.fullmatch(r"\[([0-9a-fA-F:]+)\]:(\d+)", value) or re.fullmatch(r"([0-9.]+):(\d+)", value)
    if match:
        host, port = match.group(1), int(match.group(2))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, port


def _fill_apex(zone: dns.zone.Zone, ns_names: Sequence[str]) -> None:
    assert zone.origin is not None
    apex = zone.origin
    if zone.get_rdataset(apex, dns.rdatatype.NS) is None:
        rdataset = zone.find_rdataset(apex, dns.rdatatype.NS, create=True)
        for ns in ns_names:
            rdataset.add(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.NS, ns), DEFAULT_TTL)
    if zone.get_rdataset(apex, dns.rdatatype.SOA) is None:
        ns_set = zone.get_rdataset(apex, dns.rdatatype.NS)
        assert ns_set is not None
        primary = sorted(str(r.target) for r in ns_set)[0]
        contact = dns.name.Name((b"hostmaster",) + apex.labels).to_text()
        text = f"{primary} {contact} 1 7200 3600 1209600 {NEGATIVE_TTL}"
        zone.find_rdataset(apex, dns.rdatatype.SOA, create=True).add(
            dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SOA, text), DEFAULT_TTL
        )


def _copy_into(target: dns.rdataset.Rdataset, source: dns.rdataset.Rdataset) -> None:
    for rdata in source:
        target.add(rdata, source.ttl)


def _owning_zone(zones: Mapping[str, dns.zone.Zone], name: str) -> dns.zone.Zone | None:
    """The deepest zone whose origin is ``name`` or above it."""
    target = dns.name.from_text(name)
    best: dns.zone.Zone | None = None
    best_len = -1
    for origin, zone in zones.items():
        origin_name = dns.name.from_text(origin)
        if target.is_subdomain(origin_name) and len(origin_name) > best_len:
            best, best_len = zone, len(origin_name)
    return best


def _rdataset_in(
    zones: Mapping[str, dns.zone.Zone], name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rdataset.Rdataset | None:
    owner = _owning_zone(zones, name.to_text())
    if owner is None:
        return None
    return owner.get_rdataset(name, rdtype)


def _addresses_in(zones: Mapping[str, dns.zone.Zone], host: str) -> tuple[str, ...]:
    name = dns.name.from_text(host)
    out: list[str] = []
    for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
        rdataset = _rdataset_in(zones, name, rdtype)
        if rdataset is not None:
            out.extend(r.address for r in rdataset)
    return tuple(out)


def _to_text(zone: dns.zone.Zone) -> str:
    return zone.to_text(relativize=False, sorted=True)


def _sort_key(origin: str) -> tuple[int, str]:
    return (origin.count("."), origin)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__
