"""DNSSEC validation of recorded answers, pure: an RRset against its RRSIGs and the zone's DNSKEYs,
a DNSKEY set against the parent's DS, and the NSEC/NSEC3 proofs of NODATA and NXDOMAIN answers.

Each function returns the problems it found (none: the data is secure), each naming the zone, the
owner and type, the key tag and the time that matters, so a finding can say exactly what to re-sign.
dnspython's ``dns.dnssec`` does the cryptography; this module decides what a failure means.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.dnssec
import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rdtypes.ANY.DS
import dns.rdtypes.ANY.RRSIG
import dns.rrset

# What validators implement (RFC 8624 MUST/RECOMMENDED to validate); others make a zone insecure.
SUPPORTED_ALGORITHMS = frozenset({5, 7, 8, 10, 13, 14, 15, 16})
SUPPORTED_DIGESTS = frozenset({1, 2, 4})


class Status(enum.StrEnum):
    SECURE = "secure"
    INSECURE = "insecure"  # no DS, or only algorithms no validator implements: not validated, not bogus
    BOGUS = "bogus"  # validation fails: validating resolvers answer SERVFAIL
    INDETERMINATE = "indeterminate"  # the data needed to decide was not seen


class Problem(enum.StrEnum):
    RRSIG_MISSING = "RRSIG_MISSING"
    RRSIG_EXPIRED = "RRSIG_EXPIRED"
    RRSIG_NOT_YET_VALID = "RRSIG_NOT_YET_VALID"
    RRSIG_INVALID = "RRSIG_INVALID"  # does not verify with the key it names
    RRSIG_NO_KEY = "RRSIG_NO_KEY"  # names a key tag the DNSKEY set does not hold
    DS_NO_MATCHING_DNSKEY = "DS_NO_MATCHING_DNSKEY"
    DNSKEY_NOT_SELF_SIGNED = "DNSKEY_NOT_SELF_SIGNED"  # no valid RRSIG by a key the DS names
    DNSKEY_UNAVAILABLE = "DNSKEY_UNAVAILABLE"  # the DS names keys but no DNSKEY answer came
    DENIAL_MISSING = "DENIAL_MISSING"  # a negative answer without the NSEC/NSEC3 that proves it
    DENIAL_WRONG = "DENIAL_WRONG"  # the NSEC/NSEC3 given does not prove the answer


@dataclass(frozen=True)
class Failure:
    problem: Problem
    zone: str
    owner: str
    rdtype: str
    key_tag: int | None = None
    when: float | None = None  # the expiration (expired) or inception (not yet valid), epoch seconds
    detail: str = ""


def _tag(key: dns.rdtypes.ANY.DNSKEY.DNSKEY) -> int:
    return int(dns.dnssec.key_id(key))


def check_rrset(
    rrset: dns.rrset.RRset,
    rrsigs: Iterable[dns.rdtypes.ANY.RRSIG.RRSIG],
    dnskeys: dns.rrset.RRset | None,
    zone: dns.name.Name,
    now: float,
) -> list[Failure]:
    """The RRset is secure when one RRSIG by a key of ``dnskeys`` verifies and is valid at ``now``."""
    sigs = [s for s in rrsigs if s.type_covered == rrset.rdtype]
    owner, rdtype = rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype)
    if not sigs:
        return [Failure(Problem.RRSIG_MISSING, zone.to_text(), owner, rdtype, detail="no RRSIG covers it")]
    keys = {_tag(k): k for k in (dnskeys or ())}
    failures: list[Failure] = []
    for sig in sigs:
        if sig.key_tag not in keys:
            failures.append(Failure(Problem.RRSIG_NO_KEY, zone.to_text(), owner, rdtype, sig.key_tag,
                                    detail=f"signed by key {sig.key_tag}, not in the DNSKEY set"))
            continue
        if now > sig.expiration:
            failures.append(Failure(Problem.RRSIG_EXPIRED, zone.to_text(), owner, rdtype, sig.key_tag,
                                    float(sig.expiration)))
            continue
        if now < sig.inception:
            failures.append(Failure(Problem.RRSIG_NOT_YET_VALID, zone.to_text(), owner, rdtype, sig.key_tag,
                                    float(sig.inception)))
            continue
        assert dnskeys is not None
        try:
            dns.dnssec.validate_rrsig(rrset, sig, {zone: dnskeys}, now=now,
                                      policy=dns.dnssec.allow_all_policy)
        except dns.exception.DNSException as exc:  # ValidationFailure, UnsupportedAlgorithm
            failures.append(Failure(Problem.RRSIG_INVALID, zone.to_text(), owner, rdtype, sig.key_tag,
                                    detail=str(exc)))
            continue
        return []  # one valid signature is enough (RFC 4035 §5.3.3)
    return failures


def check_dnskeys(
    dnskeys: dns.rrset.RRset,
    rrsigs: Iterable[dns.rdtypes.ANY.RRSIG.RRSIG],
    ds: Sequence[dns.rdtypes.ANY.DS.DS],
    zone: dns.name.Name,
    now: float,
) -> tuple[Status, list[Failure]]:
    """The zone's keys against the parent's DS: secure, insecure (nothing a validator can use), or bogus."""
    usable = [d for d in ds if d.algorithm in SUPPORTED_ALGORITHMS and d.digest_type in SUPPORTED_DIGESTS]
    if not usable:
        return Status.INSECURE, []
    name = zone.to_text()
    matching = []
    for key in dnskeys:
        for d in usable:
            if d.key_tag != _tag(key) or d.algorithm != key.algorithm:
                continue
            made = dns.dnssec.make_ds(zone, key, d.digest_type)
            if made.digest == d.digest:
                matching.append(key)
    if not matching:
        tags = ", ".join(str(d.key_tag) for d in usable)
        return Status.BOGUS, [Failure(Problem.DS_NO_MATCHING_DNSKEY, name, name, "DNSKEY", usable[0].key_tag,
                                      detail=f"the parent's DS names key tag {tags}; the zone's DNSKEY set has "
                                             + ", ".join(str(_tag(k)) for k in dnskeys))]
    sigs = [s for s in rrsigs if s.type_covered == dns.rdatatype.DNSKEY]
    anchored = dns.rrset.from_rdata_list(dnskeys.name, dnskeys.ttl, matching)
    by_anchor = [s for s in sigs if s.key_tag in {_tag(k) for k in matching}]
    if not by_anchor:
        return Status.BOGUS, [Failure(Problem.DNSKEY_NOT_SELF_SIGNED, name, name, "DNSKEY", _tag(matching[0]),
                                      detail="no RRSIG over the DNSKEY set by the key the DS names")]
    failures = check_rrset(dnskeys, by_anchor, anchored, zone, now)
    return (Status.SECURE, []) if not failures else (Status.BOGUS, failures)


def check_nodata(
    qname: dns.name.Name,
    qtype: dns.rdatatype.RdataType,
    authority: Sequence[dns.rrset.RRset],
    dnskeys: dns.rrset.RRset | None,
    zone: dns.name.Name,
    now: float,
) -> list[Failure]:
    """A NODATA answer is proven by a signed NSEC at ``qname`` (or NSEC3 at its hash) without ``qtype``."""
    owner, rdtype = qname.to_text(), dns.rdatatype.to_text(qtype)
    proofs = _denial(authority)
    for rrset, sigs in proofs:
        if rrset.rdtype == dns.rdatatype.NSEC and rrset.name == qname:
            if _has_type(rrset[0], qtype) or _has_type(rrset[0], dns.rdatatype.CNAME):
                return [Failure(Problem.DENIAL_WRONG, zone.to_text(), owner, rdtype,
                                detail=f"the NSEC at {owner} says {rdtype} exists")]
            return check_rrset(rrset, sigs, dnskeys, zone, now)
        if rrset.rdtype == dns.rdatatype.NSEC3 and _nsec3_matches(rrset, qname, zone):
            if _has_type(rrset[0], qtype):
                return [Failure(Problem.DENIAL_WRONG, zone.to_text(), owner, rdtype,
                                detail=f"the NSEC3 of {owner} says {rdtype} exists")]
            return check_rrset(rrset, sigs, dnskeys, zone, now)
    return [Failure(Problem.DENIAL_MISSING, zone.to_text(), owner, rdtype,
                    detail=f"no NSEC or NSEC3 record for {owner} proves that it has no {rdtype} record")]


def check_optout(
    qname: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    dnskeys: dns.rrset.RRset | None,
    zone: dns.name.Name,
    now: float,
) -> list[Failure] | None:
    """An insecure delegation under NSEC3 opt-out (RFC 5155 §6, §7.2.4): a signed NSEC3 with the
    opt-out flag covering ``qname``'s hash proves there may be no DS. None when no such record came."""
    for rrset, sigs in _denial(authority):
        if rrset.rdtype == dns.rdatatype.NSEC3 and int(getattr(rrset[0], "flags", 0)) & 1 \
                and _nsec3_covers(rrset, qname, zone):
            return check_rrset(rrset, sigs, dnskeys, zone, now)
    return None


def check_nxdomain(
    qname: dns.name.Name,
    authority: Sequence[dns.rrset.RRset],
    dnskeys: dns.rrset.RRset | None,
    zone: dns.name.Name,
    now: float,
) -> list[Failure]:
    """An NXDOMAIN is proven when signed denial records show that ``qname`` does not exist and that no
    wildcard at its closest encloser could have made it (RFC 4035 §5.4; RFC 5155 §8.4: the closest
    encloser's NSEC3, and NSEC3s covering the next closer name and the wildcard)."""
    owner = qname.to_text()
    proofs = _denial(authority)
    nsec = [(r, sigs) for r, sigs in proofs if r.rdtype == dns.rdatatype.NSEC]
    nsec3 = [(r, sigs) for r, sigs in proofs if r.rdtype == dns.rdatatype.NSEC3]

    def missing(detail: str) -> list[Failure]:
        return [Failure(Problem.DENIAL_MISSING, zone.to_text(), owner, "ANY", detail=detail)]

    used: list[tuple[dns.rrset.RRset, list[dns.rdtypes.ANY.RRSIG.RRSIG]]] = []
    if nsec:
        cover = next(((r, sigs) for r, sigs in nsec if _nsec_covers(r, qname)), None)
        if cover is None:
            return missing(f"no NSEC record covers {owner}: the NXDOMAIN is not proven")
        encloser = max((qname.fullcompare(n)[2] for n in (cover[0].name, cover[0][0].next)), default=0)
        ce = qname.split(max(encloser, len(zone)))[1]
        wildcard = dns.name.Name((b"*",) + ce.labels)
        wild = next(((r, sigs) for r, sigs in nsec if _nsec_covers(r, wildcard)), None)
        if wild is None:
            return missing(f"no NSEC record proves that the wildcard {wildcard} does not exist")
        used = [cover, wild]
    elif nsec3:
        ce_found: dns.name.Name | None = None
        candidate = qname
        while candidate != zone and len(candidate) > len(zone):
            candidate = candidate.parent()
            if any(_nsec3_matches(r, candidate, zone) for r, _ in nsec3):
                ce_found = candidate
                break
        if ce_found is None:
            return missing(f"no NSEC3 record proves a closest encloser of {owner}")
        next_closer = qname.split(len(ce_found) + 1)[1]
        wildcard = dns.name.Name((b"*",) + ce_found.labels)
        match = next((r, sigs) for r, sigs in nsec3 if _nsec3_matches(r, ce_found, zone))
        nc = next(((r, sigs) for r, sigs in nsec3 if _nsec3_covers(r, next_closer, zone)), None)
        if nc is None:
            return missing(f"no NSEC3 record covers the next closer name {next_closer}: the NXDOMAIN is not proven")
        wild = next(((r, sigs) for r, sigs in nsec3 if _nsec3_covers(r, wildcard, zone)), None)
        if wild is None:
            return missing(f"no NSEC3 record proves that the wildcard {wildcard} does not exist")
        used = [match, nc, wild]
    else:
        return missing(f"no NSEC or NSEC3 record covers {owner}: the NXDOMAIN is not proven")
    failures: list[Failure] = []
    seen: set[tuple[dns.name.Name, int]] = set()
    for rrset, sigs in used:
        if (rrset.name, rrset.rdtype) in seen:
            continue
        seen.add((rrset.name, rrset.rdtype))
        failures += check_rrset(rrset, sigs, dnskeys, zone, now)
    return failures


def _denial(authority: Sequence[dns.rrset.RRset]) -> list[tuple[dns.rrset.RRset, list[dns.rdtypes.ANY.RRSIG.RRSIG]]]:
    sigs: dict[tuple[dns.name.Name, int], list[dns.rdtypes.ANY.RRSIG.RRSIG]] = {}
    for rrset in authority:
        if rrset.rdtype == dns.rdatatype.RRSIG:
            for sig in rrset:
                sigs.setdefault((rrset.name, sig.type_covered), []).append(sig)
    return [(r, sigs.get((r.name, r.rdtype), [])) for r in authority
            if r.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)]


def _has_type(rdata: object, rdtype: dns.rdatatype.RdataType) -> bool:
    windows = getattr(rdata, "windows", ())
    for window, bitmap in windows:
        if rdtype // 256 != window:
            continue
        offset = (rdtype % 256) // 8
        if offset < len(bitmap) and int(bitmap[offset]) & (0x80 >> (rdtype % 8)):
            return True
    return False


def _nsec_covers(rrset: dns.rrset.RRset, qname: dns.name.Name) -> bool:
    start, end = rrset.name, rrset[0].next
    if start < end:
        return bool(start < qname < end)
    return bool(qname > start or qname < end)  # the last NSEC wraps to the apex


def _hash_label(name: dns.name.Name, rdata: object) -> str | None:
    """The NSEC3 hash of ``name``; None for a hash algorithm validators must ignore (RFC 5155 §8.1)."""
    salt = getattr(rdata, "salt", b"")
    try:
        return dns.dnssec.nsec3_hash(name, salt or None, int(getattr(rdata, "iterations", 0)),
                                     int(getattr(rdata, "algorithm", 1))).lower()
    except (ValueError, dns.exception.DNSException):
        return None


def _nsec3_matches(rrset: dns.rrset.RRset, qname: dns.name.Name, zone: dns.name.Name) -> bool:
    digest = _hash_label(qname, rrset[0])
    return digest is not None and rrset.name.labels[0].decode().lower() == digest


def _nsec3_covers(rrset: dns.rrset.RRset, qname: dns.name.Name, zone: dns.name.Name) -> bool:
    import base64

    start = rrset.name.labels[0].decode().lower()
    end = base64.b32encode(rrset[0].next).decode().translate(_B32_TO_HEX).lower()
    digest = _hash_label(qname, rrset[0])
    if digest is None:
        return False
    if start < end:
        return start < digest < end
    return digest > start or digest < end


_B32_TO_HEX = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHIJKLMNOPQRSTUV")
