"""The signed lab: DO answers from the authoritative servers (RRSIGs, NSEC/NSEC3 proofs, DS in
referrals), nothing DNSSEC without DO, and what the validating lab resolvers answer in every
built-in dnssec-* scenario (RCODE, AD, Extended DNS Error)."""

from __future__ import annotations

from pathlib import Path

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from mxdoctor import lab
from mxdoctor.checks import _dnssec
from mxdoctor.dns import anchor as trust_anchor
from mxdoctor.errors import ScenarioError
from mxdoctor.lab import scenario as scenario_mod
from mxdoctor.lab import signing

OK_AD = ("NOERROR", True, ())
OK = ("NOERROR", False, ())


def _ask(endpoint: lab.Endpoint, qname: str, qtype: str, *, do: bool = True) -> dns.message.Message:
    query = dns.message.make_query(qname, qtype, want_dnssec=do)
    return dns.query.udp(query, endpoint.address, port=endpoint.port, timeout=5)


def _shape(reply: dns.message.Message) -> tuple[str, bool, tuple[int, ...]]:
    ede = tuple(int(o.code) for o in reply.options if isinstance(o, dns.edns.EDEOption))
    return dns.rcode.to_text(reply.rcode()), bool(reply.flags & dns.flags.AD), ede


MAIL = [("mail.example.net.", "A"), ("mail.example.net.", "AAAA")]
# scenario -> resolver -> [(qname, qtype, (rcode, AD, EDE codes))]
RESOLVERS = {
    "dnssec-healthy": {"internal": [("example.com.", "MX", OK_AD), *((q, t, OK_AD) for q, t in MAIL)]},
    "dnssec-nsec3": {"external": [("example.com.", "MX", OK_AD), ("mail.example.net.", "AAAA", OK_AD),
                                  ("nope.example.net.", "A", ("NXDOMAIN", True, ()))]},
    "dnssec-expired": {"internal": [("mail.example.net.", "A", ("SERVFAIL", False, (7,))),
                                    ("mail.example.net.", "AAAA", OK_AD)]},
    "dnssec-ds-mismatch": {"internal": [("example.com.", "MX", OK_AD),
                                        ("mail.example.net.", "A", ("SERVFAIL", False, (9,)))]},
    "dnssec-missing-rrsig": {"internal": [("mail.example.net.", "A", ("SERVFAIL", False, (10,)))]},
    "dnssec-dnskey-unsigned": {"external": [("mail.example.net.", "A", ("SERVFAIL", False, (10,)))]},
    "dnssec-aaaa-nodata-bogus": {"internal": [("mail.example.net.", "A", OK_AD),
                                              ("mail.example.net.", "AAAA", ("SERVFAIL", False, (6,)))]},
    "dnssec-nxdomain-bogus": {"internal": [("gone.example.com.", "MX", ("SERVFAIL", False, (6,))),
                                           ("www.example.com.", "A", OK_AD)]},
    "dnssec-unsupported-algorithm": {"internal": [*((q, t, OK) for q, t in MAIL), ("example.com.", "MX", OK_AD)]},
    "dnssec-internal-nonvalidating": {"internal": [*((q, t, OK) for q, t in MAIL)],
                                      "external": [("mail.example.net.", "A", ("SERVFAIL", False, (7,)))]},
    "dnssec-dnskey-tcp-refused": {"internal": [("mail.example.net.", "A", ("SERVFAIL", False, (9,)))]},
    "dnssec-dane-ok": {"internal": [("_25._tcp.mail.example.net.", "TLSA", OK_AD)]},
    "dnssec-dane-stale": {"internal": [("_25._tcp.mail.example.net.", "TLSA", OK_AD)]},
    "dnssec-dane-tlsa-servfail": {"internal": [("_25._tcp.mail.example.net.", "TLSA", ("SERVFAIL", False, ())),
                                               ("mail.example.net.", "A", OK_AD)]},
    "dnssec-dane-insecure": {"internal": [("example.com.", "MX", OK_AD), ("_25._tcp.mail.example.net.", "TLSA", OK),
                                          *((q, t, OK) for q, t in MAIL)]},
}


def test_every_dnssec_scenario_has_resolver_checks() -> None:
    assert sorted(RESOLVERS) == [n for n in scenario_mod.builtin_names() if n.startswith("dnssec-")]


@pytest.mark.parametrize("name", sorted(RESOLVERS))
def test_validating_lab_resolvers(name: str) -> None:
    with lab.running(name) as card:
        assert card.trust_anchor and "IN DS" in Path(card.trust_anchor).read_text(encoding="utf-8")
        for resolver, questions in RESOLVERS[name].items():
            got = [(q, t, _shape(_ask(card.resolver(resolver), q, t))) for q, t, _ in questions]
            assert got == [(q, t, want) for q, t, want in questions], resolver


def _rrset(reply: dns.message.Message, section: str, rdtype: str, covers: str | None = None) -> list[dns.rrset.RRset]:
    found = []
    for rrset in getattr(reply, section):
        if rrset.rdtype != dns.rdatatype.from_text(rdtype):
            continue
        if covers is not None and rrset.covers != dns.rdatatype.from_text(covers):
            continue
        found.append(rrset)
    return found


def test_authoritative_answers_with_do_and_without() -> None:
    with lab.running("dnssec-healthy") as card:
        net = card.server("ns1.example.net")
        signed = _ask(net, "mail.example.net.", "A")
        plain = _ask(net, "mail.example.net.", "A", do=False)
        nodata = _ask(net, "mail.example.net.", "AAAA")
        keys = _ask(net, "example.net.", "DNSKEY")
        referral = _ask(card.server("a.gtld-servers.net"), "mail.example.net.", "A")
    assert signed.ednsflags & dns.flags.DO and _rrset(signed, "answer", "RRSIG", "A")
    assert not _rrset(plain, "answer", "RRSIG") and not plain.ednsflags & dns.flags.DO
    assert _rrset(nodata, "authority", "NSEC") and _rrset(nodata, "authority", "RRSIG", "SOA")
    dnskeys = _rrset(keys, "answer", "DNSKEY")[0]
    assert len(dnskeys) == 2 and _rrset(keys, "answer", "RRSIG", "DNSKEY")
    assert _rrset(referral, "authority", "DS") and _rrset(referral, "authority", "RRSIG", "DS")
    # The answers validate with the pure validator, from the served keys.
    zone = dns.name.from_text("example.net.")
    a = _rrset(signed, "answer", "A")[0]
    sigs = [s for r in _rrset(signed, "answer", "RRSIG") for s in r]
    assert _dnssec.check_rrset(a, sigs, dnskeys, zone, now=__import__("time").time()) == []
    assert _dnssec.check_nodata(a.name, dns.rdatatype.AAAA, nodata.authority, dnskeys, zone,
                                now=__import__("time").time()) == []


@pytest.mark.parametrize("name", ["dnssec-healthy", "dnssec-nsec3"])
def test_nxdomain_proof_covers_the_name_and_the_wildcard(name: str) -> None:
    import time

    with lab.running(name) as card:
        net = card.server("ns1.example.net")
        reply = _ask(net, "no.such.example.net.", "A")
        keys = _rrset(_ask(net, "example.net.", "DNSKEY"), "answer", "DNSKEY")[0]
    assert dns.rcode.to_text(reply.rcode()) == "NXDOMAIN"
    zone = dns.name.from_text("example.net.")
    qname = dns.name.from_text("no.such.example.net.")
    assert _dnssec.check_nxdomain(qname, reply.authority, keys, zone, time.time()) == []
    wildcard = dns.name.from_text("*.example.net.")
    assert _dnssec.check_nxdomain(wildcard, reply.authority, keys, zone, time.time()) == []
    # Without the record that denies the wildcard, the name's own cover proves nothing (RFC 4035 §5.4).
    denial = [r for r in reply.authority if r.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)]
    for dropped in denial:
        rest = [r for r in reply.authority if r.name != dropped.name]
        failures = _dnssec.check_nxdomain(qname, rest, keys, zone, time.time())
        assert failures and failures[0].problem is _dnssec.Problem.DENIAL_MISSING, dropped.name
    assert any("wildcard" in f.detail for d in denial for f in _dnssec.check_nxdomain(
        qname, [r for r in reply.authority if r.name != d.name], keys, zone, time.time()))


def test_referral_to_an_insecure_child_proves_there_is_no_ds() -> None:
    with lab.running("dnssec-healthy") as card:
        # example.org is not declared: the TLD of a signed zone is signed, and an unsigned sibling
        # would be proven insecure by an NSEC at its cut. ns1.example.com lives in com.
        reply = _ask(card.server("a.root-servers.net"), "example.com.", "MX")
    assert _rrset(reply, "authority", "DS")
    assert not _rrset(reply, "authority", "NSEC")


def test_scenario_signing_options_are_checked() -> None:
    base = 'description = "x"\ndomains = ["example.com"]\n'
    base += '[zones."example.com"]\ntext = "@ MX 10 mx1\\nmx1 A 127.0.0.25"\n'
    server = '[[servers]]\nname = "ns1.example.com"\naddress = "127.0.0.11"\nzones = ["example.com"]\n'
    ok = scenario_mod.parse(base + 'dnssec = true\ndenial = "nsec3"\n' + server)
    assert {z.origin for z in ok.zones if z.signing} == {"example.com.", "com.", "."}
    for extra, key in [
        ('dnssec_faults = [{ kind = "expired" }]\n', "dnssec_faults"),
        ('dnssec = true\ndnssec_faults = [{ kind = "melted" }]\n', "kind"),
        ('dnssec = true\nalgorithm = 7\n', "algorithm"),
        ('dnssec = true\ndenial = "nsec5"\n', "denial"),
    ]:
        with pytest.raises(ScenarioError, match=key):
            scenario_mod.parse(base + extra + server)


def test_sign_all_chains_ds_into_parents() -> None:
    import time

    import dns.zone

    zones = {
        ".": dns.zone.from_text(". 3600 IN SOA a. b. 1 1 1 1 1\n. 3600 IN NS a.\n", origin=".", relativize=False),
        "net.": dns.zone.from_text("net. 3600 IN SOA a. b. 1 1 1 1 1\nnet. 3600 IN NS a.\n", origin="net.",
                                   relativize=False),
    }
    anchor = signing.sign_all(zones, {".": signing.ZoneSigning(), "net.": signing.ZoneSigning(8)}, now=time.time())
    ds = zones["."].get_rdataset("net.", "DS")
    assert ds is not None and len(ds) == 1
    keys = zones["net."].get_rdataset("net.", "DNSKEY")
    assert keys is not None and any(dns.dnssec.make_ds("net.", k, "SHA256") == ds[0] for k in keys)
    assert len(anchor) == 1 and trust_anchor.rdata_of(anchor[0]).rdtype == dns.rdatatype.DS


@pytest.mark.parametrize(("name", "matches"), [("dnssec-dane-ok", True), ("dnssec-dane-stale", False)])
def test_tlsa_published_for_the_certificate_the_server_presents(name: str, matches: bool) -> None:
    import base64
    import smtplib
    import ssl

    from mxdoctor.checks import _dane

    with lab.running(name) as card:
        reply = _ask(card.server("ns1.example.net"), "_25._tcp.mail.example.net.", "TLSA")
        mail = card.smtp_servers[0]
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with smtplib.SMTP(mail.addresses[0], mail.port, timeout=5) as client:
            client.starttls(context=context)
            assert isinstance(client.sock, ssl.SSLSocket)
            der = client.sock.getpeercert(binary_form=True)
    (tlsa,) = _rrset(reply, "answer", "TLSA")
    assert _rrset(reply, "answer", "RRSIG", "TLSA")
    record = _dane.Tlsa.from_text(tlsa[0].to_text())
    assert (record.usage, record.selector, record.mtype) == (3, 1, 1)
    assert der is not None
    got = _dane.match([base64.b64encode(der).decode()], [record])
    assert (got.matched is not None) is matches
