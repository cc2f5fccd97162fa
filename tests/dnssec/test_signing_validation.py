"""The lab's signer and the pure validator, against each other and against dnspython: a healthy
signed zone validates; each signing fault is named as the validator's problem, with its key and time."""

from __future__ import annotations

import time

import dns.dnssec
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from mxdoctor.checks import _dnssec as v
from mxdoctor.lab import signing
from mxdoctor.lab.signing import FaultKind, SigningFault

NOW = time.time()
ZONE = dns.name.from_text("example.net.")
TEXT = """
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
ns1 A 192.0.2.1
mail A 192.0.2.25
www A 192.0.2.80
sub NS ns.sub
ns.sub A 192.0.2.53
"""


def signed(algorithm: int = 13, denial: str = "nsec", *faults: SigningFault) -> tuple[dns.zone.Zone, signing.ZoneKeys]:
    zone = dns.zone.from_text(TEXT, origin=ZONE, relativize=False)
    keys = signing.make_keys(algorithm)
    signing.sign_zone(zone, keys, now=NOW, denial=denial, faults=faults)
    return zone, keys


def rrset(zone: dns.zone.Zone, name: str, rdtype: str) -> dns.rrset.RRset:
    owner = dns.name.from_text(name, ZONE)
    rds = zone.nodes[owner].get_rdataset(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype))
    assert rds is not None
    return dns.rrset.from_rdata_list(owner, rds.ttl, list(rds))


def sigs(zone: dns.zone.Zone, name: str, rdtype: str) -> list[object]:
    owner = dns.name.from_text(name, ZONE)
    rds = zone.nodes[owner].get_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.from_text(rdtype))
    return list(rds) if rds is not None else []


def ds_of(keys: signing.ZoneKeys) -> list[object]:
    import dns.rdata

    return [dns.rdata.from_text("IN", "DS", t) for t in signing.ds_texts("example.net.", keys)]


def denial_section(zone: dns.zone.Zone) -> list[dns.rrset.RRset]:
    """Every NSEC/NSEC3 RRset with its RRSIG, as an authority section that carries them all would."""
    out = []
    for owner, node in zone.nodes.items():
        for rds in node.rdatasets:
            if rds.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3) or (
                    rds.rdtype == dns.rdatatype.RRSIG and rds.covers in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)):
                out.append(dns.rrset.from_rdata_list(owner, rds.ttl, list(rds)))
    return out


@pytest.mark.parametrize("algorithm", [8, 13, 15])
@pytest.mark.parametrize("denial", ["nsec", "nsec3"])
def test_healthy_zone_validates(algorithm: int, denial: str) -> None:
    zone, keys = signed(algorithm, denial)
    dnskeys = rrset(zone, "@", "DNSKEY")
    assert v.check_dnskeys(dnskeys, sigs(zone, "@", "DNSKEY"), ds_of(keys), ZONE, NOW) == (v.Status.SECURE, [])
    for name in ("mail", "ns1", "@"):
        rdtype = "SOA" if name == "@" else "A"
        assert v.check_rrset(rrset(zone, name, rdtype), sigs(zone, name, rdtype), dnskeys, ZONE, NOW) == []
        # dnspython agrees.
        dns.dnssec.validate(rrset(zone, name, rdtype), dns.rrset.from_rdata_list(
            dns.name.from_text(name, ZONE), 300, sigs(zone, name, rdtype)), {ZONE: dnskeys}, now=NOW)
    proof = denial_section(zone)
    assert v.check_nodata(dns.name.from_text("mail", ZONE), dns.rdatatype.AAAA, proof, dnskeys, ZONE, NOW) == []
    assert v.check_nxdomain(dns.name.from_text("nope", ZONE), proof, dnskeys, ZONE, NOW) == []
    # The delegation's NS is the child's to sign; glue is not signed.
    assert sigs(zone, "sub", "NS") == [] and sigs(zone, "ns.sub", "A") == []


@pytest.mark.parametrize(("kind", "problem"), [
    (FaultKind.EXPIRED, v.Problem.RRSIG_EXPIRED),
    (FaultKind.NOT_YET_VALID, v.Problem.RRSIG_NOT_YET_VALID),
    (FaultKind.BAD_SIGNATURE, v.Problem.RRSIG_INVALID),
    (FaultKind.MISSING_RRSIG, v.Problem.RRSIG_MISSING),
])
def test_rrsig_faults_of_one_rrset(kind: FaultKind, problem: v.Problem) -> None:
    zone, keys = signed(13, "nsec", SigningFault(kind, "mail.example.net.", "A"))
    dnskeys = rrset(zone, "@", "DNSKEY")
    (failure,) = v.check_rrset(rrset(zone, "mail", "A"), sigs(zone, "mail", "A"), dnskeys, ZONE, NOW)
    assert failure.problem is problem and failure.owner == "mail.example.net." and failure.rdtype == "A"
    if kind is FaultKind.EXPIRED:
        assert failure.when is not None and failure.when < NOW and failure.key_tag == signing.key_tag(keys.zsk_dnskey)
    # Only that RRset: the rest of the zone still validates.
    assert v.check_rrset(rrset(zone, "www", "A"), sigs(zone, "www", "A"), dnskeys, ZONE, NOW) == []


def test_dnskey_without_self_signature() -> None:
    zone, keys = signed(13, "nsec", SigningFault(FaultKind.NO_SELF_SIGNATURE))
    status, (failure,) = v.check_dnskeys(rrset(zone, "@", "DNSKEY"), sigs(zone, "@", "DNSKEY"), ds_of(keys), ZONE, NOW)
    assert status is v.Status.BOGUS and failure.problem is v.Problem.DNSKEY_NOT_SELF_SIGNED


def test_ds_that_matches_no_key_and_unsupported_algorithm() -> None:
    import dns.rdata

    zone, _ = signed()
    other = signing.make_keys(13)
    status, (failure,) = v.check_dnskeys(rrset(zone, "@", "DNSKEY"), sigs(zone, "@", "DNSKEY"), ds_of(other), ZONE, NOW)
    assert status is v.Status.BOGUS and failure.problem is v.Problem.DS_NO_MATCHING_DNSKEY
    assert str(signing.key_tag(other.ksk_dnskey)) in failure.detail
    unsupported = [dns.rdata.from_text("IN", "DS", t) for t in
                   signing.ds_texts("example.net.", other, algorithm_override=signing.UNSUPPORTED_ALGORITHM)]
    assert v.check_dnskeys(rrset(zone, "@", "DNSKEY"), sigs(zone, "@", "DNSKEY"), unsupported, ZONE, NOW) == (
        v.Status.INSECURE, [])


@pytest.mark.parametrize("denial", ["nsec", "nsec3"])
def test_bogus_nodata_proof_of_the_mx_host(denial: str) -> None:
    """The DNSSEC twin of the founding case: A validates, the NODATA proof for AAAA is gone."""
    zone, _ = signed(13, denial, SigningFault(FaultKind.BOGUS_NODATA, "mail.example.net."))
    dnskeys = rrset(zone, "@", "DNSKEY")
    assert v.check_rrset(rrset(zone, "mail", "A"), sigs(zone, "mail", "A"), dnskeys, ZONE, NOW) == []
    (failure,) = v.check_nodata(dns.name.from_text("mail", ZONE), dns.rdatatype.AAAA, denial_section(zone),
                                dnskeys, ZONE, NOW)
    assert failure.problem is v.Problem.DENIAL_MISSING and failure.rdtype == "AAAA"


@pytest.mark.parametrize("denial", ["nsec", "nsec3"])
def test_bogus_nxdomain_proof(denial: str) -> None:
    zone, _ = signed(13, denial, SigningFault(FaultKind.BOGUS_NXDOMAIN, "nope.example.net."))
    (failure,) = v.check_nxdomain(dns.name.from_text("nope", ZONE), denial_section(zone),
                                  rrset(zone, "@", "DNSKEY"), ZONE, NOW)
    assert failure.problem is v.Problem.DENIAL_MISSING


def test_nsec_that_claims_the_type() -> None:
    zone, _ = signed()
    (failure,) = v.check_nodata(dns.name.from_text("mail", ZONE), dns.rdatatype.A, denial_section(zone),
                                rrset(zone, "@", "DNSKEY"), ZONE, NOW)
    assert failure.problem is v.Problem.DENIAL_WRONG



def test_nsec3_opt_out_proves_an_insecure_delegation() -> None:
    import base64
    import time

    import dns.dnssec
    import dns.name
    import dns.rdatatype
    import dns.rrset
    import dns.zone

    from mxdoctor.checks import _dnssec as dv
    from mxdoctor.lab import signing as sg

    now = time.time()
    zone = dns.zone.from_text(
        "com. 3600 IN SOA a. b. 1 1 1 1 1\ncom. 3600 IN NS a.\nzzz.com. 3600 IN NS ns.zzz.com.\n",
        origin="com.", relativize=False)
    keys = sg.make_keys(13)
    sg.sign_zone(zone, keys, now=now, denial="nsec3")
    origin = dns.name.from_text("com.")
    owner, node = next((n, nd) for n, nd in zone.nodes.items() if nd.get_rdataset(1, dns.rdatatype.NSEC3))
    nsec3 = node.get_rdataset(1, dns.rdatatype.NSEC3)
    # An opt-out span from the owner round to itself: it covers every other hash.
    itself = base64.b32hexdecode(owner.labels[0].decode().upper())
    rrset = dns.rrset.from_rdata(owner, 300, nsec3[0].replace(flags=1, next=itself))
    sig = dns.dnssec.sign(rrset, keys.zsk, origin, keys.zsk_dnskey, inception=now - 60, expiration=now + 3600)
    proof = [rrset, dns.rrset.from_rdata(owner, 300, sig)]
    dnskeys = dns.rrset.from_rdata_list(origin, 300, list(keys.dnskeys))
    child = dns.name.from_text("example.com.")
    assert dv.check_optout(child, proof, dnskeys, origin, now) == []
    assert dv.check_optout(child, proof[:1], dnskeys, origin, now)  # unsigned: not a proof
    without_flag = [dns.rrset.from_rdata(owner, 300, nsec3[0].replace(next=itself)), proof[1]]
    assert dv.check_optout(child, without_flag, dnskeys, origin, now) is None
