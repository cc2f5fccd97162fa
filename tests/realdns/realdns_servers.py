"""The real-DNS world of the realdns suite: zone files and configurations of the Debian daemons, and the faults.

One network namespace holds everything, each daemon on its own address in 10.53.0.0/16 (on ``lo`` there):
Knot serves the root, NSD the TLDs com. and net., BIND (authoritative only) every ``example-<fault>.com``,
NSD and PowerDNS Authoritative (bind backend) every ``example-<fault>.net``, each behind a dnsdist whose
rules inject the faults. Every fault has zones and server addresses of its own, so that a resolver's
per-server state (EDNS support, time-outs) learnt on one fault cannot leak into another. The root, the
TLDs and the zones of the DNSSEC faults are signed by ``dnssec-signzone`` (realdns_signing); a signed
fault's ``example-<fault>.net`` is served by NSD behind dnsdist (ns1) and by Knot (ns2), and validating
twins of Unbound, BIND, Knot Resolver and PowerDNS Recursor resolve them from the trust anchor the world
writes (``root.key``).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import realdns_signing as signing

NET = "10.53.0.1/16"  # added to lo in the namespace: the whole /16 is local there
ROOT = "10.53.0.1"  # Knot, the root
TLD = "10.53.0.2"  # NSD, com. and net.
NSD_BACKEND = "10.53.0.3"  # NSD behind dnsdist 1 (ns1.example-<fault>.net)
PDNS_BACKEND = "10.53.0.4"  # PowerDNS Authoritative behind dnsdist 2 (ns2.example-<fault>.net)
BIND_AUTH_CONTROL = "10.53.0.5"  # BIND's own address (the zones' servers are per fault, below)
# The resolvers the MTA may use, one address each; dnsmasq forwards to an Unbound of its own.
RESOLVERS: dict[str, str] = {
    "unbound": "10.53.1.1",
    "bind": "10.53.1.2",
    "kresd": "10.53.1.3",
    "pdns-recursor": "10.53.1.4",
    "dnsmasq": "10.53.1.5",
}
DNSMASQ_UPSTREAM = "10.53.1.6"
# Validating twins of the four recursive resolvers, with the world's trust anchor (the signed faults).
VALIDATING: dict[str, str] = {
    "unbound-val": "10.53.2.1",
    "bind-val": "10.53.2.2",
    "kresd-val": "10.53.2.3",
    "pdns-recursor-val": "10.53.2.4",
}
RESOLVERS.update(VALIDATING)
PLAIN = ("unbound", "bind", "kresd", "pdns-recursor", "dnsmasq")
SILENT_ROOT = "10.53.0.9"  # dnsdist 1 listens here and drops every query: a root behind a firewall
RESOLVER_TITLES = {
    "unbound": "Unbound",
    "bind": "BIND (recursive)",
    "kresd": "Knot Resolver",
    "pdns-recursor": "PowerDNS Recursor",
    "dnsmasq": "dnsmasq → Unbound",
    "unbound-val": "Unbound (validating)",
    "bind-val": "BIND (recursive, validating)",
    "kresd-val": "Knot Resolver (validating)",
    "pdns-recursor-val": "PowerDNS Recursor (validating)",
}
# The signed faults through dnsmasq forwarding to a non-validating Unbound: the control, where MTAs deliver.
DNSMASQ_CONTROL = ("shealthy", "sexpired", "snodata", "snxdomain")
ROOT_NS = "a.root-servers.net."


@dataclass(frozen=True)
class Fault:
    """One fault: its zones, where it is injected, and the diagnosis a correct tool gives."""

    key: str  # short name, part of the zone names
    title: str
    how: str  # how it is injected (for the docs)
    rules1: tuple[str, ...] = ()  # dnsdist Lua actions in front of NSD (ns1.example-<key>.net)
    rules2: tuple[str, ...] = ()  # dnsdist Lua actions in front of PowerDNS (ns2.example-<key>.net)
    mail_in_net: bool = False  # the mail domain is example-<key>.net (its MX behind dnsdist)
    cname: bool = False  # the MX target is an alias in the mail zone, pointing into the provider's zone
    broken_zone: bool = False  # BIND's mail zone file does not load
    lame: bool = False  # PowerDNS does not have the provider zone
    # mxdoctor's host reaches its resolver but no root server (a firewalled sender): its hints name
    # SILENT_ROOT, where dnsdist drops everything; the resolvers use the real fake root
    silent_root: bool = False
    # What a correct diagnosis names: root cause codes (any of), side, servers (labels, any order).
    expect_codes: tuple[str, ...] = ()
    expect_side: str = "receiver"
    expect_servers: tuple[str, ...] = ()
    # DNSSEC faults: the zones are signed (the fault's own, its TLD's and the root), and ``signed`` names
    # how its .net zone is broken (realdns_signing); the finding must name ``expect_zone`` (a label of
    # the fault's zones: "net" or "com"; empty: no zone is named).
    signed: str = ""
    signer: str = "dnssec-signzone"  # or "knot": Knot signs the .net zone itself and serves it as ns1 and ns2
    expect_zone: str = ""
    expect_also: tuple[str, ...] = ()  # findings that must be there too (DNSSEC_SECURE, DNSSEC_INSECURE)
    # What the MTAs do behind a validating resolver, and behind dnsmasq (forwarding, not validating):
    # "defer" (every MTA), "aaaa" (those that stop at a failed AAAA lookup), "aaaa-dane" (and Exim, whose
    # default DANE fails the TLSA lookup under the same broken proof), "deliver", "bounce".
    expect_mtas: str = "defer"
    expect_mtas_control: str = "deliver"
    mail_label: str = ""  # the mail domain is <mail_label>.example-<key>.net (a name the zone does not have)

    @property
    def com(self) -> str:
        return f"example-{self.key}.com"

    @property
    def net(self) -> str:
        return f"example-{self.key}.net"

    @property
    def domain(self) -> str:
        """The mail domain the MTA delivers to."""
        if self.mail_label:
            return f"{self.mail_label}.{self.net}"
        return self.net if self.mail_in_net else self.com

    @property
    def resolvers(self) -> tuple[str, ...]:
        """The resolvers the fault goes through: the validating four (and dnsmasq as the control) for a
        signed fault, the five plain ones otherwise."""
        if not self.signed:
            return PLAIN
        return (*VALIDATING, "dnsmasq") if self.key in DNSMASQ_CONTROL else tuple(VALIDATING)

    @property
    def zone(self) -> str:
        """The zone a correct diagnosis names (with the final dot), or ''."""
        return {"net": self.net + ".", "com": self.com + "."}.get(self.expect_zone, "")

    @property
    def target(self) -> str:
        """The MX target as published (an alias when ``cname``)."""
        return f"mail.{self.com}" if self.cname else f"mail.{self.net}"

    @property
    def broken_name(self) -> str:
        """The name whose lookup the fault breaks (the alias's canonical name when ``cname``)."""
        return f"mx.{self.net}" if self.cname else f"mail.{self.net}"


def _aaaa(name: str, action: str) -> str:
    return f'addAction(AndRule({{QTypeRule(DNSQType.AAAA), QNameRule("{name}.")}}), {action})'


def _edns(zone: str, action: str) -> str:
    # A query with an OPT record in the additional section, inside the fault's zone.
    return (
        f'addAction(AndRule({{SuffixMatchNodeRule(suffix("{zone}.")), '
        f"RecordsTypeCountRule(DNSSection.Additional, DNSQType.OPT, 1, 65535)}}), {action})"
    )


def _faults() -> tuple[Fault, ...]:
    sf, drop, ref = "RCodeAction(DNSRCode.SERVFAIL)", "DropAction()", "RCodeAction(DNSRCode.REFUSED)"
    nx, nxaa = "RCodeAction(DNSRCode.NXDOMAIN)", "RCodeAction(DNSRCode.NXDOMAIN, {aa=true})"
    both = ("ns1", "ns2")
    out: list[Fault] = []

    def add(key: str, title: str, how: str, **kw: object) -> None:
        out.append(Fault(key, title, how, **kw))  # type: ignore[arg-type]

    def mail(key: str) -> str:
        return f"mail.example-{key}.net"

    add("healthy", "healthy (no fault)", "—", expect_codes=("MAIL_ROUTE_OK",), expect_side="")
    add("sfall", "AAAA SERVFAIL at every server", f"dnsdist `{sf}` for AAAA of the MX host, both servers",
        rules1=(_aaaa(mail("sfall"), sf),), rules2=(_aaaa(mail("sfall"), sf),),
        expect_codes=("AAAA_SERVFAIL",), expect_servers=both)
    add("firewalled", "AAAA SERVFAIL, sender firewalled (no root server answers mxdoctor's host)",
        f"as at every server; mxdoctor's root hints name {SILENT_ROOT}, where dnsdist drops every query",
        rules1=(_aaaa(mail("firewalled"), sf),), rules2=(_aaaa(mail("firewalled"), sf),),
        silent_root=True, expect_codes=("AAAA_SERVFAIL",), expect_servers=())
    add("sfone", "AAAA SERVFAIL at one server", f"dnsdist `{sf}` for AAAA of the MX host, ns1 only",
        rules1=(_aaaa(mail("sfone"), sf),), expect_codes=("AAAA_SERVFAIL",), expect_servers=("ns1",))
    add("drop", "AAAA dropped", f"dnsdist `{drop}` for AAAA of the MX host, both servers",
        rules1=(_aaaa(mail("drop"), drop),), rules2=(_aaaa(mail("drop"), drop),),
        expect_codes=("AAAA_TIMEOUT",), expect_servers=both)
    add("nxlb", "AAAA NXDOMAIN, no AA, no SOA (load balancer)", f"dnsdist `{nx}`, both servers",
        rules1=(_aaaa(mail("nxlb"), nx),), rules2=(_aaaa(mail("nxlb"), nx),),
        expect_codes=("AAAA_NXDOMAIN",), expect_servers=both)
    add("nxaa", "AAAA NXDOMAIN with AA", f"dnsdist `{nxaa}`, both servers",
        rules1=(_aaaa(mail("nxaa"), nxaa),), rules2=(_aaaa(mail("nxaa"), nxaa),),
        expect_codes=("AAAA_NXDOMAIN",), expect_servers=both)
    soa = (
        'NegativeAndSOAAction(true, "example-nxsoa.net.", 300, "ns1.example-nxsoa.net.", '
        '"hostmaster.example-nxsoa.net.", 1, 3600, 600, 86400, 300, {aa=true})'
    )
    add("nxsoa", "AAAA NXDOMAIN with AA and SOA", "dnsdist `NegativeAndSOAAction(true, ..., {aa=true})`, both",
        rules1=(_aaaa(mail("nxsoa"), soa),), rules2=(_aaaa(mail("nxsoa"), soa),),
        expect_codes=("AAAA_NXDOMAIN",), expect_servers=both)
    add("refused", "AAAA REFUSED", f"dnsdist `{ref}` for AAAA of the MX host, both servers",
        rules1=(_aaaa(mail("refused"), ref),), rules2=(_aaaa(mail("refused"), ref),),
        expect_codes=("AAAA_UNEXPECTED_RCODE", "AAAA_SERVFAIL"), expect_servers=both)
    add("noload", "mail zone fails to load", "an invalid A record in BIND's zone file: SERVFAIL for the zone",
        broken_zone=True, expect_codes=("MX_LOOKUP_FAILED",), expect_servers=("ns1", "ns2"))
    add("lame", "lame server", "PowerDNS (ns2) started without the zone: REFUSED",
        lame=True, expect_codes=("LAME_DELEGATION",), expect_servers=("ns2",))
    formerr = "RCodeAction(DNSRCode.FORMERR)"
    add("ednsformerr", "EDNS answered with FORMERR", f"dnsdist `{formerr}` (no OPT) to queries with OPT, both",
        rules1=(_edns("example-ednsformerr.net", formerr),), rules2=(_edns("example-ednsformerr.net", formerr),),
        expect_codes=("EDNS_INTOLERANT",), expect_servers=both)
    add("ednsdrop", "EDNS dropped (pre-2019 firewall)", f"dnsdist `{drop}` for queries with OPT, both",
        rules1=(_edns("example-ednsdrop.net", drop),), rules2=(_edns("example-ednsdrop.net", drop),),
        expect_codes=("EDNS_DROPPED",), expect_servers=both)
    mxrule = 'addAction(AndRule({QTypeRule(DNSQType.MX), QNameRule("example-mxdrop.net.")}), DropAction())'
    add("mxdrop", "MX lookup dropped", f"dnsdist `{drop}` for MX of the mail domain, both servers",
        mail_in_net=True, rules1=(mxrule,), rules2=(mxrule,),
        expect_codes=("MX_LOOKUP_FAILED",), expect_servers=both)
    add("cname", "CNAME'd MX target, provider breaks AAAA",
        f"MX → mail.example-cname.com CNAME mx.example-cname.net; dnsdist `{sf}` for its AAAA, both",
        cname=True, rules1=(_aaaa("mx.example-cname.net", sf),), rules2=(_aaaa("mx.example-cname.net", sf),),
        expect_codes=("AAAA_SERVFAIL",), expect_servers=both)
    # DNSSEC: example-<key>.com (BIND) and example-<key>.net (NSD behind dnsdist, Knot) signed by
    # dnssec-signzone (ECDSA P-256, NSEC), the fault in the .net zone, the MX host's.
    signzone = "`dnssec-signzone -S -O full`"

    def signed(key: str, title: str, how: str, code: str, **kw: object) -> None:
        kw.setdefault("expect_zone", "net")
        kw.setdefault("expect_servers", both)
        add(key, title, how, signed=key, expect_codes=(code,), **kw)

    signed("shealthy", "signed zones, healthy", f"root, TLDs and both zones signed by {signzone}",
           "MAIL_ROUTE_OK", expect_side="", expect_zone="", expect_servers=(), expect_also=("DNSSEC_SECURE",),
           expect_mtas="deliver")
    signed("sexpired", "DNSSEC: RRSIGs expired", "the MX host's zone signed with `-s now-30d -e now-3d -P`",
           "DNSSEC_RRSIG_EXPIRED")
    signed("snotyet", "DNSSEC: RRSIGs not yet valid", "the MX host's zone signed with `-s now+2d -e now+32d -P`",
           "DNSSEC_RRSIG_NOT_YET_VALID")
    signed("sbadsig", "DNSSEC: signature does not verify",
           f"{signzone}, then a byte of the RRSIG over the MX host's A changed in the signed file",
           "DNSSEC_RRSIG_INVALID")
    signed("snosig", "DNSSEC: RRSIG missing on the MX host's A",
           f"{signzone}, then the RRSIG over the MX host's A deleted from the signed file", "DNSSEC_RRSIG_MISSING")
    signed("sdsbad", "DNSSEC: DS matches no DNSKEY (botched key roll)",
           "the DS in net. made by `dnssec-dsfromkey` from a KSK the zone does not publish", "DNSSEC_DS_MISMATCH")
    signed("sdnskey", "DNSSEC: DNSKEY set without a valid self-signature",
           f"{signzone}, then the KSK's RRSIG over the DNSKEY set deleted (the ZSK's is left)",
           "DNSSEC_DNSKEY_NOT_SELF_SIGNED")
    signed("snodata", "DNSSEC: bogus NODATA proof for the MX host's AAAA (A validates)",
           f"{signzone}, then the NSEC at the MX host (and its RRSIG) deleted", "DNSSEC_DENIAL_MISSING",
           expect_mtas="aaaa-dane")
    signed("snxdomain", "DNSSEC: bogus NXDOMAIN proof for the mail domain",
           f"mail to gone.example-snxdomain.net; {signzone}, then the apex NSEC covering it deleted",
           "DNSSEC_DENIAL_MISSING", mail_label="gone", expect_mtas_control="bounce")
    nsec3 = f"{signzone} `-3 - -H 0` (NSEC3, no salt, no extra iterations)"
    signed("s3nodata", "DNSSEC: bogus NSEC3 NODATA proof for the MX host's AAAA (A validates)",
           f"{nsec3}, then the NSEC3 matching the MX host (and its RRSIG) deleted", "DNSSEC_DENIAL_MISSING",
           expect_mtas="aaaa-dane")
    signed("s3nxdomain", "DNSSEC: bogus NSEC3 NXDOMAIN proof for the mail domain",
           f"mail to gone.example-s3nxdomain.net; {nsec3}, then the NSEC3 covering it deleted",
           "DNSSEC_DENIAL_MISSING", mail_label="gone")
    signed("khealthy", "signed by Knot, healthy (NSEC3)",
           "Knot's automatic signing (`dnssec-signing: on`, NSEC3, keys from `keymgr generate`), Knot as ns1 and ns2",
           "MAIL_ROUTE_OK", signer="knot", expect_side="", expect_zone="", expect_servers=(),
           expect_also=("DNSSEC_SECURE",), expect_mtas="deliver")
    signed("salgo", "DNSSEC: DS with an algorithm no validator implements (insecure)",
           "the DS in net. by `dnssec-dsfromkey`, its algorithm field set to 253 (PRIVATEDNS)",
           "MAIL_ROUTE_OK", expect_side="", expect_zone="", expect_servers=(), expect_also=("DNSSEC_INSECURE",),
           expect_mtas="deliver")
    return tuple(out)


FAULTS: tuple[Fault, ...] = _faults()
SIGNED: tuple[Fault, ...] = tuple(f for f in FAULTS if f.signed)


def index(fault: Fault) -> int:
    return FAULTS.index(fault) + 10


def addresses(fault: Fault) -> dict[str, str]:
    """The fault's server addresses: ns1/ns2 of its .com (BIND) and .net (dnsdist) zones, its MX host."""
    i = index(fault)
    return {
        f"ns1.{fault.com}": f"10.53.{i}.11",
        f"ns2.{fault.com}": f"10.53.{i}.12",
        f"ns1.{fault.net}": f"10.53.{i}.1",
        f"ns2.{fault.net}": f"10.53.{i}.2",
        "mail": f"10.53.{i}.25",
    }


def expected_servers(fault: Fault) -> tuple[str, ...]:
    """The addresses a correct diagnosis names: the fault's servers of the zone that breaks."""
    zone = fault.com if fault.broken_zone else fault.net
    return tuple(addresses(fault)[f"{label}.{zone}"] for label in fault.expect_servers)


def all_addresses() -> list[str]:
    """Every address a daemon listens on (BIND binds only addresses configured on an interface)."""
    fixed = [ROOT, TLD, NSD_BACKEND, PDNS_BACKEND, BIND_AUTH_CONTROL, DNSMASQ_UPSTREAM, SILENT_ROOT,
             *RESOLVERS.values()]
    return list(dict.fromkeys(fixed + [a for f in FAULTS for a in addresses(f).values()]))


def server_names() -> dict[str, str]:
    """Address → name of every authoritative server, for the docs."""
    out = {ROOT: ROOT_NS.rstrip("."), TLD: "ns.nic.com / ns.nic.net"}
    for f in FAULTS:
        out.update({a: n for n, a in addresses(f).items() if n != "mail"})
    return out


# -- zone files ---------------------------------------------------------------------------------------------


def _soa(zone: str, mname: str) -> str:
    rname = "hostmaster." + (zone if zone != "." else "root-servers.net.")
    return f"$TTL 300\n{zone} SOA {mname} {rname} 1 3600 600 86400 300\n"


def root_zone(ds: dict[str, list[str]] | None = None) -> str:
    z = _soa(".", ROOT_NS) + f". NS {ROOT_NS}\n{ROOT_NS} A {ROOT}\n"
    for tld in ("com", "net"):
        z += f"{tld}. NS ns.nic.{tld}.\nns.nic.{tld}. A {TLD}\n"
        z += "".join(line + "\n" for line in (ds or {}).get(tld, []))
    return z


def root_hints(address: str = ROOT) -> str:
    return f".  3600000  NS  {ROOT_NS}\n{ROOT_NS}  3600000  A  {address}\n"


def tld_zone(tld: str, ds: dict[str, list[str]] | None = None) -> str:
    z = _soa(f"{tld}.", f"ns.nic.{tld}.") + f"{tld}. NS ns.nic.{tld}.\nns.nic.{tld}. A {TLD}\n"
    if tld == "net":
        z += f"{ROOT_NS} A {ROOT}\n"
    for f in FAULTS:
        zone = f.com if tld == "com" else f.net
        for label in ("ns1", "ns2"):
            z += f"{zone}. NS {label}.{zone}.\n{label}.{zone}. A {addresses(f)[f'{label}.{zone}']}\n"
        z += "".join(line + "\n" for line in (ds or {}).get(zone, []))
    return z


def _apex(f: Fault, zone: str) -> str:
    """SOA, NS and the servers' addresses of one of the fault's zones."""
    z = _soa(f"{zone}.", f"ns1.{zone}.")
    for label in ("ns1", "ns2"):
        z += f"{zone}. NS {label}.{zone}.\n{label}.{zone}. A {addresses(f)[f'{label}.{zone}']}\n"
    return z


def com_zone(f: Fault) -> str:
    z = _apex(f, f.com)
    if f.cname:
        z += f"{f.com}. MX 10 mail.{f.com}.\nmail.{f.com}. CNAME mx.{f.net}.\n"
    elif not f.mail_in_net:
        z += f"{f.com}. MX 10 mail.{f.net}.\n"
    if f.broken_zone:
        z += f"broken.{f.com}. A 999.0.2.1\n"  # not an address: BIND refuses to load the zone
    return z


def net_zone(f: Fault) -> str:
    z = _apex(f, f.net)
    host = "mx" if f.cname else "mail"
    z += f"{host}.{f.net}. A {addresses(f)['mail']}\n"  # no AAAA: the MX host has IPv4 only
    if f.mail_in_net:
        z += f"{f.net}. MX 10 mail.{f.net}.\n"
    return z


# -- daemon configurations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Daemon:
    """One daemon to start: its command line, and an address and name to ask until it answers."""

    name: str
    argv: tuple[str, ...]
    ready_address: str
    ready_name: str
    ready_type: str = "SOA"


BINARIES = {
    "knot": "/usr/sbin/knotd",
    "nsd": "/usr/sbin/nsd",
    "named": "/usr/sbin/named",
    "pdns": "/usr/sbin/pdns_server",
    "dnsdist": "/usr/bin/dnsdist",
    "unbound": "/usr/sbin/unbound",
    "kresd": "/usr/sbin/kresd",
    "pdns-recursor": "/usr/sbin/pdns_recursor",
    "dnsmasq": "/usr/sbin/dnsmasq",
}
# The Debian packages that provide them (the Makefile's DEBS has them too).
PACKAGES = (
    "knot", "nsd", "bind9", "pdns-server", "pdns-backend-bind", "dnsdist", "unbound", "knot-resolver",
    "pdns-recursor", "dnsmasq", signing.PACKAGE,
)


def missing_binaries() -> list[str]:
    return [p for p in BINARIES.values() if shutil.which(p) is None] + signing.tools_missing()


def write_world(work: Path) -> list[Daemon]:
    """Every zone file and configuration under ``work``; the daemons to start, authoritative ones first."""
    zones = work / "zones"
    zones.mkdir(parents=True, exist_ok=True)
    (work / "root.hints").write_text(root_hints())
    (work / "silent-root.hints").write_text(root_hints(SILENT_ROOT))
    ds: dict[str, list[str]] = {}  # zone (no final dot) -> its DS lines in the parent
    keys = work / "keys"
    signed = [f for f in SIGNED if f.signer != "knot"]
    knotted = [f for f in SIGNED if f.signer == "knot"]
    signer = _knot(work, "knot-signer", [addresses(f)[f"{n}.{f.net}"] for f in knotted for n in ("ns1", "ns2")],
                   [f"{f.net}." for f in knotted], signing_=True)
    for f in FAULTS:
        (zones / f"{f.com}.zone").write_text(_signed_com(keys, f, ds) if f.signed else com_zone(f))
        if f.signer == "knot":  # Knot signs it when it loads it, with the keys made here
            ds[f.net] = signing.knot_keys(Path(signer.argv[-1]), f"{f.net}.")
            (zones / f"{f.net}.zone").write_text(net_zone(f))
        else:
            (zones / f"{f.net}.zone").write_text(_signed_net(keys, f, ds) if f.signed else net_zone(f))
    for tld in ("com", "net"):
        tld_keys = signing.keygen(keys, f"{tld}.")
        (zones / f"{tld}.zone").write_text(signing.sign(tld_keys, tld_zone(tld, ds)))
        ds[tld] = tld_keys.ds()
    root_keys = signing.keygen(keys, ".", "RSASHA256")
    (zones / "root.zone").write_text(signing.sign(root_keys, root_zone(ds)))
    (work / "root.key").write_text("".join(line + "\n" for line in root_keys.ds()))
    daemons = [_knot(work, "knot", [ROOT], ["."]),
               _knot(work, "knot-net", [addresses(f)[f"ns2.{f.net}"] for f in signed], [f"{f.net}." for f in signed]),
               signer, _nsd(work, "nsd-tld", TLD, ["com", "net"]),
               _nsd(work, "nsd-net", NSD_BACKEND, [f.net for f in FAULTS if f.signer != "knot"]),
               _pdns(work), _bind_auth(work), _dnsdist(work, 1), _dnsdist(work, 2)]
    daemons += [_unbound(work, "unbound", RESOLVERS["unbound"]),
                _unbound(work, "unbound-upstream", DNSMASQ_UPSTREAM), _bind_resolver(work),
                _kresd(work), _pdns_recursor(work), _dnsmasq(work)]
    anchor = work / "root.key"
    daemons += [_unbound(work, "unbound-val", VALIDATING["unbound-val"], anchor),
                _bind_resolver(work, "bind-val", root_keys.ds()), _kresd(work, "kresd-val", anchor),
                _pdns_recursor(work, "pdns-recursor-val", root_keys.ds())]
    return daemons


def _signed_com(keys: Path, f: Fault, ds: dict[str, list[str]]) -> str:
    k = signing.keygen(keys, f"{f.com}.")
    ds[f.com] = k.ds()
    return signing.sign(k, com_zone(f))


def _signed_net(keys: Path, f: Fault, ds: dict[str, list[str]]) -> str:
    """The MX host's zone of a signed fault, broken as ``f.signed`` says."""
    k = signing.keygen(keys, f"{f.net}.")
    ds[f.net] = k.ds()
    now = time.time()
    day = signing.DAY
    window = {"sexpired": (now - 30 * day, now - 3 * day), "snotyet": (now + 2 * day, now + 32 * day)}
    text = signing.sign(k, net_zone(f), window=window.get(f.signed), nsec3=f.signed.startswith("s3"))
    apex, mail = f"{f.net}.", f"mail.{f.net}."
    if f.signed == "sbadsig":
        text = signing.flip_signature(text, mail, "A")
    elif f.signed == "snosig":
        text = signing.drop(text, mail, "RRSIG", "A")
    elif f.signed == "sdnskey":
        text = signing.drop(text, apex, "RRSIG", "DNSKEY", key_tag=k.ksk_tag)
    elif f.signed in ("snodata", "snxdomain"):
        # the NSEC at the MX host (its AAAA NODATA proof), or the apex's, which covers gone.<zone>
        owner = mail if f.signed == "snodata" else apex
        text = signing.drop(signing.drop(text, owner, "NSEC"), owner, "RRSIG", "NSEC")
    elif f.signed == "s3nodata":  # the NSEC3 at the MX host's hash: its AAAA NODATA proof
        text = signing.drop_nsec3(text, apex, mail)
    elif f.signed == "s3nxdomain":  # the NSEC3 covering the next closer name gone.<zone>
        text = signing.drop_nsec3(text, apex, f"{f.mail_label}.{apex}", cover=True)
    elif f.signed == "sdsbad":  # the parent still has the DS of a KSK the zone no longer publishes
        ds[f.net] = signing.keygen(keys, apex, name=f"{f.net}-retired").ds()
    elif f.signed == "salgo":
        ds[f.net] = signing.ds_algorithm(ds[f.net], 253)
    return text


def _dir(work: Path, name: str) -> Path:
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def _knot(work: Path, name: str, listen: list[str], zones: list[str], signing_: bool = False) -> Daemon:
    """Knot serving ``zones`` as their files have them (signed ones too), or signing them itself when it loads
    them (``signing_``: its automatic signing, NSEC3, with keys already in its KASP database). The root has
    an instance of its own: one Knot answers from its most specific zone on every address it has."""
    d = _dir(work, name)
    addresses_ = ", ".join(f"{a}@53" for a in listen)
    sign = "    dnssec-signing: on\n    dnssec-policy: realdns\n" if signing_ else ""
    files = "".join(f'  - domain: {z}\n    file: "{work / "zones" / ((z.rstrip(".") or "root") + ".zone")}"\n{sign}'
                    for z in zones)
    policy = signing.KNOT_POLICY if signing_ else ""
    (d / "knot.conf").write_text(f"""server:
    rundir: "{d}"
    listen: [ {addresses_} ]
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{d}"
    kasp-db: "{d / 'kasp'}"
log:
  - target: stderr
    any: info
{policy}template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
{files}""")
    return Daemon(name, (BINARIES["knot"], "-c", str(d / "knot.conf")), listen[0], zones[0])


def _nsd(work: Path, name: str, address: str, zones: list[str]) -> Daemon:
    d = _dir(work, name)
    conf = f"""server:
    ip-address: {address}
    port: 53
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{work / 'zones'}"
    database: ""
    pidfile: "{d / 'nsd.pid'}"
    xfrdfile: "{d / 'xfrd.state'}"
    xfrdir: "{d}"
    zonelistfile: "{d / 'zone.list'}"
    verbosity: 1
    tcp-count: 20
    hide-version: yes
remote-control:
    control-enable: no
"""
    for z in zones:
        conf += f"zone:\n    name: {z}.\n    zonefile: {z}.zone\n"
    (d / "nsd.conf").write_text(conf)
    return Daemon(name, (BINARIES["nsd"], "-d", "-c", str(d / "nsd.conf")), address, zones[0] + ".")


def _pdns(work: Path) -> Daemon:
    d = _dir(work, "pdns")
    named = "".join(
        f'zone "{f.net}" {{ type master; file "{work / "zones" / (f.net + ".zone")}"; }};\n'
        for f in FAULTS if not f.lame and not f.signed
    )
    (d / "named.conf").write_text(named)
    (d / "pdns.conf").write_text(f"""launch=bind
bind-config={d / 'named.conf'}
bind-check-interval=0
local-address={PDNS_BACKEND}
local-port=53
socket-dir={d}
daemon=no
guardian=no
disable-syslog=yes
loglevel=4
setuid=
setgid=
webserver=no
""")
    ready = next(f for f in FAULTS if not f.lame)
    return Daemon("pdns", (BINARIES["pdns"], f"--config-dir={d}"), PDNS_BACKEND, ready.net + ".")


def _bind_auth(work: Path) -> Daemon:
    d = _dir(work, "bind-auth")
    listen = " ".join(
        f"{a};" for f in FAULTS for n, a in addresses(f).items() if n.endswith(f".{f.com}")
    )
    zones = "".join(
        f'zone "{f.com}" {{ type primary; file "{work / "zones" / (f.com + ".zone")}"; }};\n' for f in FAULTS
    )
    (d / "named.conf").write_text(f"""options {{
    directory "{d}";
    pid-file "{d / 'named.pid'}";
    session-keyfile "{d / 'session.key'}";
    listen-on port 53 {{ {BIND_AUTH_CONTROL}; {listen} }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    allow-transfer {{ none; }};
}};
controls {{ }};
{zones}""")
    return Daemon("bind-auth", (BINARIES["named"], "-g", "-4", "-n", "1", "-c", str(d / "named.conf")),
                  addresses(FAULTS[0])[f"ns1.{FAULTS[0].com}"], FAULTS[0].com + ".")


def _dnsdist(work: Path, which: int) -> Daemon:
    d = _dir(work, f"dnsdist{which}")
    label = f"ns{which}"
    backend = NSD_BACKEND if which == 1 else PDNS_BACKEND
    # ns2 of a signed fault is Knot, not PowerDNS behind dnsdist 2
    listen = [addresses(f)[f"{label}.{f.net}"] for f in FAULTS
              if (which == 1 or not f.signed) and f.signer != "knot"]
    if which == 1:
        listen.append(SILENT_ROOT)
    lines = [f'setLocal("{listen[0]}:53")', *(f'addLocal("{a}:53")' for a in listen[1:])]
    lines += [
        'setACL({"0.0.0.0/0"})',
        "function suffix(zone) local node = newSuffixMatchNode(); node:add(zone); return node end",
        "function to(address) local group = newNMG(); group:addMask(address); return group end",
        # FORMERR and the other synthesised answers without an OPT record, as the legacy servers send them.
        "setAddEDNSToSelfGeneratedResponses(false)",
        f'newServer({{address="{backend}:53", checkInterval=3600}}):setUp()',
    ]
    if which == 1:  # by destination address: the silent root
        lines.append(f'addAction(NetmaskGroupRule(to("{SILENT_ROOT}/32"), false), DropAction())')
    for f in FAULTS:
        lines += list(f.rules1 if which == 1 else f.rules2)
    (d / "dnsdist.conf").write_text("\n".join(lines) + "\n")
    ready = FAULTS[0]
    return Daemon(f"dnsdist{which}",
                  (BINARIES["dnsdist"], "--supervised", "--disable-syslog", "-C", str(d / "dnsdist.conf")),
                  addresses(ready)[f"{label}.{ready.net}"], ready.net + ".")


def _unbound(work: Path, name: str, address: str, anchor: Path | None = None) -> Daemon:
    """Unbound; validating from ``anchor`` (trust-anchor-file, EDE on) when given."""
    d = _dir(work, name)
    dnssec = (f'    module-config: "validator iterator"\n    trust-anchor-file: "{anchor}"\n    ede: yes\n'
              "    val-log-level: 2\n") if anchor else '    module-config: "iterator"\n'
    (d / "unbound.conf").write_text(f"""server:
    interface: {address}
    port: 53
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{d}"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    root-hints: "{work / 'root.hints'}"
    do-not-query-localhost: no
    access-control: 0.0.0.0/0 allow
{dnssec}remote-control:
    control-enable: no
""")
    return Daemon(name, (BINARIES["unbound"], "-d", "-c", str(d / "unbound.conf")), address,
                  FAULTS[0].com + ".")


def _ds_fields(line: str) -> tuple[str, str, str, str]:
    """(key tag, algorithm, digest type, digest) of a DS line "owner IN DS tag alg type digest"."""
    f = line.split()
    return f[3], f[4], f[5], "".join(f[6:])


def _bind_resolver(work: Path, name: str = "bind-resolver", anchor: list[str] | None = None) -> Daemon:
    """BIND recursive; validating from the root DS ``anchor`` (trust-anchors static-ds) when given."""
    d = _dir(work, name)
    address = VALIDATING["bind-val"] if anchor else RESOLVERS["bind"]
    if anchor:
        tas = "".join(". static-ds {} {} {} \"{}\";\n".format(*_ds_fields(line)) for line in anchor)
        dnssec = f"    dnssec-validation yes;\n}};\ntrust-anchors {{\n{tas}}};\n"
    else:
        dnssec = "    dnssec-validation no;\n};\n"
    (d / "named.conf").write_text(f"""options {{
    directory "{d}";
    pid-file "{d / 'named.pid'}";
    session-keyfile "{d / 'session.key'}";
    listen-on port 53 {{ {address}; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-recursion {{ any; }};
    allow-query {{ any; }};
    notify no;
{dnssec}controls {{ }};
zone "." {{ type hint; file "{work / 'root.hints'}"; }};
""")
    return Daemon(name, (BINARIES["named"], "-g", "-4", "-n", "1", "-c", str(d / "named.conf")),
                  address, FAULTS[0].com + ".")


def _kresd(work: Path, name: str = "kresd", anchor: Path | None = None) -> Daemon:
    """Knot Resolver; validating from ``anchor`` (trust_anchors.add_file, read-only) when given."""
    d = _dir(work, name)
    address = VALIDATING["kresd-val"] if anchor else RESOLVERS["kresd"]
    dnssec = f"trust_anchors.add_file('{anchor}', true)\n" if anchor else ""
    (d / "kresd.conf").write_text(f"""net.ipv6 = false
net.listen('{address}', 53, {{ kind = 'dns' }})
trust_anchors.remove('.')
{dnssec}modules.load('hints > iterate')
hints.root({{['{ROOT_NS}'] = '{ROOT}'}})
cache.open(20 * MB, 'lmdb://{d / 'cache'}')
""")
    return Daemon(name, (BINARIES["kresd"], "-n", "-c", str(d / "kresd.conf"), str(d)), address,
                  FAULTS[0].com + ".")


def _pdns_recursor(work: Path, name: str = "pdns-recursor", anchor: list[str] | None = None) -> Daemon:
    """PowerDNS Recursor; validating from the root DS ``anchor`` (addTA in its Lua config) when given."""
    d = _dir(work, name)
    address = VALIDATING["pdns-recursor-val"] if anchor else RESOLVERS["pdns-recursor"]
    if anchor:
        tas = "".join("addTA('.', '{} {} {} {}')\n".format(*_ds_fields(line)) for line in anchor)
        (d / "recursor.lua").write_text("clearTA('.')\n" + tas)
        dnssec = f"dnssec=validate\nlua-config-file={d / 'recursor.lua'}\nextended-resolution-errors=yes\n"
    else:
        dnssec = "dnssec=off\n"
    (d / "recursor.conf").write_text(f"""local-address={address}
local-port=53
allow-from=0.0.0.0/0
hint-file={work / 'root.hints'}
dont-query=
{dnssec}socket-dir={d}
daemon=no
write-pid=no
disable-syslog=yes
threads=1
setuid=
setgid=
""")
    return Daemon(name, (BINARIES["pdns-recursor"], f"--config-dir={d}"), address,
                  FAULTS[0].com + ".")


def _dnsmasq(work: Path) -> Daemon:
    address = RESOLVERS["dnsmasq"]
    argv = (BINARIES["dnsmasq"], "-k", "--conf-file=/dev/null", f"--listen-address={address}",
            "--bind-interfaces", "--port=53", "--no-resolv", "--no-hosts", f"--server={DNSMASQ_UPSTREAM}",
            "--cache-size=1000", "--user=root", "--group=root", "--pid-file=", "--log-queries",
            "--log-facility=-")
    return Daemon("dnsmasq", argv, address, FAULTS[0].com + ".")
