"""The e-mail notifier against real aiosmtpd relays on loopback: credentials go only over TLS (STARTTLS
or implicit TLS, the certificate checked against the lab CA), never in clear text unless allowed."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from mxdoctor.lab import certs
from mxdoctor.monitor import notify

PAYLOAD = {"id": "a.example#e.1:alert", "event": "alert", "domain": "a.example", "messages": 1, "oldest_age": "2h"}


@dataclass
class Relay:
    port: int
    ca_file: str
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, over TLS)
    messages: list[bytes] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def relay(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Relay]:
    """A relay offering AUTH; ``starttls``, ``implicit`` or ``plain`` by the test's parameter."""
    mode = request.param
    cert, key = certs.make_certificate(["127.0.0.1"], tmp_path)
    ca, _ = certs.lab_ca(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    box = Relay(free_port(), str(ca))

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        box.logins.append((auth_data.login.decode(), server.transport.get_extra_info("ssl_object") is not None))
        return AuthResult(success=auth_data.password == b"secret")

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            box.messages.append(envelope.content)
            return "250 OK"

    # Implicit TLS is the server socket's, which aiosmtpd's AUTH-over-TLS rule does not see: the login
    # records whether the session was encrypted instead.
    kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_require_tls": mode == "starttls"}
    if mode == "starttls":
        kwargs["tls_context"] = context
    elif mode == "implicit":
        kwargs["ssl_context"] = context
    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port, **kwargs)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def mailer(relay: Relay, **kwargs: Any) -> notify.EmailNotifier:
    return notify.EmailNotifier("127.0.0.1", relay.port, "watch@example.org", ("ops@example.org",),
                                username="watch", password="secret", timeout=10, **kwargs)


@pytest.mark.parametrize("relay", ["starttls"], indirect=True)
def test_credentials_go_over_starttls(relay: Relay) -> None:
    mailer(relay, ca_file=relay.ca_file).send(PAYLOAD)
    assert relay.logins == [("watch", True)] and len(relay.messages) == 1


@pytest.mark.parametrize("relay", ["implicit"], indirect=True)
def test_credentials_go_over_implicit_tls(relay: Relay) -> None:
    mailer(relay, tls="implicit", ca_file=relay.ca_file).send(PAYLOAD)
    assert relay.logins == [("watch", True)] and len(relay.messages) == 1


@pytest.mark.parametrize("relay", ["starttls"], indirect=True)
def test_a_certificate_not_trusted_stops_the_send_before_credentials(relay: Relay) -> None:
    with pytest.raises(notify.NotifyError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        mailer(relay).send(PAYLOAD)  # system CAs only: the lab CA is not among them
    assert relay.logins == [] and relay.messages == []


@pytest.mark.parametrize("relay", ["plain"], indirect=True)
def test_no_tls_no_credentials_by_default(relay: Relay) -> None:
    with pytest.raises(notify.NotifyError, match="offers no TLS.*allow_plaintext"):
        mailer(relay, ca_file=relay.ca_file).send(PAYLOAD)
    assert relay.logins == [] and relay.messages == []


@pytest.mark.parametrize("relay", ["plain"], indirect=True)
def test_plain_text_credentials_when_explicitly_allowed(relay: Relay) -> None:
    mailer(relay, allow_plaintext=True).send(PAYLOAD)
    assert relay.logins == [("watch", False)] and len(relay.messages) == 1


@pytest.mark.parametrize("relay", ["plain"], indirect=True)
def test_require_tls_refuses_even_without_credentials(relay: Relay) -> None:
    plain = notify.EmailNotifier("127.0.0.1", relay.port, "watch@example.org", ("ops@example.org",),
                                 require_tls=True, timeout=10)
    with pytest.raises(notify.NotifyError, match="sends mail only over TLS"):
        plain.send(PAYLOAD)
    assert relay.messages == []
    notify.EmailNotifier("127.0.0.1", relay.port, "watch@example.org", ("ops@example.org",), timeout=10).send(PAYLOAD)
    assert len(relay.messages) == 1  # no credentials, nothing required: a local relay without TLS still works


@pytest.mark.parametrize("relay", ["plain"], indirect=True)
def test_a_hostile_domain_cannot_break_the_headers(relay: Relay) -> None:
    hostile = {**PAYLOAD, "id": "x\r\nBcc: evil@example.net#e.1:alert", "domain": "x\r\nBcc: evil@example.net"}
    notify.EmailNotifier("127.0.0.1", relay.port, "watch@example.org", ("ops@example.org",), timeout=10).send(hostile)
    (raw,) = relay.messages
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in head and b"x\\r\\nBcc: evil@example.net" in head
