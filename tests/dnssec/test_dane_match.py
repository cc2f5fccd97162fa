"""The DANE matcher against real certificates of the lab CA: every usage, selector and matching type."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mxdoctor.checks import _dane
from mxdoctor.lab import certs


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    directory = tmp_path_factory.mktemp("ca")
    pem, _key = certs.make_certificate(["mail.example.net"], directory)
    return [c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(Path(pem).read_bytes())]


def _b64(chain: list[bytes]) -> list[str]:
    return [base64.b64encode(c).decode() for c in chain]


def _spki(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("usage", [3, 2])
@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("mtype", [0, 1, 2])
def test_each_combination_matches_its_certificate(chain: list[bytes], usage: int, selector: int, mtype: int) -> None:
    der = chain[0] if usage == 3 else chain[1]
    blob = der if selector == 0 else _spki(der)
    data = blob if mtype == 0 else (hashlib.sha256 if mtype == 1 else hashlib.sha512)(blob).digest()
    record = _dane.Tlsa.from_text(f"{usage} {selector} {mtype} {data.hex()}")
    got = _dane.match(_b64(chain), [record])
    assert got.matched == record
    # The other end of the chain does not match the same record (EE is the leaf only, TA never the leaf).
    other = chain[1] if usage == 3 else chain[0]
    wrong = _dane.Tlsa(usage, selector, mtype, _dane.association(other, selector, mtype) or b"")
    assert _dane.match(_b64(chain), [wrong]).matched is None


def test_stale_record_after_a_certificate_change(chain: list[bytes]) -> None:
    stale = _dane.Tlsa(3, 1, 1, hashlib.sha256(b"the key before the change").digest())
    got = _dane.match(_b64(chain), [stale])
    assert got.matched is None and "none of 1 TLSA" in got.detail
    assert hashlib.sha256(_spki(chain[0])).hexdigest() in got.detail


def test_pkix_usages_and_unknown_types_are_unusable(chain: list[bytes]) -> None:
    data = hashlib.sha256(_spki(chain[0])).digest()
    got = _dane.match(_b64(chain), [_dane.Tlsa(1, 1, 1, data), _dane.Tlsa(3, 7, 1, data), _dane.Tlsa(3, 1, 9, data)])
    assert got.matched is None and got.usable == () and "no usable TLSA" in got.detail


@pytest.mark.parametrize("text", ["", "3 1 1", "3 1 x abcd", "3 1 1 zz"])
def test_bad_tlsa_text_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        _dane.Tlsa.from_text(text)


def test_garbage_chain_is_a_detail_not_a_crash() -> None:
    got = _dane.match(["not base64!!", base64.b64encode(b"not a certificate").decode()], [_dane.Tlsa(3, 1, 1, b"x")])
    assert got.matched is None and "does not parse" in got.detail
