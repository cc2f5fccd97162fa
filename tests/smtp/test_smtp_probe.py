"""The staged SMTP probe against real servers on loopback: aiosmtpd sinks, scripted replies and
hostile servers, over 127.0.0.x and ::1, each within a bounded wall time."""

from __future__ import annotations

import asyncio
import socket

import pytest
from smtp_servers import (
    MX_NAME,
    Certs,
    Script,
    Sink,
    aiosmtpd_server,
    close_at_once,
    drip,
    endless_reply,
    garbage,
    greeter,
    huge_line,
    scripted_server,
    server_tls,
    silent,
    silent_in_tls,
    timed,
)

from _helpers import free_port, has_ipv6, stage
from mxdoctor import evidence
from mxdoctor.errors import InvalidTarget
from mxdoctor.smtp import probe

FAST = probe.Timeouts(connect=1.0, greeting=1.0, command=1.0, total=6.0)
# Hostile servers are given short budgets: the test is that the budget, not the server, ends the stage.
SHORT = probe.Timeouts(connect=0.5, greeting=0.5, command=0.5, total=3.0)
HELO = "probe.lab.test"


HOSTS = [
    pytest.param("127.0.0.1", id="127.0.0.1"),
    pytest.param("127.0.0.7", id="127.0.0.7"),
    pytest.param("::1", id="ipv6", marks=pytest.mark.skipif(not has_ipv6(), reason="no ::1 here")),
]


def names(p: evidence.SmtpProbe) -> list[str]:
    return [s.stage for s in p.stages]


# --- healthy servers -------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_healthy_sink_every_stage_passes_and_data_is_never_sent(host: str) -> None:
    sink = Sink()

    async def go() -> evidence.SmtpProbe:
        async with aiosmtpd_server(sink, host) as port:
            return await probe.probe_address(
                MX_NAME, host, port, helo_name=HELO, rcpt="user@lab.test", timeouts=FAST
            )

    p = timed(go(), 5)
    assert names(p) == ["connect", "greeting", "ehlo", "mail", "rcpt", "rset", "quit"]
    assert all(s.ok for s in p.stages), p.stages
    assert stage(p, "greeting").code == 220 and MX_NAME in (stage(p, "greeting").text or "")
    assert stage(p, "rcpt").code == 250
    assert stage(p, "quit").code == 221
    assert p.family == (6 if ":" in host else 4) and p.address == host and p.port > 0
    assert any(e.startswith("SIZE") for e in p.extensions)
    assert p.tls is None  # no STARTTLS offered
    assert sink.rcpts == ["user@lab.test"] and not sink.data_seen


def test_without_rcpt_there_is_no_mail_transaction() -> None:
    async def go() -> evidence.SmtpProbe:
        async with aiosmtpd_server(Sink(), "127.0.0.2") as port:
            return await probe.probe_address("127.0.0.2", "127.0.0.2", port, helo_name=HELO, timeouts=FAST)

    p = timed(go(), 5)
    assert names(p) == ["connect", "greeting", "ehlo", "quit"]
    assert all(s.ok for s in p.stages)


def test_mail_from_defaults_to_postmaster_of_the_helo_name() -> None:
    seen: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 scripted ESMTP\r\n")
        while line := await reader.readline():
            seen.append(line)
            verb = line[:4].upper()
            reply = {b"EHLO": b"250-scripted\r\n250 8BITMIME\r\n", b"QUIT": b"221 bye\r\n"}.get(
                verb, b"250 ok\r\n"
            )
            writer.write(reply)
            if verb == b"QUIT":
                break

    async def go() -> evidence.SmtpProbe:
        async with scripted_server(script) as port:
            return await probe.probe_address(
                "127.0.0.1", "127.0.0.1", port, helo_name=HELO, rcpt="a@b.test", timeouts=FAST
            )

    p = timed(go(), 5)
    assert all(s.ok for s in p.stages)
    assert seen[:3] == [b"EHLO probe.lab.test\r\n", b"MAIL FROM:<postmaster@probe.lab.test>\r\n",
                        b"RCPT TO:<a@b.test>\r\n"]
    assert b"DATA\r\n" not in seen and p.extensions == ("8BITMIME",)


# --- replies that refuse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "code"),
    [
        pytest.param(b"421 4.3.2 Service shutting down, try later\r\n", 421, id="421"),
        pytest.param(b"450-4.7.1 busy\r\n450 4.7.1 come back\r\n", 450, id="450-multiline"),
        pytest.param(b"554 5.7.1 No SMTP service here\r\n", 554, id="554"),
    ],
)
def test_refusing_greeting_is_a_failed_greeting_with_the_servers_words(greeting: bytes, code: int) -> None:
    async def go() -> evidence.SmtpProbe:
        async with scripted_server(greeter(greeting), "127.0.0.3") as port:
            return await probe.probe_address("127.0.0.3", "127.0.0.3", port, helo_name=HELO, timeouts=FAST)

    p = timed(go(), 5)
    assert names(p) == ["connect", "greeting"]
    g = stage(p, "greeting")
    assert not g.ok and g.code == code and g.error is None
    assert g.text and greeting.split(b" ", 1)[1].split(b"\r\n")[0].decode() in g.text


@pytest.mark.parametrize(
    ("reply", "code"),
    [pytest.param("550 5.1.1 <nobody@lab.test>: user unknown", 550, id="550"),
     pytest.param("450 4.2.0 <nobody@lab.test>: greylisted, try again", 450, id="450")],
)
def test_rcpt_refused_records_the_code_and_still_resets_and_quits(reply: str, code: int) -> None:
    async def go() -> evidence.SmtpProbe:
        async with aiosmtpd_server(Sink(rcpt_reply=reply), "127.0.0.4") as port:
            return await probe.probe_address(
                MX_NAME, "127.0.0.4", port, helo_name=HELO, rcpt="nobody@lab.test", timeouts=FAST
            )

    p = timed(go(), 5)
    r = stage(p, "rcpt")
    assert not r.ok and r.code == code and "nobody@lab.test" in (r.text or "")
    assert stage(p, "rset").ok and stage(p, "quit").ok


def test_ehlo_refused_falls_back_to_helo() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 old-timer SMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            writer.write({b"EHLO": b"502 5.5.2 what?\r\n", b"HELO": b"250 hello\r\n",
                          b"QUIT": b"221 bye\r\n"}.get(verb, b"250 ok\r\n"))
            if verb == b"QUIT":
                break

    async def go() -> evidence.SmtpProbe:
        async with scripted_server(script) as port:
            return await probe.probe_address("127.0.0.1", "127.0.0.1", port, helo_name=HELO, timeouts=FAST)

    p = timed(go(), 5)
    assert names(p) == ["connect", "greeting", "ehlo", "helo", "quit"]
    assert stage(p, "ehlo").code == 502 and not stage(p, "ehlo").ok
    assert stage(p, "helo").ok and p.extensions == ()


# --- STARTTLS ----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_starttls_with_a_trusted_certificate_reads_its_fields(host: str, certs: Certs) -> None:
    async def go() -> evidence.SmtpProbe:
        async with aiosmtpd_server(Sink(), host, tls=server_tls(certs.good)) as port:
            return await probe.probe_address(
                MX_NAME, host, port, helo_name=HELO, rcpt="u@lab.test", timeouts=FAST, cafile=str(certs.ca)
            )

    p = timed(go(), 5)
    assert names(p) == ["connect", "greeting", "ehlo", "starttls", "ehlo-tls", "mail", "rcpt", "rset", "quit"]
    assert all(s.ok for s in p.stages), p.stages
    tls = p.tls
    assert tls is not None
    assert tls.protocol in ("TLSv1.2", "TLSv1.3") and tls.cipher
    assert tls.subject == f"CN={MX_NAME}" and tls.issuer == "CN=mxdoctor test CA"
    assert tls.sans == (MX_NAME, "*.mx.lab.test")
    assert tls.matches_host is True and tls.expired is False and tls.verify_error is None
    assert tls.not_after and tls.not_after > "2026"
    assert "STARTTLS" not in p.extensions  # the list is the one learnt inside TLS


@pytest.mark.parametrize(
    ("which", "verify_fragment", "matches", "expired"),
    [
        pytest.param("self_signed", "self-signed", True, False, id="self-signed"),
        pytest.param("expired", "expired", True, True, id="expired"),
        pytest.param("misnamed", None, False, False, id="misnamed"),
    ],
)
def test_starttls_with_a_bad_certificate_goes_on_and_records_why(
    which: str, verify_fragment: str | None, matches: bool, expired: bool, certs: Certs
) -> None:
    async def go() -> evidence.SmtpProbe:
        async with aiosmtpd_server(Sink(), "127.0.0.5", tls=server_tls(getattr(certs, which))) as port:
            return await probe.probe_address(
                MX_NAME, "127.0.0.5", port, helo_name=HELO, rcpt="u@lab.test", timeouts=FAST,
                cafile=str(certs.ca),
            )

    p = timed(go(), 5)
    assert all(s.ok for s in p.stages), p.stages
    assert "rcpt" in names(p)
    assert p.tls is not None and p.tls.matches_host is matches and p.tls.expired is expired
    if verify_fragment is None:
        assert p.tls.verify_error is None  # the chain is fine; only the name is wrong
    else:
        assert p.tls.verify_error and verify_fragment in p.tls.verify_error


def test_starttls_probed_by_address_has_no_name_to_match(certs: Certs) -> None:
    async def go() -> evidence.SmtpProbe:
        async with aiosmtpd_server(Sink(), "127.0.0.1", tls=server_tls(certs.good)) as port:
            return await probe.probe_address("127.0.0.1", "127.0.0.1", port, helo_name=HELO, timeouts=FAST)

    p = timed(go(), 5)
    assert p.tls is not None and p.tls.matches_host is None
    assert p.tls.verify_error  # the test CA is not in the system store


def test_starttls_can_be_skipped(certs: Certs) -> None:
    async def go() -> evidence.SmtpProbe:
        async with aiosmtpd_server(Sink(), "127.0.0.1", tls=server_tls(certs.good)) as port:
            return await probe.probe_address(
                MX_NAME, "127.0.0.1", port, helo_name=HELO, timeouts=FAST, starttls=False
            )

    p = timed(go(), 5)
    assert "starttls" not in names(p) and p.tls is None and "STARTTLS" in p.extensions


def test_starttls_handshake_garbage_fails_the_stage() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:8].upper()
            if verb.startswith(b"EHLO"):
                writer.write(b"250-fake\r\n250 STARTTLS\r\n")
            elif verb.startswith(b"STARTTLS"):
                writer.write(b"220 go ahead\r\n")
                await writer.drain()
                writer.write(b"this is not a TLS server hello\r\n" * 4)
                await writer.drain()
                await asyncio.sleep(5)

    async def go() -> evidence.SmtpProbe:
        async with scripted_server(script) as port:
            return await probe.probe_address(MX_NAME, "127.0.0.1", port, helo_name=HELO, timeouts=FAST)

    p = timed(go(), 5)
    st = stage(p, "starttls")
    assert not st.ok and st.error and p.tls is None
    assert names(p)[-1] == "starttls"


# --- hostile servers ---------------------------------------------------------------------------


HOSTILE = [
    pytest.param(silent, "greeting", "no greeting within 0.5 s", id="never-greets"),
    pytest.param(drip, "greeting", "no greeting within 0.5 s", id="drips-bytes"),
    pytest.param(garbage, "greeting", "Malformed", id="garbage"),
    pytest.param(huge_line, "greeting", "too long", id="10MB-line"),
    pytest.param(close_at_once, "greeting", "onnect", id="closes-after-connect"),
    pytest.param(endless_reply, "ehlo", "too long", id="endless-ehlo-reply"),
    pytest.param(silent_in_tls, "starttls", "upgrading", id="silent-in-tls"),
]


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize(("script", "failed", "error"), HOSTILE)
def test_hostile_server_ends_in_a_failed_stage_in_bounded_time(
    host: str, script: Script, failed: str, error: str
) -> None:
    async def go() -> evidence.SmtpProbe:
        async with scripted_server(script, host) as port:
            return await probe.probe_address(host, host, port, helo_name=HELO, timeouts=SHORT)

    p = timed(go(), 2)
    last = p.stages[-1]
    assert last.stage == failed and not last.ok, p.stages
    assert last.error and error.lower() in last.error.lower(), last.error
    assert last.duration < 1.0
    assert all(ch.isprintable() or ch == "\n" for ch in last.error)


@pytest.mark.parametrize("host", HOSTS)
def test_connection_refused_is_a_failed_connect_stage(host: str) -> None:
    port = free_port(host)
    p = timed(probe.probe_address(host, host, port, helo_name=HELO, timeouts=FAST), 2)
    assert names(p) == ["connect"]
    assert not p.stages[0].ok and "refused" in (p.stages[0].error or "").lower()


def test_the_whole_probe_has_a_deadline() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 tarpit\r\n")
        while line := await reader.readline():
            await asyncio.sleep(0.8)  # each reply just inside the command budget
            writer.write(b"221 bye\r\n" if line.startswith(b"QUIT") else b"250 ok\r\n")

    slow = probe.Timeouts(connect=1.0, greeting=1.0, command=1.0, total=2.0)

    async def go() -> evidence.SmtpProbe:
        async with scripted_server(script) as port:
            return await probe.probe_address(
                "127.0.0.1", "127.0.0.1", port, helo_name=HELO, rcpt="a@b.test", timeouts=slow
            )

    p = timed(go(), 3)
    assert not p.stages[-1].ok and "2 s" in (p.stages[-1].error or "")
    assert p.stages[-1].stage in ("mail", "rcpt")


# --- many, input --------------------------------------------------------------------------------


def test_probe_many_keeps_order_and_runs_concurrently() -> None:
    async def go() -> tuple[evidence.SmtpProbe, ...]:
        async with scripted_server(silent, "127.0.0.8") as silent_port, aiosmtpd_server(
            Sink(), "127.0.0.9"
        ) as good_port:
            targets = [probe.Target(f"mx{i}.lab.test", "127.0.0.8", silent_port) for i in range(4)]
            targets.insert(2, probe.Target("good.lab.test", "127.0.0.9", good_port))
            return await probe.probe_many(targets, probe.Options(HELO, timeouts=FAST), concurrency=8)

    got = timed(go(), 3)  # five probes, four of which wait a full greeting budget: in parallel
    assert [p.host for p in got] == ["mx0.lab.test", "mx1.lab.test", "good.lab.test", "mx2.lab.test",
                                     "mx3.lab.test"]
    assert got[2].stages[-1].stage == "quit" and got[2].stages[-1].ok
    assert all(not p.stages[-1].ok for i, p in enumerate(got) if i != 2)


@pytest.mark.parametrize(
    ("address", "port", "rcpt"),
    [("mx.lab.test", 25, None), ("127.0.0.1", 0, None), ("127.0.0.1", 25, "a b@c"),
     ("127.0.0.1", 25, "x@y>\r\nDATA")],
)
def test_unusable_input_raises_invalid_target(address: str, port: int, rcpt: str | None) -> None:
    with pytest.raises(InvalidTarget):
        asyncio.run(probe.probe_address("h", address, port, helo_name=HELO, rcpt=rcpt))


def test_evidence_with_probes_round_trips() -> None:
    async def go() -> evidence.SmtpProbe:
        async with aiosmtpd_server(Sink(), "127.0.0.1") as port:
            return await probe.probe_address(MX_NAME, "127.0.0.1", port, helo_name=HELO, timeouts=FAST)

    p = timed(go(), 5)
    ev = evidence.Evidence(target="lab.test", domain="lab.test", command="smtp", smtp=(p,))
    assert evidence.loads(evidence.dumps(ev)) == ev


@pytest.mark.parametrize(
    ("host", "pattern", "ok"),
    [("mx.lab.test", "mx.lab.test", True), ("MX.Lab.Test.", "mx.lab.test", True),
     ("a.mx.lab.test", "*.mx.lab.test", True), ("mx.lab.test", "*.mx.lab.test", False),
     ("a.b.mx.lab.test", "*.mx.lab.test", False), ("lab.test", "*.test", False),
     ("mx.lab.test", "mx.lab.test.evil", False)],
)
def test_name_matching_follows_rfc6125(host: str, pattern: str, ok: bool) -> None:
    assert probe.host_matches(host, [pattern], []) is ok


def test_common_name_counts_only_without_dns_sans() -> None:
    assert probe.host_matches("mx.lab.test", [], ["mx.lab.test"])
    assert not probe.host_matches("mx.lab.test", ["other.test"], ["mx.lab.test"])


def test_words_neutralises_control_characters() -> None:
    assert probe.words("250 ok\x1b[31m\x00") == "250 ok\\x1b[31m\\x00"
    assert probe.words("a" * 5000, 10) == "a" * 9 + "…"


def test_connect_that_gets_no_answer_times_out() -> None:
    # A listener whose accept queue is full drops further SYNs, as a filtering firewall does.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            p = timed(probe.probe_address("127.0.0.1", "127.0.0.1", port, helo_name=HELO, timeouts=SHORT), 1.5)
    assert [s.stage for s in p.stages] == ["connect"]
    assert not p.stages[0].ok and p.stages[0].error == "no answer within 0.5 s"
