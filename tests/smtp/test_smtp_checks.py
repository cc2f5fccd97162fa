"""SMTP findings from real probes: each server kind on loopback, probed, then analysed; the table says
which codes must and must not come out (codes compared with the catalogue's constants)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from smtp_servers import (
    MX_NAME,
    Certs,
    Script,
    Sink,
    aiosmtpd_server,
    conversation,
    greeter,
    scripted_server,
    server_tls,
    silent,
    timed,
)

from _helpers import free_port
from mxdoctor import evidence
from mxdoctor.checks import _registry as registry
from mxdoctor.checks import smtp as codes
from mxdoctor.checks._context import Context
from mxdoctor.checks._registry import FindingSpec
from mxdoctor.diagnosis import Finding
from mxdoctor.smtp import probe

FAST = probe.Timeouts(connect=1.0, greeting=1.0, command=1.0, total=6.0)
Server = Callable[[Certs], AbstractAsyncContextManager[int]]


def sink(reply: str | None = None, cert: str | None = None) -> Server:
    def make(certs: Certs) -> AbstractAsyncContextManager[int]:
        tls = server_tls(getattr(certs, cert)) if cert else None
        return aiosmtpd_server(Sink(rcpt_reply=reply), "127.0.0.1", tls=tls)

    return make


def scripted(script: Script) -> Server:
    def make(certs: Certs) -> AbstractAsyncContextManager[int]:
        return scripted_server(script)

    return make


def nothing(certs: Certs) -> AbstractAsyncContextManager[int]:
    class _Closed:
        async def __aenter__(self) -> int:
            return free_port()

        async def __aexit__(self, *exc: object) -> None:
            return None

    return _Closed()


_STARTTLS_BROKEN = conversation(
    b"220 tls-broken ESMTP\r\n",
    {b"EHLO": b"250-tls-broken\r\n250 STARTTLS\r\n", b"STARTTLS": b"454 4.7.0 TLS not available\r\n"},
)
_HELLO_REFUSED = conversation(
    b"220 picky\r\n", {b"EHLO": b"550 5.7.1 bad hello\r\n", b"HELO": b"550 5.7.1 bad hello\r\n"}
)
_MAIL_REFUSED = conversation(
    b"220 strict\r\n", {b"EHLO": b"250 strict\r\n", b"MAIL": b"553 5.1.8 sender domain does not exist\r\n"}
)

CASES = [
    pytest.param(sink(), [codes.SMTP_OK], [codes.SMTP_UNREACHABLE], id="healthy"),
    pytest.param(nothing, [codes.SMTP_UNREACHABLE], [codes.SMTP_OK], id="refused"),
    pytest.param(scripted(silent), [codes.SMTP_UNREACHABLE], [codes.SMTP_OK], id="never-greets"),
    pytest.param(
        scripted(greeter(b"421 4.3.2 busy\r\n")),
        [codes.SMTP_GREETING_TEMPFAIL],
        [codes.SMTP_OK],
        id="greeting-421",
    ),
    pytest.param(
        scripted(greeter(b"554 5.7.1 go away\r\n")),
        [codes.SMTP_GREETING_REJECT],
        [codes.SMTP_OK],
        id="greeting-554",
    ),
    pytest.param(scripted(_HELLO_REFUSED), [codes.SMTP_EHLO_FAILED], [codes.SMTP_OK], id="hello-refused"),
    pytest.param(scripted(_STARTTLS_BROKEN), [codes.STARTTLS_FAILED], [codes.SMTP_OK], id="starttls-454"),
    pytest.param(scripted(_MAIL_REFUSED), [codes.MAIL_FROM_REFUSED], [codes.RCPT_REJECTED], id="mail-553"),
    pytest.param(
        sink("550 5.1.1 no such user"),
        [codes.RCPT_REJECTED],
        [codes.RCPT_TEMPFAIL, codes.SMTP_OK],
        id="rcpt-550",
    ),
    pytest.param(sink("450 4.2.0 greylisted"), [codes.RCPT_TEMPFAIL], [codes.RCPT_REJECTED], id="rcpt-450"),
    pytest.param(
        sink(cert="good"),
        [codes.SMTP_OK],
        [codes.TLS_CERT_MISMATCH, codes.TLS_CERT_EXPIRED, codes.TLS_CERT_UNVERIFIED],
        id="tls-good",
    ),
    pytest.param(
        sink(cert="misnamed"),
        [codes.SMTP_OK, codes.TLS_CERT_MISMATCH],
        [codes.TLS_CERT_EXPIRED],
        id="tls-misnamed",
    ),
    pytest.param(sink(cert="expired"), [codes.TLS_CERT_EXPIRED], [codes.TLS_CERT_MISMATCH], id="tls-expired"),
    pytest.param(
        sink(cert="self_signed"),
        [codes.TLS_CERT_UNVERIFIED, codes.SMTP_OK],
        [codes.TLS_CERT_EXPIRED],
        id="tls-self-signed",
    ),
]


def findings_of(p: evidence.SmtpProbe) -> list[Finding]:
    ev = evidence.Evidence(target="lab.test", domain="lab.test", command="smtp", smtp=(p,))
    return registry.run(Context.build(ev), families=["smtp"])


@pytest.mark.parametrize(("server", "must", "must_not"), CASES)
def test_each_server_kind_gives_its_finding(
    server: Server, must: list[FindingSpec], must_not: list[FindingSpec], certs: Certs
) -> None:
    async def go() -> evidence.SmtpProbe:
        async with server(certs) as port:
            return await probe.probe_address(
                MX_NAME,
                "127.0.0.1",
                port,
                helo_name="probe.lab.test",
                rcpt="u@lab.test",
                timeouts=FAST,
                cafile=str(certs.ca),
            )

    found = findings_of(timed(go(), 5))
    got = {f.code for f in found}
    assert {s.code for s in must} <= got, found
    assert not {s.code for s in must_not} & got, found
    for f in found:
        assert f.subject.startswith(f"{MX_NAME} 127.0.0.1:")
        assert f.seen and f.seen[0].view == "smtp"


def test_a_refusal_carries_the_servers_own_words(certs: Certs) -> None:
    async def go() -> evidence.SmtpProbe:
        async with aiosmtpd_server(
            Sink("550 5.1.1 <u@lab.test>: Recipient address rejected"), "127.0.0.1"
        ) as port:
            return await probe.probe_address(
                MX_NAME, "127.0.0.1", port, helo_name="p.lab.test", rcpt="u@lab.test", timeouts=FAST
            )

    (f,) = [f for f in findings_of(timed(go(), 5)) if f.code == codes.RCPT_REJECTED.code]
    assert "550" in f.message and "Recipient address rejected" in f.message and "127.0.0.1" in f.message
    assert f.seen[0].detail == "rcpt"
    assert f.remediation.receiver and f.remediation.sender
