"""Certificates for the lab's SMTP servers: one lab CA per directory, and server certificates it signs
whose subjectAltNames are the host names, cached in the directory for the run.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "mxdoctor lab CA"
CA_CERT = "lab-ca.pem"
CA_KEY = "lab-ca.key"
VALIDITY = datetime.timedelta(days=30)
# Clocks of lab clients may lag a little; a certificate valid from "now" would fail them.
BACKDATE = datetime.timedelta(hours=1)

_thread_lock = threading.Lock()
_default_dir: Path | None = None


def default_directory() -> Path:
    """A per-process temporary directory, removed when the process exits."""
    global _default_dir
    with _thread_lock:
        if _default_dir is None:
            import atexit

            _default_dir = Path(tempfile.mkdtemp(prefix="mxdoctor-lab-certs-"))
            atexit.register(shutil.rmtree, _default_dir, True)
        return _default_dir


def lab_ca(directory: Path | None = None) -> tuple[Path, Path]:
    """The lab CA of ``directory`` as (certificate path, key path), created on first use.

    Clients that should trust the lab's SMTP servers load the certificate as their CA file.
    """
    directory = directory or default_directory()
    with _locked(directory):
        return _ca_paths(directory)


def make_certificate(hostnames: Sequence[str], directory: Path | None = None) -> tuple[Path, Path]:
    """A server certificate for ``hostnames`` (DNS names or IP addresses), signed by the lab CA of
    ``directory``: returns (certificate chain path, key path). The same names give the same files.

    The chain file holds the server certificate followed by the CA certificate.
    """
    names = _normalise(hostnames)
    directory = directory or default_directory()
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    stem = f"{re.sub(r'[^a-z0-9.-]', '_', names[0])[:60]}-{digest}"
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    with _locked(directory):
        if cert_path.exists() and key_path.exists():
            return cert_path, key_path
        ca_cert_path, ca_key_path = _ca_paths(directory)
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
            serialization.Encoding.PEM
        )
        _write(key_path, _key_bytes(key), private=True)
        _write(cert_path, chain)
        return cert_path, key_path


def _normalise(hostnames: Sequence[str]) -> list[str]:
    names: list[str] = []
    for raw in hostnames:
        name = raw.strip().rstrip(".").lower()
        if name and name not in names:
            names.append(name)
    if not names:
        raise ValueError("a certificate needs at least one host name")
    return names


def _ca_paths(directory: Path) -> tuple[Path, Path]:
    """Create the CA if missing; the caller holds the directory lock."""
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_bytes(key), private=True)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA signs certificates; a server signs its TLS handshakes (ECDSA: no key encipherment)."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write whole or not at all: another process may read the file as soon as it exists."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        if private:
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise creation across threads (several SMTP servers start at once) and processes."""
    import fcntl  # POSIX only, like the whole lab; imported here so the CLI imports on Windows

    directory.mkdir(parents=True, exist_ok=True)
    with _thread_lock, open(directory / ".lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
