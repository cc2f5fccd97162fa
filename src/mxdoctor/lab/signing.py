"""DNSSEC signing of the lab's zones with dnspython: keys (algorithms 8, 13, 15), DNSKEY, RRSIGs,
NSEC or NSEC3 denial, DS for the parent, and the signing faults the field produces (expired or
not-yet-valid signatures, a signature that does not verify, a missing RRSIG, a DNSKEY set without a
valid self-signature, a broken denial proof).

Signing is pure: a zone in, the signed zone out; the lab's servers then serve what is there.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.dnssec
import dns.dnssectypes
import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.RRSIG
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ALGORITHMS = {8: dns.dnssectypes.Algorithm.RSASHA256, 13: dns.dnssectypes.Algorithm.ECDSAP256SHA256,
              15: dns.dnssectypes.Algorithm.ED25519}
# An algorithm number no validator implements (RFC 8624: unknown means the zone is insecure, not bogus).
UNSUPPORTED_ALGORITHM = 253
NSEC3_ITERATIONS = 0  # RFC 9276: no extra iterations, no salt
DAY = 86400


class FaultKind(enum.StrEnum):
    EXPIRED = "expired"  # RRSIGs (of one RRset, or all) expired
    NOT_YET_VALID = "not-yet-valid"  # inception in the future
    BAD_SIGNATURE = "bad-signature"  # a signature that does not verify
    MISSING_RRSIG = "missing-rrsig"  # an RRset served without its RRSIG
    NO_SELF_SIGNATURE = "dnskey-no-self-signature"  # DNSKEY set signed only by a key the DS does not name
    BOGUS_NODATA = "bogus-nodata-proof"  # the NSEC/NSEC3 of a name removed: its NODATA answers cannot be proven
    BOGUS_NXDOMAIN = "bogus-nxdomain-proof"  # the NSEC/NSEC3 covering a missing name removed
    # Faults of the chain rather than the zone's own signatures (applied by ``sign_all``):
    DS_MISMATCH = "ds-mismatch"  # the parent's DS names a key the zone does not publish (botched key roll)
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"  # the DS names an algorithm no validator implements
    BIG_DNSKEY = "big-dnskey"  # extra published keys make the DNSKEY answer too big for UDP


@dataclass(frozen=True)
class SigningFault:
    kind: FaultKind
    name: str | None = None  # absolute owner name the fault applies to; None: the whole zone
    rdtype: str | None = None  # the RRset's type, for RRSIG faults


@dataclass(frozen=True)
class ZoneSigning:
    """How the lab signs one zone."""

    algorithm: int = 13
    denial: str = "nsec"
    faults: tuple[SigningFault, ...] = ()

    def has(self, kind: FaultKind) -> bool:
        return any(f.kind is kind for f in self.faults)


@dataclass(frozen=True)
class ZoneKeys:
    """A KSK (SEP flag, what the parent's DS names) and a ZSK, as private keys and DNSKEY rdata."""

    algorithm: int
    ksk: object
    ksk_dnskey: dns.rdata.Rdata
    zsk: object
    zsk_dnskey: dns.rdata.Rdata

    @property
    def dnskeys(self) -> tuple[dns.rdata.Rdata, ...]:
        return (self.ksk_dnskey, self.zsk_dnskey)


def _private_key(algorithm: int) -> object:
    if algorithm == 8:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == 13:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == 15:
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"signing algorithm {algorithm} is not one of {sorted(ALGORITHMS)}")


def make_keys(algorithm: int = 13) -> ZoneKeys:
    ksk, zsk = _private_key(algorithm), _private_key(algorithm)
    alg = ALGORITHMS[algorithm]
    return ZoneKeys(
        algorithm,
        ksk, dns.dnssec.make_dnskey(ksk.public_key(), alg, flags=257),  # type: ignore[attr-defined]
        zsk, dns.dnssec.make_dnskey(zsk.public_key(), alg, flags=256),  # type: ignore[attr-defined]
    )


def ds_texts(zone: str, keys: ZoneKeys, *, algorithm_override: int | None = None) -> list[str]:
    """The DS record(s) the parent publishes for ``zone`` (SHA-256 of the KSK), as rdata text.

    ``algorithm_override`` writes another algorithm number into the DS (an unsupported one makes
    validators treat the zone as insecure)."""
    ds = dns.dnssec.make_ds(dns.name.from_text(zone), keys.ksk_dnskey, "SHA256")
    if algorithm_override is not None:
        return [ds.replace(algorithm=algorithm_override).to_text()]
    return [ds.to_text()]


def key_tag(dnskey: dns.rdata.Rdata) -> int:
    return int(dns.dnssec.key_id(dnskey))  # type: ignore[arg-type]


def _authoritative_names(zone: dns.zone.Zone) -> tuple[list[dns.name.Name], set[dns.name.Name]]:
    """Names in the zone's own data (delegation points included, glue below them excluded)."""
    origin = zone.origin
    assert origin is not None
    cuts = {n for n, node in zone.nodes.items()
            if n != origin and node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NS)}
    names = [n for n in zone.nodes if not any(n != c and n.is_subdomain(c) for c in cuts)]
    return sorted(names), cuts


def _types(node: dns.node.Node) -> set[dns.rdatatype.RdataType]:
    return {rds.rdtype for rds in node.rdatasets if rds.rdtype not in (dns.rdatatype.RRSIG,)}


def sign_zone(
    zone: dns.zone.Zone,
    keys: ZoneKeys,
    *,
    now: float,
    denial: str = "nsec",
    ttl: int = 300,
    faults: Sequence[SigningFault] = (),
) -> None:
    """Sign ``zone`` in place (DNSKEY, RRSIGs, NSEC or NSEC3 chain), then apply ``faults``."""
    origin = zone.origin
    assert origin is not None
    apex = zone.find_node(origin)
    dnskeys = apex.find_rdataset(dns.rdataclass.IN, dns.rdatatype.DNSKEY, create=True)
    dnskeys.update_ttl(ttl)
    for k in keys.dnskeys:
        dnskeys.add(k)
    names, cuts = _authoritative_names(zone)
    if denial == "nsec3":
        _nsec3_chain(zone, names, cuts, ttl)
    else:
        _nsec_chain(zone, names, cuts, ttl)
    inception, expiration = now - DAY, now + 30 * DAY
    by_kind = {f.kind: f for f in faults}
    names, cuts = _authoritative_names(zone)  # NSEC3 owners joined the zone
    for name in names:
        node = zone.nodes[name]
        for rds in list(node.rdatasets):
            if rds.rdtype == dns.rdatatype.RRSIG:
                continue
            if name in cuts and rds.rdtype != dns.rdatatype.DS and rds.rdtype not in (
                    dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
                continue  # the child signs its NS set; the parent signs only the DS and the denial
            start, end = inception, expiration
            for kind in (FaultKind.EXPIRED, FaultKind.NOT_YET_VALID):
                f = by_kind.get(kind)
                if f is not None and _applies(f, name, rds.rdtype):
                    start, end = (now - 40 * DAY, now - 3 * DAY) if kind is FaultKind.EXPIRED else (
                        now + 2 * DAY, now + 40 * DAY)
            signers = [(keys.zsk, keys.zsk_dnskey)]
            if rds.rdtype == dns.rdatatype.DNSKEY:
                no_self = FaultKind.NO_SELF_SIGNATURE in by_kind
                signers = [(keys.zsk, keys.zsk_dnskey)] if no_self else [(keys.ksk, keys.ksk_dnskey)]
            sigs = node.find_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rds.rdtype, create=True)
            sigs.update_ttl(rds.ttl)
            for private, dnskey in signers:
                sigs.add(dns.dnssec.sign((name, rds), private, origin, dnskey,  # type: ignore[arg-type]
                                         inception=start, expiration=end, origin=origin))
    _apply_faults(zone, names, faults)


def _applies(f: SigningFault, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> bool:
    if f.name is not None and dns.name.from_text(f.name) != name:
        return False
    return f.rdtype is None or dns.rdatatype.from_text(f.rdtype) == rdtype


def _nsec_chain(zone: dns.zone.Zone, names: list[dns.name.Name], cuts: set[dns.name.Name], ttl: int) -> None:
    for i, name in enumerate(names):
        node = zone.nodes[name]
        types = _types(node)
        if name in cuts:
            types &= {dns.rdatatype.NS, dns.rdatatype.DS}
        bitmap = types | {dns.rdatatype.NSEC, dns.rdatatype.RRSIG}
        if name in cuts and dns.rdatatype.DS not in types:
            bitmap = {dns.rdatatype.NS, dns.rdatatype.NSEC, dns.rdatatype.RRSIG}
        types_text = " ".join(dns.rdatatype.to_text(t) for t in sorted(bitmap))
        rd = dns.rdata.from_text("IN", "NSEC", f"{names[(i + 1) % len(names)].to_text()} {types_text}")
        node.find_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC, create=True).add(rd, ttl)


def _hash(name: dns.name.Name) -> str:
    return dns.dnssec.nsec3_hash(name, None, NSEC3_ITERATIONS, 1)


def _nsec3_chain(zone: dns.zone.Zone, names: list[dns.name.Name], cuts: set[dns.name.Name], ttl: int) -> None:
    origin = zone.origin
    assert origin is not None
    # Empty non-terminals get NSEC3 records too (RFC 5155 §7.1).
    everything = set(names)
    for name in names:
        parent = name
        while parent != origin and len(parent) > len(origin):
            parent = parent.parent()
            everything.add(parent)
    hashed = sorted((_hash(n), n) for n in everything)
    apex = zone.find_node(origin)
    apex.find_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC3PARAM, create=True).add(
        dns.rdata.from_text("IN", "NSEC3PARAM", f"1 0 {NSEC3_ITERATIONS} -"), 0)
    for i, (digest, name) in enumerate(hashed):
        node = zone.nodes.get(name)
        types = _types(node) if node is not None else set()
        if name in cuts:
            types &= {dns.rdatatype.NS, dns.rdatatype.DS}
        if types and not (name in cuts and dns.rdatatype.DS not in types):
            types.add(dns.rdatatype.RRSIG)
        if name == origin:
            types.add(dns.rdatatype.NSEC3PARAM)
        nxt = hashed[(i + 1) % len(hashed)][0]
        bitmap = " ".join(dns.rdatatype.to_text(t) for t in sorted(types))
        rd = dns.rdata.from_text("IN", "NSEC3", f"1 0 {NSEC3_ITERATIONS} - {nxt} {bitmap}")
        owner = dns.name.from_text(digest.lower(), origin)
        zone.find_node(owner, create=True).find_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC3, create=True).add(
            rd, ttl)


def _denial_owner(zone: dns.zone.Zone, name: dns.name.Name) -> dns.name.Name | None:
    """The owner of the NSEC (at ``name``) or NSEC3 (at its hash) that describes ``name``."""
    origin = zone.origin
    assert origin is not None
    node = zone.nodes.get(name)
    if node is not None and node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC):
        return name
    owner = dns.name.from_text(_hash(name).lower(), origin)
    return owner if owner in zone.nodes else None


def _covering_owner(zone: dns.zone.Zone, names: Iterable[dns.name.Name], qname: dns.name.Name) -> dns.name.Name | None:
    """The owner of the NSEC (or NSEC3) record whose span covers a name that does not exist."""
    origin = zone.origin
    assert origin is not None
    nsec = sorted(n for n, node in zone.nodes.items() if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC))
    if nsec:
        before = [n for n in nsec if n < qname]
        return before[-1] if before else nsec[-1]
    digest = _hash(qname).lower()
    owners = sorted((n.labels[0].decode(), n) for n, node in zone.nodes.items()
                    if node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NSEC3))
    before = [n for h, n in owners if h < digest]
    return before[-1] if before else (owners[-1][1] if owners else None)


def _apply_faults(zone: dns.zone.Zone, names: Sequence[dns.name.Name], faults: Sequence[SigningFault]) -> None:
    for f in faults:
        if f.kind is FaultKind.BAD_SIGNATURE:
            for name in names:
                node = zone.nodes[name]
                for rds in node.rdatasets:
                    if rds.rdtype != dns.rdatatype.RRSIG:
                        continue
                    if f.rdtype is not None and dns.rdatatype.from_text(f.rdtype) != rds.covers:
                        continue
                    if f.name is not None and dns.name.from_text(f.name) != name:
                        continue
                    broken = [sig.replace(signature=bytes([sig.signature[0] ^ 0xFF]) + sig.signature[1:])
                              for sig in rds]
                    rds.clear()
                    for sig in broken:
                        rds.add(sig)
        elif f.kind is FaultKind.MISSING_RRSIG:
            for name in names:
                if f.name is not None and dns.name.from_text(f.name) != name:
                    continue
                node = zone.nodes[name]
                for rds in list(node.rdatasets):
                    if rds.rdtype == dns.rdatatype.RRSIG and (
                            f.rdtype is None or rds.covers == dns.rdatatype.from_text(f.rdtype)):
                        node.delete_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rds.covers)
        elif f.kind in (FaultKind.BOGUS_NODATA, FaultKind.BOGUS_NXDOMAIN) and f.name is not None:
            qname = dns.name.from_text(f.name)
            owner = (_denial_owner(zone, qname) if f.kind is FaultKind.BOGUS_NODATA
                     else _covering_owner(zone, names, qname))
            if owner is not None:
                node = zone.nodes[owner]
                for t in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
                    node.delete_rdataset(dns.rdataclass.IN, t)
                    node.delete_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, t)


_CHAIN_FAULTS = (FaultKind.DS_MISMATCH, FaultKind.UNSUPPORTED_ALGORITHM, FaultKind.BIG_DNSKEY)
# Standby keys of the zone's own algorithm (RFC 4035 §2.2: every algorithm in the DNSKEY set must sign the
# zone, so keys of another algorithm would be a second fault): four 4096-bit RSA keys, or enough ECDSA or
# Ed25519 keys to pass 1232 bytes with the KSK's RRSIG.
BIG_DNSKEY_EXTRA = {8: 4, 13: 14, 15: 22}


def sign_all(zones: dict[str, dns.zone.Zone], signing: dict[str, ZoneSigning], *, now: float) -> list[str]:
    """Sign every zone of ``signing`` in place (keys made now), with the DS of each in its parent zone
    when the parent is in ``zones``; return the trust anchor of the root as DS lines in zone-file
    form, or nothing when the root is not signed."""
    keys = {origin: make_keys(spec.algorithm) for origin, spec in signing.items() if origin in zones}
    for origin, spec in signing.items():
        if origin not in keys or origin == ".":
            continue
        parent = _parent_zone(zones, origin)
        if parent is None:
            continue
        cut = dns.name.from_text(origin)
        if spec.has(FaultKind.DS_MISMATCH):
            # The parent still names the key of before the roll; the zone publishes only the new one.
            texts = ds_texts(origin, make_keys(spec.algorithm))
        elif spec.has(FaultKind.UNSUPPORTED_ALGORITHM):
            texts = ds_texts(origin, keys[origin], algorithm_override=UNSUPPORTED_ALGORITHM)
        else:
            texts = ds_texts(origin, keys[origin])
        rds = parent.find_rdataset(cut, dns.rdatatype.DS, create=True)
        for text in texts:
            rds.add(dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.DS, text), 3600)
    # Children before parents does not matter: every DS is in place before any zone is signed.
    for origin, spec in signing.items():
        if origin not in keys:
            continue
        zone = zones[origin]
        if spec.has(FaultKind.BIG_DNSKEY):
            _add_big_keys(zone, spec.algorithm)
        own = [f for f in spec.faults if f.kind not in _CHAIN_FAULTS]
        sign_zone(zone, keys[origin], now=now, denial=spec.denial, faults=own)
    if "." not in keys:
        return []
    return [f". 3600 IN DS {text}" for text in ds_texts(".", keys["."])]


def _parent_zone(zones: dict[str, dns.zone.Zone], origin: str) -> dns.zone.Zone | None:
    name = dns.name.from_text(origin)
    while name != dns.name.root:
        name = name.parent()
        found = zones.get(name.to_text().lower())
        if found is not None:
            return found
    return None


def _add_big_keys(zone: dns.zone.Zone, algorithm: int) -> None:
    """Publish keys nobody signs with (as a pre-published roll does), sized to overflow UDP."""
    import os

    assert zone.origin is not None
    rds = zone.find_rdataset(zone.origin, dns.rdatatype.DNSKEY, create=True)
    for _ in range(BIG_DNSKEY_EXTRA[algorithm]):
        if algorithm == 8:
            # Random modulus bytes: nothing verifies with a standby key, and a 4096-bit key is slow to make.
            material = b"\x03\x01\x00\x01" + os.urandom(512)
            rds.add(dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.DNSKEY,
                                        b"\x01\x00\x03\x08" + material, 0, 4 + len(material)), 300)
        else:
            private = _private_key(algorithm)
            rds.add(dns.dnssec.make_dnskey(private.public_key(), ALGORITHMS[algorithm],  # type: ignore[attr-defined]
                                           flags=256), 300)
