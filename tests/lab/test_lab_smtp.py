"""The lab SMTP servers, spoken to by real SMTP clients (smtplib, aiosmtplib) over loopback."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import aiosmtplib
import pytest
from cryptography import x509

import mxdoctor.lab
from _helpers import free_port, has_ipv6
from mxdoctor.lab import certs
from mxdoctor.lab.smtp import LabSmtpServer, SmtpConfig

ADDRESS = "127.0.78.25"
HOST = "mx.example.test"

Serve = Callable[..., LabSmtpServer]  # (config, address=ADDRESS, port=None) -> a started server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start lab SMTP servers on demand; every one is stopped after the test."""
    started: list[LabSmtpServer] = []

    def start(config: SmtpConfig, address: str = ADDRESS, port: int | None = None) -> LabSmtpServer:
        server = LabSmtpServer(config, address, port or free_port(address), tmp_path / "certs")
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class Session:
    """A line-level SMTP client on a plain socket, so the test sees every reply as sent."""

    def __init__(self, address: str, port: int) -> None:
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection((address, port), timeout=5)
        self.buffer = b""

    def reply(self) -> tuple[int, list[str]]:
        lines: list[str] = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise EOFError(f"connection closed after {lines!r}")
                self.buffer += chunk
            line, _, self.buffer = self.buffer.partition(b"\r\n")
            text = line.decode()
            lines.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), lines

    def command(self, line: str) -> tuple[int, list[str]]:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        assert self.command("STARTTLS")[0] == 220
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def test_ehlo_lists_the_configured_extensions(serve: Serve) -> None:
    server = serve(SmtpConfig(HOST))
    session = Session(ADDRESS, server.port)
    try:
        code, greeting = session.reply()
        assert code == 220 and greeting == [f"{HOST} ESMTP mxdoctor lab"]
        code, lines = session.command("EHLO client.test")
        assert code == 250
        assert lines == [HOST, "PIPELINING", "8BITMIME", "SIZE 10240000", "STARTTLS"]
    finally:
        session.close()


def test_custom_extensions_without_starttls(serve: Serve) -> None:
    server = serve(
        SmtpConfig(HOST, extensions=("SMTPUTF8", "CHUNKING"), starttls=False, greeting_text="hi there")
    )
    session = Session(ADDRESS, server.port)
    try:
        assert session.reply() == (220, ["hi there"])
        assert session.command("EHLO client.test") == (250, [HOST, "SMTPUTF8", "CHUNKING"])
        assert session.command("STARTTLS")[0] in (454, 502)  # "TLS not available", as aiosmtpd says
    finally:
        session.close()


def test_starttls_presents_a_lab_certificate_for_the_host_name(serve: Serve, tmp_path: Path) -> None:
    server = serve(SmtpConfig(HOST))
    ca_file, _ = certs.lab_ca(tmp_path / "certs")
    context = ssl.create_default_context(cafile=str(ca_file))
    session = Session(ADDRESS, server.port)
    try:
        session.reply()
        session.command("EHLO client.test")
        # Full verification: the chain up to the lab CA, and the host name against the SANs.
        session.starttls(context, server_hostname=HOST)
        assert isinstance(session.sock, ssl.SSLSocket)
        peer = session.sock.getpeercert()
        assert peer is not None and peer["subjectAltName"] == (("DNS", HOST),)
        code, lines = session.command("EHLO client.test")
        assert code == 250 and "STARTTLS" not in lines
        assert session.command("MAIL FROM:<a@client.test>")[0] == 250
    finally:
        session.close()
    assert server.certificate is not None
    der = x509.load_pem_x509_certificate(server.certificate.read_bytes())
    sans = der.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [HOST]


def test_starttls_fails_verification_for_another_name(serve: Serve, tmp_path: Path) -> None:
    server = serve(SmtpConfig(HOST))
    context = ssl.create_default_context(cafile=str(certs.lab_ca(tmp_path / "certs")[0]))
    session = Session(ADDRESS, server.port)
    try:
        session.reply()
        session.command("EHLO client.test")
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            session.starttls(context, server_hostname="other.example.test")
    finally:
        session.close()


def test_aiosmtplib_sends_a_message_over_starttls_and_it_is_recorded(serve: Serve, tmp_path: Path) -> None:
    server = serve(SmtpConfig(HOST, rcpt_reject=(("*@gone.test", 550, "5.1.1 No such user"),)))
    context = ssl.create_default_context(cafile=str(certs.lab_ca(tmp_path / "certs")[0]))
    body = b"Subject: lab\r\n\r\nhello from the lab\r\n"

    async def send() -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
        client = aiosmtplib.SMTP(hostname=ADDRESS, port=server.port, timeout=5, start_tls=False)
        await client.connect()
        try:
            await client.ehlo()
            await client.starttls(tls_context=context, server_hostname=HOST)
            return await client.sendmail("sender@client.test", ["a@example.test", "b@gone.test"], body)
        finally:
            await client.quit()

    errors, _ = asyncio.run(send())
    assert errors["b@gone.test"].code == 550
    assert len(server.messages) == 1
    message = server.messages[0]
    assert message.mail_from == "sender@client.test"
    assert message.rcpt_tos == ("a@example.test",)
    assert message.data.replace(b"\r\n", b"\n").endswith(b"hello from the lab\n")
    assert message.server == HOST and message.peer.startswith("127.")


@pytest.mark.parametrize(
    ("address", "code", "expected"),
    [
        ("user@temp.test", 450, "4.2.1 Mailbox busy"),
        ("USER@Gone.Test", 550, "5.1.1 No such user"),
        ("postmaster@ok.test", 250, "2.1.5 OK"),
    ],
)
def test_rcpt_is_accepted_or_rejected_by_pattern(
    serve: Serve, address: str, code: int, expected: str
) -> None:
    rejects = (("*@temp.test", 450, "4.2.1 Mailbox busy"), ("*@gone.test", 550, "5.1.1 No such user"))
    server = serve(SmtpConfig(HOST, rcpt_reject=rejects))
    session = Session(ADDRESS, server.port)
    try:
        session.reply()
        session.command("EHLO client.test")
        assert session.command("MAIL FROM:<a@client.test>")[0] == 250
        assert session.command(f"RCPT TO:<{address}>") == (code, [expected])
    finally:
        session.close()


@pytest.mark.parametrize("code", [450, 554])
def test_a_refusing_greeting_answers_every_command_with_its_code(serve: Serve, code: int) -> None:
    server = serve(SmtpConfig(HOST, greeting_code=code))
    session = Session(ADDRESS, server.port)
    try:
        greeting_code, greeting = session.reply()
        assert greeting_code == code and greeting[0].startswith(HOST)
        assert session.command("EHLO client.test")[0] == code
        assert session.command("MAIL FROM:<a@client.test>")[0] == code
        assert session.command("QUIT")[0] == 221
        assert session.closed()
    finally:
        session.close()


def test_a_421_greeting_closes_the_connection(serve: Serve) -> None:
    text = f"{HOST} Service not available, too many connections"
    server = serve(SmtpConfig(HOST, greeting_code=421, greeting_text=text))
    session = Session(ADDRESS, server.port)
    try:
        assert session.reply() == (421, [text])
        assert session.closed()
    finally:
        session.close()


def test_stop_closes_connections_and_frees_the_port(serve: Serve, tmp_path: Path) -> None:
    port = free_port(ADDRESS)
    server = LabSmtpServer(SmtpConfig(HOST), ADDRESS, port, tmp_path)
    server.start()
    session = Session(ADDRESS, port)
    try:
        session.reply()
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        assert session.closed()
    finally:
        session.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((ADDRESS, port), timeout=2).close()
    again = serve(SmtpConfig(HOST), port=port)
    fresh = Session(ADDRESS, again.port)
    try:
        assert fresh.reply()[0] == 220
    finally:
        fresh.close()


def test_a_taken_port_raises_at_once(serve: Serve) -> None:
    first = serve(SmtpConfig(HOST))
    started = time.monotonic()
    with pytest.raises(OSError) as caught:
        serve(SmtpConfig("other.example.test"), port=first.port)
    assert caught.value.errno == errno.EADDRINUSE
    assert time.monotonic() - started < 1


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback here")
def test_ipv6_loopback(serve: Serve) -> None:
    server = serve(SmtpConfig(HOST), address="::1", port=free_port("::1"))
    with socket.create_connection(("::1", server.port), timeout=5) as sock:
        assert sock.recv(200).startswith(b"220 ")


def test_certificates_are_cached_per_set_of_names(tmp_path: Path) -> None:
    first = certs.make_certificate(["mx1.example.test", "MX1.example.test."], tmp_path)
    again = certs.make_certificate(["mx1.example.test"], tmp_path)
    other = certs.make_certificate(["mx2.example.test", "127.0.0.25"], tmp_path)
    assert first == again
    assert other != first
    cert = x509.load_pem_x509_certificate(other[0].read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["mx2.example.test"]
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.25"]
    ca = x509.load_pem_x509_certificate(certs.lab_ca(tmp_path)[0].read_bytes())
    cert.verify_directly_issued_by(ca)
    with pytest.raises(ValueError):
        certs.make_certificate([" ", "."], tmp_path)


def test_the_smtp_tempfail_scenario_greets_with_421() -> None:
    with mxdoctor.lab.running("smtp-tempfail") as card:
        (mail,) = card.smtp_servers
        session = Session(mail.addresses[0], mail.port)
        try:
            code, text = session.reply()
        finally:
            session.close()
    assert code == 421 and "try again later" in text[0]


def test_a_client_dropping_the_tls_handshake_is_not_an_error(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(SmtpConfig(HOST))
    session = Session(ADDRESS, server.port)
    try:
        session.reply()
        session.command("EHLO client.test")
        # The system trust store knows nothing of the lab CA: the client aborts, as a strict probe does.
        with pytest.raises(ssl.SSLCertVerificationError):
            session.starttls(ssl.create_default_context(), server_hostname=HOST)
    finally:
        session.close()
    time.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    again = Session(ADDRESS, server.port)
    try:
        assert again.reply()[0] == 220
    finally:
        again.close()
