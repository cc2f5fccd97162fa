"""The dnssec check family over recorded lab evidence (pure, no network), and its bad input: a
malformed trust anchor, a signature with garbage fields, a DNSKEY of an unknown algorithm."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mxdoctor import analysis, cli, evidence
from mxdoctor.checks import dnssec, resolver
from mxdoctor.dns import anchor
from mxdoctor.errors import ConfigError
from mxdoctor.evidence import Evidence, Exchange

DATA = Path(__file__).parent.parent / "data" / "evidence"


def _load(name: str) -> Evidence:
    return evidence.load(DATA / f"{name}.json")


def _codes(ev: Evidence) -> set[str]:
    return {f.code for f in analysis.analyse(ev).findings}


def _edit(ev: Evidence, fn: object, *, where: str = "answer") -> Evidence:
    """``ev`` with every authoritative exchange's ``where`` section passed through ``fn``."""
    out: list[Exchange] = []
    for x in ev.exchanges:
        if x.view in ("authoritative", evidence.DNSSEC_KEYS_VIEW) and getattr(x, where):
            x = dataclasses.replace(x, **{where: tuple(fn(line) for line in getattr(x, where))})  # type: ignore[operator]
        out.append(x)
    return dataclasses.replace(ev, exchanges=tuple(out))


def test_expired_signature_names_zone_key_record_and_time() -> None:
    d = analysis.analyse(_load("dnssec-expired"))
    (f,) = [f for f in d.findings if f.code == dnssec.DNSSEC_RRSIG_EXPIRED.code]
    assert f.args["zone"] == "example.net." and f.args["qname"] == "mail.example.net." and f.args["qtype"] == "A"
    assert f.args["key_tag"].isdigit()
    assert f.args["when"].endswith("UTC, 3 days ago")
    assert "EDE 7 (Signature Expired)" in f.message  # what the validating resolvers said
    assert "unbound-control insecure_add example.net." in f.remediation.sender
    assert "rndc nta" in f.remediation.sender and "turning validation off" in f.remediation.sender
    assert "re-sign" in f.remediation.receiver
    # The resolvers' SERVFAIL is validation at work, not a resolver fault.
    assert resolver.RESOLVER_FAILS.code not in {x.code for x in d.findings}
    assert {v.mta: v.outcome.value for v in d.verdicts}["postfix"] == "defer"


def test_a_view_that_fails_bogus_data_without_an_ede_validates() -> None:
    # BIND 9.18 answers SERVFAIL for bogus data without an EDE: the view still shows that it validates
    ev = _load("dnssec-expired")
    ev = dataclasses.replace(ev, exchanges=tuple(
        dataclasses.replace(x, ede=()) if x.view == "internal" else x for x in ev.exchanges))
    (f,) = [f for f in analysis.analyse(ev).findings
            if f.code == dnssec.DNSSEC_RESOLVER_VALIDATES.code and f.subject == "internal"]
    assert "mail.example.net. A answered SERVFAIL, and the servers' answer does not validate" in f.message


def test_healthy_signed_zone_gives_no_dnssec_error() -> None:
    d = analysis.analyse(_load("dnssec-healthy"))
    codes = {f.code for f in d.findings}
    assert dnssec.DNSSEC_SECURE.code in codes and dnssec.DNSSEC_RESOLVER_VALIDATES.code in codes
    assert not codes & {s.code for s in dnssec.BOGUS_SPECS}


def test_aaaa_twin_is_a_denial_fault_of_the_mx_hosts_zone() -> None:
    d = analysis.analyse(_load("dnssec-aaaa-nodata-bogus"))
    (f,) = [f for f in d.findings if f.code == dnssec.DNSSEC_DENIAL_MISSING.code and f.args["qtype"] == "AAAA"]
    assert (f.args["zone"], f.args["qname"], f.args["qtype"], f.args["rcode"]) == (
        "example.net.", "mail.example.net.", "AAAA", "NODATA")
    verdicts = {v.mta: v.outcome.value for v in d.verdicts}
    assert verdicts["exchange2010"] == "defer" and verdicts["postfix"] == "deliver"


def test_without_a_trust_anchor_nothing_is_validated() -> None:
    ev = dataclasses.replace(_load("dnssec-expired"), trust_anchor=())
    assert not {c for c in _codes(ev) if c.startswith("DNSSEC_")}


def test_another_trust_anchor_makes_the_root_keys_mismatch() -> None:
    ev = dataclasses.replace(_load("dnssec-healthy"), trust_anchor=anchor.IANA_ROOT)
    d = analysis.analyse(ev)
    (f,) = [f for f in d.findings if f.code == dnssec.DNSSEC_DS_MISMATCH.code]
    assert f.args["zone"] == "." and f.args["key_tag"] in ("20326", "38696")


def _key_servers(ev: Evidence, ns1: object, ns2: object) -> Evidence:
    """``ev`` with example.net's DNSKEY answer of ns1 (127.0.0.13) filtered by ``ns1``, and a second server
    127.0.0.14 that answers the same set filtered by ``ns2`` (predicates over record lines)."""
    lk = next(lk for lk in ev.lookups
              if lk.view == evidence.DNSSEC_KEYS_VIEW and lk.qname == "example.net." and lk.qtype == "DNSKEY")
    x = next(x for x in ev.exchanges if x.id == lk.exchanges[-1])
    other = evidence.Server("127.0.0.14", 53, "ns2.example.net.")
    new_id = max(e.id for e in ev.exchanges) + 1
    x1 = dataclasses.replace(x, answer=tuple(line for line in x.answer if ns1(line)))  # type: ignore[operator]
    x2 = dataclasses.replace(x, id=new_id, server=other,
                             answer=tuple(line for line in x.answer if ns2(line)))  # type: ignore[operator]
    lk2 = dataclasses.replace(lk, server=other, exchanges=(new_id,))
    exchanges = tuple(x1 if e.id == x.id else e for e in ev.exchanges)
    return dataclasses.replace(ev, exchanges=(*exchanges, x2), lookups=(*ev.lookups, lk2))


def _addresses(f: object) -> set[str]:
    return {str(s.server).split()[-1] for s in f.seen if s.server}  # type: ignore[attr-defined]


def test_each_servers_dnskey_set_is_checked_and_every_bad_one_named() -> None:
    ev = _load("dnssec-healthy")

    def unsigned(line: str) -> bool:
        return " RRSIG " not in line

    # ns2 serves the DNSKEY set without its RRSIGs; ns1's validates and keeps the zone secure
    d = analysis.analyse(_key_servers(ev, lambda line: True, unsigned))
    (f,) = [f for f in d.findings if f.code == dnssec.DNSSEC_DNSKEY_NOT_SELF_SIGNED.code]
    assert f.args["zone"] == "example.net." and _addresses(f) == {"127.0.0.14"}
    assert dnssec.DNSSEC_RRSIG_EXPIRED.code not in {x.code for x in d.findings}
    # both serve it: one finding names both
    d = analysis.analyse(_key_servers(ev, unsigned, unsigned))
    (f,) = [f for f in d.findings if f.code == dnssec.DNSSEC_DNSKEY_NOT_SELF_SIGNED.code]
    assert _addresses(f) == {"127.0.0.13", "127.0.0.14"}


def test_signature_with_garbage_fields_is_a_finding() -> None:
    def garble(line: str) -> str:
        return line.replace(" RRSIG A ", " RRSIG A x ") if line.startswith("mail.example.net.") else line

    ev = _edit(_load("dnssec-healthy"), garble)
    d = analysis.analyse(ev)
    unreadable = [f for f in d.findings if f.code == dnssec.DNSSEC_RECORD_UNREADABLE.code]
    assert unreadable and "RRSIG" in unreadable[0].args["detail"]
    assert dnssec.DNSSEC_SECURE.code not in {f.code for f in d.findings}


def test_signature_over_changed_data_does_not_verify() -> None:
    def change(line: str) -> str:
        return line.replace("IN A 127.0.0.25", "IN A 127.0.0.26")

    d = analysis.analyse(_edit(_load("dnssec-healthy"), change))
    (f,) = [f for f in d.findings if f.code == dnssec.DNSSEC_RRSIG_INVALID.code]
    assert f.args["qname"] == "mail.example.net."


def test_dnskey_of_an_unknown_algorithm_is_a_finding_not_a_crash() -> None:
    def unknown(line: str) -> str:
        # every DNSKEY of example.net claims algorithm 200: nothing matches the DS any more
        if line.startswith("example.net.") and " DNSKEY " in line:
            head, rest = line.split(" DNSKEY ", 1)
            flags, proto, _alg, key = rest.split(" ", 3)
            return f"{head} DNSKEY {flags} {proto} 200 {key}"
        return line

    d = analysis.analyse(_edit(_load("dnssec-healthy"), unknown))
    (f,) = [f for f in d.findings if f.code == dnssec.DNSSEC_DS_MISMATCH.code]
    assert f.args["zone"] == "example.net."


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no DS or DNSKEY"),
        ("example.com. IN DS 1 8 2 AA\n", "for the root"),
        (". IN A 127.0.0.1\n", "DS or DNSKEY"),
        (". IN DS 20326 8 2 XYZ\n", "bad DS record"),
        (". IN DNSKEY 257 3 8 !!!\n", "bad DNSKEY record"),
        ("\x00\x01garbage", "line 1"),
    ],
)
def test_malformed_trust_anchor_is_one_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as err:
        anchor.parse(text, "anchor.key")
    assert "\n" not in str(err.value)


def test_trust_anchor_file_round_trips_and_bad_file_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parsed = anchor.parse("; IANA's\n" + "\n".join(anchor.IANA_ROOT))
    assert [anchor.rdata_of(line) for line in parsed] == [anchor.rdata_of(line) for line in anchor.IANA_ROOT]
    bad = tmp_path / "root.key"
    bad.write_text(". IN DS 20326 8 2 nothex\n", encoding="utf-8")
    code = cli.main(["diagnose", "--no-system", "--trust-anchor", str(bad), "example.com"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and "line 1" in err and len(err.splitlines()) == 1
    missing = cli.main(["diagnose", "--no-system", "--trust-anchor", str(tmp_path / "nope"), "example.com"])
    assert missing == 3 and "nope" in capsys.readouterr().err


DANE_KNOBS = {"postfix": ("smtp_tls_security_level=dane",), "exim": ("hosts_require_dane=*",)}


@pytest.mark.parametrize(
    ("name", "code", "postfix_text"),
    [
        ("dnssec-dane-stale", "DANE_TLSA_NO_MATCH", "4.7.5 Server certificate not verified"),
        ("dnssec-dane-tlsa-servfail", "DANE_TLSA_LOOKUP_FAILED", "4.7.5 TLSA lookup error for mail.example.net:25"),
    ],
)
def test_dane_knobs_defer_where_dane_fails(name: str, code: str, postfix_text: str) -> None:
    ev = _load(name)
    plain = {v.mta: v for v in analysis.analyse(ev).verdicts}
    # Exim does DANE by default; the others only with a knob.
    assert {m: v.outcome.value for m, v in plain.items() if v.outcome.value != "deliver"} == {"exim": "defer"}
    assert plain["exim"].because == (code,)
    assert any(a.knob == "hosts_try_dane=" and a.outcome.value == "deliver" for a in plain["exim"].alternatives)
    # Without the knob the verdict names the knob that would defer it.
    assert any(a.knob == "smtp_tls_security_level=dane" and a.outcome.value == "defer"
               for a in plain["postfix"].alternatives)
    dane = {v.mta: v for v in analysis.analyse(ev, knobs=DANE_KNOBS).verdicts}
    assert dane["postfix"].outcome.value == "defer" and dane["postfix"].text == postfix_text
    assert dane["postfix"].because == (code,)
    assert dane["exim"].outcome.value == "defer" and dane["exim"].because == (code,)
    assert dane["sendmail"].outcome.value == "deliver"  # no DANE knob there


def test_dane_match_keeps_delivering_with_the_knobs() -> None:
    ev = _load("dnssec-dane-stale")
    # The same evidence with the TLSA record replaced by the key the server really presents.
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    (probe,) = ev.smtp
    assert probe.tls is not None and len(probe.tls.chain) == 2
    leaf = x509.load_der_x509_certificate(base64.b64decode(probe.tls.chain[0]))
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    good = hashlib.sha256(spki).hexdigest()
    lookups = tuple(
        dataclasses.replace(lk, records=(f"3 1 1 {good}",)) if lk.qtype == "TLSA" and lk.records else lk
        for lk in ev.lookups
    )
    d = analysis.analyse(dataclasses.replace(ev, lookups=lookups), knobs=DANE_KNOBS)
    codes = {f.code for f in d.findings}
    assert "DANE_TLSA_MATCH" in codes and "DANE_TLSA_NO_MATCH" not in codes
    verdicts = {v.mta: v for v in d.verdicts}
    assert verdicts["postfix"].text == "delivers to mail.example.net [127.0.0.25]: Verified TLS connection established"
    assert verdicts["exim"].text.endswith("CV=dane") and verdicts["sendmail"].text.endswith("[127.0.0.25]")


def test_resolution_table_shows_the_ede_and_leaves_out_key_material() -> None:
    from mxdoctor.report import diagnose as report_diagnose

    rows = report_diagnose.resolution_rows(analysis.analyse(_load("dnssec-expired")))
    assert not any(r.question.endswith((" DNSKEY", " DS")) for r in rows)
    failed = [r for r in rows if r.outcome.value == "SERVFAIL"]
    assert failed and all(r.answer.startswith("EDE 7 ") for r in failed)
