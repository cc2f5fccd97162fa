"""Reader for the snapshot that the Exchange collector writes (``mxdoctor exchange-collector``).

Header lines (``#mxdoctor-snapshot 1``, ``#host``, ``#collected``, ...), then sections, each a
``#section NAME`` line and CSV as ConvertTo-Csv -NoTypeInformation writes it: the get-queue and
get-message rows become queue records (through the Exchange CSV reader); the transport-server,
send-connector and adapter-dns rows become the server's DNS settings.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from mxdoctor.queues import _exchange, record
from mxdoctor.queues.record import Item, Malformed, QueuedMessage

NAME = "exchange-snapshot"
MTA = _exchange.MTA
COMMAND: tuple[str, ...] = ()
MAGIC = "#mxdoctor-snapshot"
QUEUE_SECTIONS = ("get-queue", "get-message")


@dataclass(frozen=True)
class Connector:
    """A send connector as far as DNS goes: does it route by DNS, and through which server list."""

    name: str
    enabled: bool
    dns_routing: bool
    use_external_dns: bool
    address_spaces: str = ""
    smart_hosts: str = ""


@dataclass(frozen=True)
class DnsSettings:
    """Where the transport service sends its DNS queries (Set-TransportServer / Set-TransportService).

    With ``*_adapter`` true (the default) Exchange uses the network adapter's DNS servers and ignores
    the configured list; a send connector with UseExternalDNSServersEnabled uses the external list.
    """

    internal_adapter: bool = True
    internal_servers: tuple[str, ...] = ()
    external_adapter: bool = True
    external_servers: tuple[str, ...] = ()
    adapter_servers: tuple[str, ...] = ()
    connectors: tuple[Connector, ...] = ()

    @property
    def internal(self) -> tuple[str, ...]:
        """The servers the default (internal) DNS path asks."""
        return self.adapter_servers if self.internal_adapter or not self.internal_servers else self.internal_servers

    @property
    def external(self) -> tuple[str, ...]:
        """The servers a connector with UseExternalDNSServersEnabled asks."""
        return self.adapter_servers if self.external_adapter or not self.external_servers else self.external_servers

    @property
    def uses_external(self) -> bool:
        """Whether the enabled DNS-routed connectors use the external list (all of them do)."""
        routed = [c for c in self.connectors if c.enabled and c.dns_routing]
        return bool(routed) and all(c.use_external_dns for c in routed)


@dataclass(frozen=True)
class Snapshot:
    version: str
    host: str
    server: str = ""
    exchange: str = ""
    collected: float | None = None  # epoch seconds
    dns: DnsSettings = DnsSettings()


def sniff(head: list[str]) -> bool:
    return bool(head) and head[0].lstrip("\ufeff").startswith(MAGIC)


def _sections(
    lines: Iterable[str], stray: list[Malformed] | None = None
) -> tuple[dict[str, str], dict[str, list[tuple[int, str]]]]:
    """Header fields and the lines of each section; other lines before the first section are
    ``stray`` (a file that is no snapshot read as one)."""
    header: dict[str, str] = {}
    sections: dict[str, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] | None = None
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n").lstrip("\ufeff") if number == 1 else raw.rstrip("\r\n")
        if line.startswith("#section "):
            current = sections.setdefault(line[len("#section "):].strip(), [])
        elif line.startswith("#") and current is None:
            key, _, value = line[1:].partition(" ")
            header[key] = value.strip()
        elif current is not None:
            current.append((number, line))
        elif line.strip() and stray is not None:
            stray.append(Malformed(number, "not a header line or section of a collector snapshot",
                                   record.excerpt(line)))
    return header, sections


def _rows(section: list[tuple[int, str]]) -> list[dict[str, str]]:
    reader = csv.DictReader(text for _, text in section)
    try:
        return [dict(row) for row in reader]
    except csv.Error:
        return []


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() == "true"


def _servers(value: str | None) -> tuple[str, ...]:
    return tuple(v for v in (value or "").replace(",", " ").split() if v)


def settings(sections: dict[str, list[tuple[int, str]]]) -> DnsSettings:
    transport = (_rows(sections.get("transport-server", [])) or [{}])[0]
    adapters: list[str] = []
    for row in _rows(sections.get("adapter-dns", [])):
        adapters.extend(s for s in _servers(row.get("DNSServerSearchOrder")) if s not in adapters)
    connectors = tuple(
        Connector(
            name=row.get("Identity", ""),
            enabled=_bool(row.get("Enabled"), True),
            dns_routing=_bool(row.get("DNSRoutingEnabled"), True),
            use_external_dns=_bool(row.get("UseExternalDNSServersEnabled"), False),
            address_spaces=row.get("AddressSpaces", ""),
            smart_hosts=row.get("SmartHosts", ""),
        )
        for row in _rows(sections.get("send-connector", []))
    )
    return DnsSettings(
        internal_adapter=_bool(transport.get("InternalDNSAdapterEnabled"), True),
        internal_servers=_servers(transport.get("InternalDNSServers")),
        external_adapter=_bool(transport.get("ExternalDNSAdapterEnabled"), True),
        external_servers=_servers(transport.get("ExternalDNSServers")),
        adapter_servers=tuple(adapters),
        connectors=connectors,
    )


def _collected(value: str | None) -> float | None:
    try:
        return datetime.fromisoformat((value or "").replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


def parse(lines: Iterable[str]) -> tuple[Snapshot, list[Item]]:
    """The snapshot's header and DNS settings, and its queue records (malformed ones counted)."""
    stray: list[Malformed] = []
    header, sections = _sections(lines, stray)
    snap = Snapshot(
        version=header.get(MAGIC[1:], ""),
        host=header.get("host", ""),
        server=header.get("server", ""),
        exchange=header.get("exchange", ""),
        collected=_collected(header.get("collected")),
        dns=settings(sections),
    )
    read: dict[str, list[Item]] = {}
    for name in QUEUE_SECTIONS:
        section = sections.get(name, [])
        numbers = [n for n, _ in section]
        out = read.setdefault(name, [])
        for item in _exchange.read_csv(text for _, text in section):
            if isinstance(item, Malformed) and 0 < item.line <= len(numbers):
                item = item._replace(line=numbers[item.line - 1])
            out.append(item)
    # A queue whose messages came along is counted by its messages (their DateReceived is the true
    # age); a Get-Queue row stands for its queue only when none did, aged from FirstRetryTime, or on
    # Exchange 2010 (which has none) from LastRetryTime, a lower bound.
    with_messages = {m.queue_name for m in read["get-message"] if isinstance(m, QueuedMessage)}
    retried = {row.get("Identity", ""): row.get("LastRetryTime", "") for row in _rows(sections.get("get-queue", []))}
    items: list[Item] = list(stray)
    for item in read["get-queue"]:
        if isinstance(item, QueuedMessage):
            if item.queue_id in with_messages:
                continue
            if item.arrival is None and retried.get(item.queue_id):
                try:
                    item = item._replace(arrival=_exchange.parse_date(retried[item.queue_id]))
                except ValueError:
                    pass
        items.append(item)
    return snap, items + read["get-message"]


@record.reader(NAME, MTA, sniff=sniff, order=15)
def read(lines: Iterable[str], *, now: float | None = None) -> Iterator[Item]:
    """Yield the queue records of a snapshot; ``now`` is unused (rows carry dates)."""
    yield from parse(lines)[1]
