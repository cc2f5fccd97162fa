"""The probe against the lab's own SMTP servers (mxdoctor.lab.smtp) over 127.0.0.x and ::1: healthy with
a certificate the lab CA signs, greetings that refuse, recipients rejected or deferred by pattern."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from smtp_servers import timed

from _helpers import has_ipv6, stage
from mxdoctor import evidence
from mxdoctor.lab import certs as lab_certs
from mxdoctor.lab.smtp import LabSmtpServer, SmtpConfig
from mxdoctor.smtp import probe

FAST = probe.Timeouts(connect=1.0, greeting=2.0, command=2.0, total=10.0)
HOST = "mx.lab.test"


ADDRESSES = [
    pytest.param("127.0.0.1", id="127.0.0.1"),
    pytest.param("127.0.0.53", id="127.0.0.53"),
    pytest.param("::1", id="ipv6", marks=pytest.mark.skipif(not has_ipv6(), reason="no ::1 here")),
]


class Running:
    def __init__(self, server: LabSmtpServer, ca: Path) -> None:
        self.server = server
        self.ca = ca

    def probe(self, rcpt: str | None = None) -> evidence.SmtpProbe:
        return timed(
            probe.probe_address(
                HOST, self.server.address, self.server.port, helo_name="probe.lab.test", rcpt=rcpt,
                timeouts=FAST, cafile=str(self.ca),
            ),
            6,
        )


@pytest.fixture
def lab_smtp(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    """A lab SMTP server: the parameter is (address, SmtpConfig)."""
    address, config = request.param
    server = LabSmtpServer(config, address, 0, cert_dir=tmp_path)
    server.start()
    try:
        yield Running(server, lab_certs.lab_ca(tmp_path)[0])
    finally:
        server.stop()


def _params(config: SmtpConfig) -> list[object]:
    return [pytest.param((a.values[0], config), id=a.id, marks=a.marks) for a in ADDRESSES]


@pytest.mark.parametrize("lab_smtp", _params(SmtpConfig(HOST)), indirect=True)
def test_lab_server_healthy_with_a_trusted_certificate(lab_smtp: Running) -> None:
    p = lab_smtp.probe(rcpt="someone@lab.test")
    assert [s.stage for s in p.stages] == [
        "connect", "greeting", "ehlo", "starttls", "ehlo-tls", "mail", "rcpt", "rset", "quit"
    ]
    assert all(s.ok for s in p.stages), p.stages
    assert stage(p, "greeting").text == f"{HOST} ESMTP mxdoctor lab"
    assert "SIZE 10240000" in p.extensions
    assert p.tls is not None and p.tls.verify_error is None and p.tls.matches_host is True
    assert p.tls.issuer and "lab" in p.tls.issuer
    assert lab_smtp.server.messages == []  # no DATA, so nothing received


@pytest.mark.parametrize(
    ("lab_smtp", "code"),
    [
        pytest.param(("127.0.0.2", SmtpConfig(HOST, greeting_code=421)), 421, id="421"),
        pytest.param(("127.0.0.3", SmtpConfig(HOST, greeting_code=450, greeting_text="busy")), 450, id="450"),
        pytest.param(("127.0.0.4", SmtpConfig(HOST, greeting_code=554)), 554, id="554"),
    ],
    indirect=["lab_smtp"],
)
def test_lab_server_refusing_greeting(lab_smtp: Running, code: int) -> None:
    p = lab_smtp.probe()
    g = stage(p, "greeting")
    assert not g.ok and g.code == code and g.text
    assert [s.stage for s in p.stages][:2] == ["connect", "greeting"]


_REJECTING = SmtpConfig(
    HOST,
    starttls=False,
    rcpt_reject=(("gone@*", 550, "5.1.1 <gone@lab.test>: mailbox unavailable"),
                 ("grey@*", 450, "4.2.0 greylisted, come back later")),
)


@pytest.mark.parametrize("lab_smtp", _params(_REJECTING), indirect=True)
def test_lab_server_rejects_and_defers_recipients(lab_smtp: Running) -> None:
    gone = stage(lab_smtp.probe(rcpt="gone@lab.test"), "rcpt")
    assert not gone.ok and gone.code == 550 and "mailbox unavailable" in (gone.text or "")
    grey = stage(lab_smtp.probe(rcpt="grey@lab.test"), "rcpt")
    assert not grey.ok and grey.code == 450 and "greylisted" in (grey.text or "")
    fine = lab_smtp.probe(rcpt="fine@lab.test")
    assert stage(fine, "rcpt").ok and fine.tls is None and "starttls" not in [s.stage for s in fine.stages]
