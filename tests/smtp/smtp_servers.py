"""Loopback SMTP servers for the probe tests: aiosmtpd sinks, scripted and hostile servers, and
certificates made on the spot (a test CA, a leaf it signs, self-signed, expired and misnamed leaves)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP as AioSMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

MX_NAME = "mx.lab.test"
T = TypeVar("T")


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Certs:
    ca: Path  # the test CA's certificate, to pass as ``cafile``
    good: CertFiles  # mx.lab.test signed by the CA, valid now
    self_signed: CertFiles  # mx.lab.test, self-signed
    expired: CertFiles  # mx.lab.test signed by the CA, expired yesterday
    misnamed: CertFiles  # other.example signed by the CA




def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    directory: Path,
    label: str,
    names: list[str],
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    days: tuple[int, int] = (-1, 30),
    ca: bool = False,
) -> tuple[CertFiles, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """One certificate and key under ``directory``, signed by ``issuer`` or by itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = _name(names[0])
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    files = CertFiles(directory / f"{label}.crt", directory / f"{label}.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files, cert, key


def make_certs(d: Path) -> Certs:
    ca_files, ca_cert, ca_key = make_cert(d, "ca", ["mxdoctor test CA"], days=(-2, 60), ca=True)
    good, _, _ = make_cert(d, "good", [MX_NAME, "*.mx.lab.test"], issuer=(ca_cert, ca_key))
    self_signed, _, _ = make_cert(d, "self", [MX_NAME])
    expired, _, _ = make_cert(d, "expired", [MX_NAME], issuer=(ca_cert, ca_key), days=(-30, -1))
    misnamed, _, _ = make_cert(d, "misnamed", ["other.example"], issuer=(ca_cert, ca_key))
    return Certs(ca_files.cert, good, self_signed, expired, misnamed)


def server_tls(files: CertFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(files.cert), str(files.key))
    return ctx


class Sink:
    """aiosmtpd handler: accepts everything, or answers RCPT with a fixed reply."""

    def __init__(self, rcpt_reply: str | None = None) -> None:
        self.rcpt_reply = rcpt_reply
        self.rcpts: list[str] = []
        self.data_seen = False

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        self.rcpts.append(address)
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.data_seen = True
        return "250 2.0.0 queued"


@asynccontextmanager
async def aiosmtpd_server(
    handler: Sink, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """An aiosmtpd SMTP server in this event loop; yields its port."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: AioSMTP(handler, hostname=MX_NAME, ident="lab sink", tls_context=tls), host, 0
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def scripted_server(script: Script, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """A raw TCP server running ``script`` per connection (hostile or scripted SMTP)."""
    tasks: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.add(writer)
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# --- scripted and hostile servers -------------------------------------------------------------


def greeter(greeting: bytes) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        await writer.drain()
        while line := await reader.readline():
            if line.upper().startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                break
            writer.write(b"503 5.5.1 no\r\n")

    return script


def conversation(greeting: bytes, replies: dict[bytes, bytes], default: bytes = b"250 ok\r\n") -> Script:
    """A server that greets, then answers each command by its verb from ``replies``."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        while line := await reader.readline():
            verb = line.split(b" ")[0].strip().upper()
            writer.write(replies.get(verb, b"221 bye\r\n" if verb == b"QUIT" else default))
            if verb == b"QUIT":
                break

    return script


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for byte in b"220 so very slow ESMTP\r\n" * 100:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"\x00\xff\x1b[31mGARBAGE\x07 \xe2\x80\xae\r\n")
    await writer.drain()
    await asyncio.sleep(30)


async def huge_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    chunk = b"2" * 65536
    for _ in range(160):  # 10 MiB, no newline
        writer.write(chunk)
        await writer.drain()
    await asyncio.sleep(30)


async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def endless_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 hello\r\n")
    await reader.readline()
    for i in range(100000):  # continuation lines without end
        writer.write(b"250-EXTENSION%d\r\n" % i)
        if i % 100 == 0:
            await writer.drain()
    await asyncio.sleep(30)


async def silent_in_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Offers STARTTLS, says 220 to it, then never sends a TLS byte."""
    writer.write(b"220 half ESMTP\r\n")
    while line := await reader.readline():
        if line.upper().startswith(b"EHLO"):
            writer.write(b"250-half\r\n250 STARTTLS\r\n")
        elif line.upper().startswith(b"STARTTLS"):
            writer.write(b"220 go ahead\r\n")
            await writer.drain()
            await asyncio.sleep(30)




def timed(coro: Coroutine[Any, Any, T], budget: float) -> T:
    """Run ``coro`` to the end and assert it took at most ``budget`` seconds of wall time."""
    began = time.monotonic()
    result = asyncio.run(coro)
    took = time.monotonic() - began
    assert took <= budget, f"took {took:.2f} s, budget {budget} s"
    return result
