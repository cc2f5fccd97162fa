"""DANE for SMTP (RFC 7672, RFC 6698), pure: does a certificate chain the server sent match its TLSA
records? Usages 3 (DANE-EE: the server's own certificate or key) and 2 (DANE-TA: a trust anchor in
the chain); selectors 0 (whole certificate) and 1 (SubjectPublicKeyInfo); matching types 0 (exact),
1 (SHA-256) and 2 (SHA-512). Usages 0 and 1 (PKIX) are unusable for SMTP (RFC 7672 §3.1.3)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

USABLE_USAGES = (2, 3)


@dataclass(frozen=True)
class Tlsa:
    usage: int
    selector: int
    mtype: int
    data: bytes

    @classmethod
    def from_text(cls, text: str) -> Tlsa:
        """``3 1 1 <hex>`` (the rdata of a TLSA record); raises ValueError for anything else."""
        words = text.split()
        if len(words) < 4 or not all(w.isdigit() for w in words[:3]):
            raise ValueError(f"not TLSA rdata: {text[:80]!r}")
        try:
            data = binascii.unhexlify("".join(words[3:]))
        except (binascii.Error, ValueError):
            raise ValueError(f"TLSA data is not hex: {text[:80]!r}") from None
        return cls(int(words[0]), int(words[1]), int(words[2]), data)

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex()[:16]}..."


@dataclass(frozen=True)
class Match:
    matched: Tlsa | None  # the record that matched, None: none did
    usable: tuple[Tlsa, ...]  # the records a DANE client may use (usages 2 and 3, known selector/type)
    detail: str


def association(der: bytes, selector: int, mtype: int) -> bytes | None:
    """The certificate association data of a DER certificate, or None for an unknown selector/type."""
    if selector == 0:
        blob = der
    elif selector == 1:
        cert = x509.load_der_x509_certificate(der)
        blob = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    else:
        return None
    if mtype == 0:
        return blob
    if mtype == 1:
        return hashlib.sha256(blob).digest()
    if mtype == 2:
        return hashlib.sha512(blob).digest()
    return None


def match(chain_b64: Sequence[str], records: Sequence[Tlsa]) -> Match:
    """Whether the chain (base64 DER, leaf first) matches one usable TLSA record (RFC 7672 §3.1)."""
    usable = tuple(r for r in records if r.usage in USABLE_USAGES and r.selector in (0, 1) and r.mtype in (0, 1, 2))
    if not usable:
        return Match(None, (), "no usable TLSA record (usages 2 or 3, selector 0/1, matching type 0/1/2): "
                               "a DANE client treats the server as having no TLSA at all")
    try:
        chain = [base64.b64decode(c, validate=True) for c in chain_b64]
        for der in chain:
            x509.load_der_x509_certificate(der)
    except (ValueError, binascii.Error) as exc:
        return Match(None, usable, f"the recorded certificate chain does not parse: {exc}")
    if not chain:
        return Match(None, usable, "the server presented no certificate")
    for record in usable:
        # DANE-EE matches the server's own certificate; DANE-TA a certificate above it in the chain.
        candidates = chain[:1] if record.usage == 3 else chain[1:]
        for der in candidates:
            if association(der, record.selector, record.mtype) == record.data:
                return Match(record, usable, f"TLSA {record} matches the "
                                             + ("server certificate" if record.usage == 3 else "chain"))
    leaf = association(chain[0], 1, 1)
    seen = leaf.hex() if leaf is not None else "?"
    return Match(None, usable, f"none of {len(usable)} TLSA record(s) matches the {len(chain)} certificate(s) "
                               f"sent (the server key's SHA-256 is {seen})")
