"""Lab scenarios: TOML files loaded into frozen dataclasses, with the DNS hierarchy filled in.

A scenario declares its leaf zones, their servers and faults, SMTP servers and the diagnosis it
expects; the loader adds the root and TLD zones with their servers, NS and glue delegations, SOA
and NS records a zone lacks, and the healthy `internal` and `external` resolvers.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from mxdoctor.errors import ScenarioError
from mxdoctor.lab import faults as faults_mod
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

_TOP_KEYS = {"description", "domains", "zones", "servers", "smtp", "expect"}
_SERVER_KEYS = {"name", "address", "role", "zones", "faults", "forwarders", "stale", "lame", "query_timeout"}
_SMTP_KEYS = {"host", "addresses", "greeting", "greeting_text", "extensions", "starttls", "rcpt_reject"}
_EXPECT_KEYS = {"findings", "forbidden", "verdicts", "diagnosis"}
_CODE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
_RESOLVER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


@dataclass(frozen=True)
class Zone:
    """One zone in master-file text with absolute names; ``generated`` for the loader's own."""

    origin: str
    text: str
    generated: bool = False

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
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(path), "", f"cannot read: {exc.__class__.__name__}: {exc}") from None
    return parse(text, source=str(path), name=path.stem)


def parse(text: str, *, source: str = "<scenario>", name: str = "scenario") -> Scenario:
    """Parse scenario TOML text; raise ScenarioError naming ``source``, the key and the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, "", f"not valid TOML: {exc}") from None
    return _Builder(data, source, name).build()


# ---------------------------------------------------------------------------------------------
# The builder


class _Builder:
    def __init__(self, data: dict[str, Any], source: str, name: str) -> None:
        self.data = data
        self.source = source
        self.name = name

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(self.source, key, problem)

    def build(self) -> Scenario:
        data = self.data
        _no_unknown(self, data, _TOP_KEYS, "")
        description = data.get("description")
        if not isinstance(description, str) or not description.strip():
            raise self.fail("description", "missing or empty: say in one line what the scenario shows")
        domains = self.domains(data.get("domains"))
        declared = self.zone_texts(data.get("zones", {}))
        servers = self.servers(data.get("servers", []), declared)
        smtp_tables = data.get("smtp", [])
        zones = self.complete_zones(declared, servers)
        servers = self.add_infrastructure(servers, zones)
        self.add_server_addresses(zones, servers)
        self.add_delegations(zones)
        smtp = self.smtp(smtp_tables, zones)
        expect = self.expect(data.get("expect", {}))
        self.check_addresses(servers, smtp)
        rendered = tuple(
            Zone(origin, _to_text(zone), origin not in declared)
            for origin, zone in sorted(zones.items(), key=lambda item: _sort_key(item[0]))
        )
        return Scenario(
            name=self.name,
            source=self.source,
            description=" ".join(description.split()),
            domains=domains,
            zones=rendered,
            servers=tuple(servers),
            smtp=smtp,
            expect=expect,
        )

    # -- top-level values -----------------------------------------------------------------------

    def domains(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(
                "domains", 'missing: the mail domain(s) the scenario is about, e.g. ["example.com"]'
            )
        out = []
        for i, item in enumerate(value):
            name = _fqdn(self, item, f"domains[{i}]")
            out.append(name.rstrip(".") or ".")
        return tuple(out)

    def zone_texts(self, value: Any) -> dict[str, dns.zone.Zone]:
        if not isinstance(value, dict):
            raise self.fail("zones", "must be a table of zone name = master-file text")
        zones: dict[str, dns.zone.Zone] = {}
        for raw, body in value.items():
            origin = _fqdn(self, raw, f"zones.{raw}")
            key = _zone_key(origin)
            if isinstance(body, dict):
                _no_unknown(self, body, {"text"}, key)
                body = body.get("text")
            if not isinstance(body, str):
                raise self.fail(key, "must be master-file text (a string), or a table with `text`")
            if origin in zones:
                raise self.fail(key, "zone declared twice")
            outside = _name_outside(body, origin)
            if outside:
                # The zone parser would drop the record without a word; say so instead.
                raise self.fail(key, f"{outside} is outside the zone: declare a zone for it")
            try:
                zones[origin] = dns.zone.from_text(
                    f"$TTL {DEFAULT_TTL}\n{body}", origin=origin, relativize=False, check_origin=False
                )
            except (dns.exception.DNSException, ValueError) as exc:
                raise self.fail(key, f"bad zone text: {_one_line(exc)}") from None
        return zones

    def servers(self, value: Any, declared: Mapping[str, dns.zone.Zone]) -> list[Server]:
        if not isinstance(value, list):
            raise self.fail("servers", "must be an array of tables ([[servers]])")
        servers: list[Server] = []
        seen: set[str] = set()
        for i, table in enumerate(value):
            key = f"servers[{i}]"
            if not isinstance(table, dict):
                raise self.fail(key, "must be a table")
            server = self.server(table, key, declared)
            if server.name in seen:
                raise self.fail(f"{key}.name", f"server {server.name!r} declared twice")
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
                server = Server(**{**server.__dict__, "address": address})
            placed.append(server)
        names = {s.name for s in placed}
        for i, server in enumerate(placed):
            for j, fwd in enumerate(server.forwarders):
                if fwd not in names and forwarder_address(fwd) is None:
                    raise self.fail(
                        f"servers[{i}].forwarders[{j}]",
                        f"{fwd!r} is neither a server of this scenario nor an address",
                    )
        return placed

    def server(self, table: dict[str, Any], key: str, declared: Mapping[str, dns.zone.Zone]) -> Server:
        _no_unknown(self, table, _SERVER_KEYS, key)
        role = table.get("role", "authoritative")
        if role not in ROLES:
            raise self.fail(f"{key}.role", f"must be one of {', '.join(ROLES)}; got {role!r}")
        raw_name = table.get("name")
        if not isinstance(raw_name, str) or not raw_name:
            raise self.fail(
                f"{key}.name", "missing: a server needs a name (its NS host name if authoritative)"
            )
        if role == "authoritative":
            name = _fqdn(self, raw_name, f"{key}.name")
        else:
            name = raw_name.lower()
            if not _RESOLVER_NAME.match(name):
                raise self.fail(f"{key}.name", "a resolver name is one word of letters, digits and dashes")
        address = table.get("address", "")
        if address != "":
            address = _loopback(self, address, f"{key}.address")
        zones = tuple(
            _fqdn(self, z, f"{key}.zones[{j}]") for j, z in enumerate(_list(self, table, "zones", key))
        )
        lame = tuple(
            _fqdn(self, z, f"{key}.lame[{j}]") for j, z in enumerate(_list(self, table, "lame", key))
        )
        for j, origin in enumerate(zones):
            if origin not in declared:
                raise self.fail(f"{key}.zones[{j}]", f"zone {origin} is not declared in [zones]")
        if role != "authoritative" and (zones or lame):
            raise self.fail(f"{key}.zones", "only authoritative servers serve zones")
        forwarders = tuple(str(f) for f in _list(self, table, "forwarders", key))
        if role == "authoritative" and forwarders:
            raise self.fail(f"{key}.forwarders", "only recursive and forwarder servers forward")
        if role == "forwarder" and not forwarders:
            raise self.fail(f"{key}.forwarders", "missing: a forwarder needs at least one forwarder")
        stale = tuple(
            self.stale(item, f"{key}.stale[{j}]") for j, item in enumerate(_list(self, table, "stale", key))
        )
        if role == "authoritative" and stale:
            raise self.fail(f"{key}.stale", "only recursive resolvers keep stale records")
        query_timeout = table.get("query_timeout", 1.0)
        if (
            isinstance(query_timeout, bool)
            or not isinstance(query_timeout, int | float)
            or not 0 < query_timeout <= 30
        ):
            raise self.fail(f"{key}.query_timeout", "must be a number of seconds, more than 0 and at most 30")
        found = faults_mod.parse_list(table.get("faults", []), self.source, f"{key}.faults")
        return Server(
            name=name,
            address=address,
            role=role,
            zones=zones,
            faults=found,
            forwarders=forwarders,
            stale=stale,
            lame=lame,
            query_timeout=float(query_timeout),
        )

    def stale(self, item: Any, key: str) -> StaleRecord:
        if not isinstance(item, dict):
            raise self.fail(key, "must be a table with name, type, rdata and optional ttl")
        _no_unknown(self, item, {"name", "type", "rdata", "ttl"}, key)
        name = _fqdn(self, item.get("name"), f"{key}.name")
        rtype = item.get("type")
        try:
            rdtype = dns.rdatatype.from_text(str(rtype).upper())
        except Exception:
            raise self.fail(f"{key}.type", f"unknown record type {rtype!r}") from None
        rdata = item.get("rdata")
        try:
            dns.rdata.from_text(dns.rdataclass.IN, rdtype, str(rdata))
        except Exception as exc:
            raise self.fail(f"{key}.rdata", f"bad {rtype} data {rdata!r}: {_one_line(exc)}") from None
        ttl = item.get("ttl", 86400)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 2**31 - 1:
            raise self.fail(f"{key}.ttl", "must be a whole number of seconds")
        return StaleRecord(name, dns.rdatatype.to_text(rdtype), str(rdata), ttl)

    def smtp(self, value: Any, zones: Mapping[str, dns.zone.Zone]) -> tuple[SmtpServer, ...]:
        if not isinstance(value, list):
            raise self.fail("smtp", "must be an array of tables ([[smtp]])")
        out = []
        for i, table in enumerate(value):
            key = f"smtp[{i}]"
            if not isinstance(table, dict):
                raise self.fail(key, "must be a table")
            _no_unknown(self, table, _SMTP_KEYS, key)
            host = _fqdn(self, table.get("host"), f"{key}.host")
            if "addresses" in table:
                addresses = tuple(
                    _loopback(self, a, f"{key}.addresses[{j}]")
                    for j, a in enumerate(_list(self, table, "addresses", key))
                )
            else:
                addresses = _addresses_in(zones, host)
            if not addresses:
                raise self.fail(
                    f"{key}.addresses", f"missing: {host} has no A/AAAA record in the zones to listen on"
                )
            for j, address in enumerate(addresses):
                _loopback(self, address, f"{key}.addresses[{j}]")
            greeting = table.get("greeting", 220)
            if isinstance(greeting, bool) or not isinstance(greeting, int) or not 200 <= greeting <= 599:
                raise self.fail(
                    f"{key}.greeting", f"must be an SMTP reply code such as 220 or 421; got {greeting!r}"
                )
            greeting_text = table.get("greeting_text")
            if greeting_text is not None and not isinstance(greeting_text, str):
                raise self.fail(f"{key}.greeting_text", "must be a string")
            extensions = table.get("extensions", list(DEFAULT_EXTENSIONS))
            if not isinstance(extensions, list) or not all(isinstance(e, str) for e in extensions):
                raise self.fail(f"{key}.extensions", "must be an array of EHLO keywords")
            starttls = table.get("starttls", True)
            if not isinstance(starttls, bool):
                raise self.fail(f"{key}.starttls", "must be true or false")
            rejects = []
            for j, item in enumerate(_list(self, table, "rcpt_reject", key)):
                rkey = f"{key}.rcpt_reject[{j}]"
                if not isinstance(item, dict):
                    raise self.fail(rkey, "must be a table with pattern, code and text")
                _no_unknown(self, item, {"pattern", "code", "text"}, rkey)
                pattern, code, text = (
                    item.get("pattern"),
                    item.get("code", 550),
                    item.get("text", "no such user"),
                )
                if not isinstance(pattern, str) or not pattern:
                    raise self.fail(f"{rkey}.pattern", "missing: an fnmatch pattern on the address")
                if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
                    raise self.fail(f"{rkey}.code", f"must be a 4xx or 5xx reply code; got {code!r}")
                if not isinstance(text, str):
                    raise self.fail(f"{rkey}.text", "must be a string")
                rejects.append((pattern, code, text))
            out.append(
                SmtpServer(
                    host=host.rstrip("."),
                    addresses=addresses,
                    greeting=greeting,
                    greeting_text=greeting_text,
                    extensions=tuple(extensions),
                    starttls=starttls,
                    rcpt_reject=tuple(rejects),
                )
            )
        return tuple(out)

    def expect(self, value: Any) -> Expect:
        if not isinstance(value, dict):
            raise self.fail("expect", "must be a table")
        _no_unknown(self, value, _EXPECT_KEYS, "expect")
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("findings", "forbidden"):
            items = _list(self, value, key, "expect")
            for j, code in enumerate(items):
                if not isinstance(code, str) or not _CODE.match(code):
                    raise self.fail(
                        f"expect.{key}[{j}]", f"a finding code is UPPER_SNAKE words; got {code!r}"
                    )
            lists[key] = tuple(items)
        both = set(lists["findings"]) & set(lists["forbidden"])
        if both:
            raise self.fail("expect.forbidden", f"{sorted(both)[0]} is both expected and forbidden")
        verdicts = value.get("verdicts", {})
        if not isinstance(verdicts, dict):
            raise self.fail("expect.verdicts", "must be a table of mta = deliver|defer|bounce")
        for mta, verdict in verdicts.items():
            if mta not in MTAS:
                raise self.fail(f"expect.verdicts.{mta}", f"unknown MTA (known: {', '.join(MTAS)})")
            if verdict not in VERDICTS:
                raise self.fail(
                    f"expect.verdicts.{mta}", f"must be deliver, defer or bounce; got {verdict!r}"
                )
        diagnosis = value.get("diagnosis", "")
        if not isinstance(diagnosis, str):
            raise self.fail("expect.diagnosis", "must be a string")
        return Expect(lists["findings"], lists["forbidden"], dict(verdicts), " ".join(diagnosis.split()))

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


def _no_unknown(builder: _Builder, table: Mapping[str, Any], allowed: Iterable[str], key: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        where = f"{key}.{unknown[0]}" if key else unknown[0]
        raise builder.fail(where, f"unknown key (allowed here: {', '.join(sorted(allowed))})")


def _list(builder: _Builder, table: Mapping[str, Any], name: str, key: str) -> list[Any]:
    value = table.get(name, [])
    if not isinstance(value, list):
        raise builder.fail(f"{key}.{name}" if key else name, "must be an array")
    return value


def _fqdn(builder: _Builder, value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise builder.fail(key, f"must be a domain name; got {value!r}")
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


def _loopback(builder: _Builder, value: Any, key: str) -> str:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        raise builder.fail(key, f"not an IP address: {value!r}") from None
    if not address.is_loopback:
        raise builder.fail(key, f"{value} is not a loopback address: lab servers live on 127.0.0.0/8 and ::1")
    return str(address)


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
