"""DNSSEC trust anchors of the root: the IANA keys built in (KSK-2017 and KSK-2024) and the reading
of a trust-anchor file (DS or DNSKEY records of "." in zone-file form, as Unbound's
``trust-anchor-file`` takes them); pure."""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from mxdoctor.errors import ConfigError

# https://data.iana.org/root-anchors/root-anchors.xml
IANA_ROOT = (
    ". 172800 IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",  # KSK-2017
    ". 172800 IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",  # KSK-2024
)
MAX_BYTES = 64 * 1024
MAX_RECORDS = 64


def parse(text: str, source: str = "trust anchor") -> tuple[str, ...]:
    """The DS/DNSKEY records of the root in ``text``, one normalised line each (``. TTL IN TYPE RDATA``).

    Raises ConfigError naming ``source`` and the line for anything else: another owner, another type,
    rdata that does not parse, or no record at all."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: longer than {MAX_BYTES} bytes; a trust anchor is a few DS or DNSKEY lines")
    out: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        where = f"{source}, line {number}"
        words = line.split()
        # owner [ttl] [class] type rdata...
        try:
            owner = dns.name.from_text(words[0])
        except dns.exception.DNSException:
            raise ConfigError(f"{where}: {words[0]!r} is not a domain name") from None
        if owner != dns.name.root:
            raise ConfigError(f"{where}: the owner is {owner}; a trust anchor here is for the root (.)")
        rest = words[1:]
        ttl = 172800
        if rest and rest[0].isdigit():
            ttl = int(rest.pop(0))
        if rest and rest[0].upper() == "IN":
            rest.pop(0)
        if len(rest) < 2 or rest[0].upper() not in ("DS", "DNSKEY"):
            raise ConfigError(f"{where}: expected a DS or DNSKEY record of the root")
        rdtype = dns.rdatatype.from_text(rest[0].upper())
        try:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, " ".join(rest[1:]))
        except (dns.exception.DNSException, ValueError) as exc:
            problem = " ".join(str(exc).split()) or type(exc).__name__
            raise ConfigError(f"{where}: bad {rest[0].upper()} record: {problem}") from None
        out.append(f". {ttl} IN {dns.rdatatype.to_text(rdtype)} {rdata.to_text()}")
        if len(out) > MAX_RECORDS:
            raise ConfigError(f"{source}: more than {MAX_RECORDS} records")
    if not out:
        raise ConfigError(f"{source}: no DS or DNSKEY record of the root")
    return tuple(out)


def rdata_of(line: str) -> dns.rdata.Rdata:
    """The rdata of one line as ``parse`` returns it."""
    _owner, _ttl, _cls, rdtype, rest = line.split(None, 4)
    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), rest)
