"""The SMTP probe of one address, in stages like swaks: connect, greeting, EHLO, STARTTLS, EHLO again,
optional MAIL FROM / RCPT TO, RSET, QUIT; never DATA. Every stage has its own time budget, and a slow
or hostile server ends in a failed stage (an ``evidence.SmtpStage`` with an error), never a hang.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import os
import socket
import ssl
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosmtplib
from cryptography import x509

from mxdoctor import evidence, route
from mxdoctor.errors import InvalidTarget

CONNECT = "connect"
GREETING = "greeting"
EHLO = "ehlo"
HELO = "helo"  # only when EHLO was refused (RFC 5321 §3.2)
STARTTLS = "starttls"
EHLO_TLS = "ehlo-tls"  # EHLO again inside TLS (RFC 3207 §4.2)
MAIL = "mail"
RCPT = "rcpt"
RSET = "rset"
QUIT = "quit"
STAGES = (CONNECT, GREETING, EHLO, HELO, STARTTLS, EHLO_TLS, MAIL, RCPT, RSET, QUIT)

# Longest server text kept per stage: a reply is bounded on the wire (aiosmtplib refuses lines over
# 8 KiB and replies over 32 KiB), and the evidence needs no more than the server's first words.
TEXT_LIMIT = 2000


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed per stage; ``total`` bounds one address's whole probe."""

    connect: float = 5.0
    greeting: float = 10.0
    command: float = 10.0  # each command's reply, and the TLS handshake
    total: float = 60.0

    @classmethod
    def scaled(cls, command: float) -> Timeouts:
        """One ``--timeout`` for every stage: connect gets half of it, the whole probe six times it."""
        return cls(connect=max(command / 2, 0.1), greeting=command, command=command, total=command * 6)


@dataclass(frozen=True)
class Target:
    """One address to probe, with the MX host name it belongs to (the address when probed directly)."""

    host: str
    address: str
    port: int = 25


@dataclass(frozen=True)
class Options:
    """What to say to each server: the EHLO name, an optional envelope, STARTTLS, time budgets."""

    helo_name: str
    rcpt: str | None = None  # adds MAIL FROM and RCPT TO
    mail_from: str | None = None  # default postmaster@<helo_name>; alone, adds MAIL FROM only
    starttls: bool = True
    timeouts: Timeouts = Timeouts()
    cafile: str | None = None  # extra trust anchors for the chain check


def family_of(address: str) -> int:
    """4 or 6; raises InvalidTarget when ``address`` is not an IP address."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        raise InvalidTarget(f"{address!r} is not an IP address") from None


def default_helo_name() -> str:
    """The local host name as the EHLO argument; no DNS lookup (``getfqdn`` would make one)."""
    name = socket.gethostname().strip().rstrip(".")
    try:
        name.encode("ascii")
    except UnicodeEncodeError:
        name = ""
    return name or "localhost.localdomain"


def words(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    """The server's words made safe to store and print: no control characters, no lone surrogates."""
    if text is None:
        return None
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    out = []
    for ch in raw:
        if ch == "\n":
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    clean = "".join(out)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _name_matches(host: str, pattern: str) -> bool:
    """RFC 6125 §6.4: case-insensitive; a wildcard only as the whole left-most label, one label deep."""
    host = host.rstrip(".").lower()
    pattern = pattern.rstrip(".").lower()
    if not pattern.startswith("*."):
        return host == pattern
    suffix = pattern[1:]  # ".example.org"
    if suffix.count(".") < 2:  # never "*.org"
        return False
    head, dot, rest = host.partition(".")
    return bool(head) and bool(dot) and "." + rest == suffix


def host_matches(host: str, dns_names: Sequence[str], common_names: Sequence[str]) -> bool:
    """Whether a certificate names ``host``: DNS SANs, or the CN only when there is no DNS SAN."""
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return False
    names = dns_names if dns_names else common_names
    return any(_name_matches(host, n) for n in names)


def certificate_info(
    der: bytes, host: str | None, *, now: datetime.datetime | None = None
) -> evidence.TlsInfo:
    """The fields of a DER certificate the findings need; ``host`` None when probed by address."""
    cert = x509.load_der_x509_certificate(der)
    dns_names: list[str] = []
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = list(ext.get_values_for_type(x509.DNSName))
        sans = dns_names + [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    not_after = cert.not_valid_after_utc
    moment = now or datetime.datetime.now(datetime.UTC)
    matches: bool | None = None
    if host is not None and not _is_address(host):
        matches = host_matches(host, dns_names, cns)
    return evidence.TlsInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=tuple(sans),
        not_after=not_after.isoformat(),
        expired=moment > not_after,
        matches_host=matches,
    )


MAX_CHAIN = 8  # certificates kept of what the server sent (DANE matches against them)
MAX_CERT_BYTES = 16 * 1024


def _peer_chain(sslobj: ssl.SSLObject, leaf: bytes | None) -> tuple[str, ...]:
    """The chain as the server sent it, base64 DER, leaf first (``get_unverified_chain`` of the
    underlying _ssl object, Python 3.10+; the leaf alone where it is missing)."""
    import base64

    certs: list[bytes] = []
    inner = getattr(sslobj, "_sslobj", None)
    getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            certs = [c.public_bytes(ssl._ssl.ENCODING_DER) for c in (getter() or [])]  # type: ignore[attr-defined]
        except (ssl.SSLError, AttributeError, ValueError):
            certs = []
    if not certs and leaf:
        certs = [leaf]
    return tuple(base64.b64encode(c).decode("ascii") for c in certs[:MAX_CHAIN] if len(c) <= MAX_CERT_BYTES)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _tls_context(*, verify: bool, cafile: str | None) -> ssl.SSLContext:
    # The chain is verified by OpenSSL against the system store (plus ``cafile``); the name is matched
    # by host_matches, so one handshake yields both facts separately.
    ctx = ssl.create_default_context(cafile=cafile) if verify else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify and cafile is not None:
        ctx.load_default_certs()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED if verify else ssl.CERT_NONE
    return ctx


def _describe(exc: BaseException) -> str:
    """A failure in words, with the OS or TLS cause when the library wrapped it."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return str(exc.message)
    if isinstance(exc, aiosmtplib.SMTPException):
        cause = exc.__cause__
        base = str(exc.args[0]) if exc.args else type(exc).__name__
        if isinstance(cause, OSError) and cause.strerror and cause.strerror not in base:
            return f"{base} ({cause.strerror})"
        return base
    if isinstance(exc, OSError):
        # asyncio's sock_connect puts "Connect call failed (addr)" in strerror; the errno says why
        return os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


class _Session:
    """One connection's stages; ``probe_address`` drives it and a certificate retry replays it."""

    def __init__(self, target: Target, *, helo_name: str, timeouts: Timeouts, cafile: str | None) -> None:
        self.target = target
        self.helo_name = helo_name
        self.timeouts = timeouts
        self.cafile = cafile
        self.stages: list[evidence.SmtpStage] = []
        self.extensions: tuple[str, ...] = ()
        self.tls: evidence.TlsInfo | None = None
        self.client: aiosmtplib.SMTP | None = None
        self.current = CONNECT
        self.current_since = 0.0

    def _begin(self, stage: str) -> float:
        self.current = stage
        self.current_since = time.monotonic()
        return self.current_since

    def _record(
        self,
        stage: str,
        began: float,
        ok: bool,
        *,
        code: int | None = None,
        text: str | None = None,
        error: str | None = None,
    ) -> bool:
        self.stages.append(
            evidence.SmtpStage(
                stage=stage,
                ok=ok,
                code=code if code is not None and code >= 0 else None,
                text=words(text),
                duration=round(time.monotonic() - began, 6),
                error=words(error),
            )
        )
        return ok

    def _failed(self, stage: str, began: float, exc: BaseException, want: Iterable[int]) -> bool:
        """A reply that refuses is the server's answer; anything else (timeout, garbage, a reply too
        long, a lost connection) leaves the conversation out of step, so the connection is dropped."""
        if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 0:
            return self._reply(stage, began, exc.code, exc.message, want)
        self.close()
        return self._record(stage, began, False, error=_describe(exc))

    def _reply(self, stage: str, began: float, code: int, text: str, want: Iterable[int]) -> bool:
        ok = code in tuple(want)
        error = None if ok else f"unexpected reply {code}" if not 400 <= code < 600 else None
        return self._record(stage, began, ok, code=code, text=text, error=error)

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    def close(self) -> None:
        # abort, not close: a TLS close waits for the peer's close_notify, and a run that ends before
        # it comes would leave the socket open behind asyncio.run
        if self.client is not None:
            transport = self.client.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()
            self.client.close()

    async def connect(self) -> bool:
        t = self._begin(CONNECT)
        family = socket.AF_INET6 if family_of(self.target.address) == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.sock_connect(sock, (self.target.address, self.target.port)), self.timeouts.connect
            )
        except asyncio.CancelledError:
            sock.close()
            raise
        except TimeoutError:
            sock.close()
            return self._record(CONNECT, t, False, error=f"no answer within {self.timeouts.connect:g} s")
        except OSError as exc:
            sock.close()
            return self._record(CONNECT, t, False, error=_describe(exc))
        self._record(CONNECT, t, True)
        return await self._greeting(sock)

    async def _greeting(self, sock: socket.socket) -> bool:
        t = self._begin(GREETING)
        client = aiosmtplib.SMTP(
            local_hostname=self.helo_name, start_tls=False, timeout=self.timeouts.command
        )
        self.client = client
        try:
            reply = await client.connect(sock=sock, timeout=self.timeouts.greeting)
        except asyncio.CancelledError:
            sock.close()
            raise
        except aiosmtplib.SMTPTimeoutError:
            sock.close()
            return self._record(GREETING, t, False, error=f"no greeting within {self.timeouts.greeting:g} s")
        except (aiosmtplib.SMTPException, OSError) as exc:
            sock.close()
            return self._failed(GREETING, t, exc, (220,))
        return self._reply(GREETING, t, reply.code, reply.message, (220,))

    async def hello(self, stage: str = EHLO) -> bool:
        """EHLO, and HELO when EHLO gets a reply that refuses it (RFC 5321 §4.1.4)."""
        assert self.client is not None
        t = self._begin(stage)
        try:
            reply = await self.client.ehlo(hostname=self.helo_name, timeout=self.timeouts.command)
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._failed(stage, t, exc, (250,))
            if isinstance(exc, aiosmtplib.SMTPHeloError) and 500 <= exc.code < 600 and self.connected:
                return await self._helo()
            return False
        lines = reply.message.split("\n")
        self.extensions = tuple(w for w in (words(x.strip(), 200) for x in lines[1:]) if w)
        return self._reply(stage, t, reply.code, lines[0], (250,))

    async def _helo(self) -> bool:
        assert self.client is not None
        t = self._begin(HELO)
        try:
            reply = await self.client.helo(hostname=self.helo_name, timeout=self.timeouts.command)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return self._failed(HELO, t, exc, (250,))
        self.extensions = ()
        return self._reply(HELO, t, reply.code, reply.message, (250,))

    @property
    def offers_starttls(self) -> bool:
        return any(e.split(" ")[0].upper() == "STARTTLS" for e in self.extensions)

    async def starttls(self, *, verify: bool) -> tuple[bool, BaseException | None]:
        """STARTTLS; returns (ok, the exception when the handshake or the reply failed)."""
        assert self.client is not None
        t = self._begin(STARTTLS)
        name = None if _is_address(self.target.host) else self.target.host.rstrip(".")
        try:
            reply = await self.client.starttls(
                server_hostname=name,
                tls_context=_tls_context(verify=verify, cafile=self.cafile),
                timeout=self.timeouts.command,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            return self._failed(STARTTLS, t, exc, (220,)), exc
        self.tls = self._tls_info()
        return self._reply(STARTTLS, t, reply.code, reply.message, (220,)), None

    def _tls_info(self) -> evidence.TlsInfo:
        assert self.client is not None and self.client.transport is not None
        sslobj = self.client.transport.get_extra_info("ssl_object")
        if not isinstance(sslobj, ssl.SSLObject):
            return evidence.TlsInfo(verify_error="no TLS session after the handshake")
        cipher = sslobj.cipher()
        der = sslobj.getpeercert(binary_form=True)
        base = evidence.TlsInfo(verify_error="the server sent no certificate")
        if der:
            try:
                base = certificate_info(der, self.target.host)
            except ValueError as exc:
                base = evidence.TlsInfo(verify_error=words(f"certificate does not parse: {exc}", 300))
        return evidence.TlsInfo(
            protocol=sslobj.version(),
            cipher=cipher[0] if cipher else None,
            subject=base.subject,
            issuer=base.issuer,
            sans=base.sans,
            not_after=base.not_after,
            expired=base.expired,
            matches_host=base.matches_host,
            verify_error=base.verify_error,
            chain=_peer_chain(sslobj, der),
        )

    async def command(self, stage: str, want: Iterable[int], *args: bytes) -> bool:
        assert self.client is not None
        t = self._begin(stage)
        try:
            reply = await self.client.execute_command(*args, timeout=self.timeouts.command)
        except (aiosmtplib.SMTPException, OSError) as exc:
            return self._failed(stage, t, exc, want)
        return self._reply(stage, t, reply.code, reply.message, want)


def _path(address: str) -> bytes:
    if any(ch in address for ch in "<> \t\r\n") or not address.isprintable():
        raise InvalidTarget(f"{address!r} is not a usable mail address")
    return f"<{address}>".encode()


async def probe_address(
    host: str,
    address: str,
    port: int = 25,
    *,
    helo_name: str,
    rcpt: str | None = None,
    mail_from: str | None = None,
    starttls: bool = True,
    timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen value
    cafile: str | None = None,
    origin: float | None = None,
) -> evidence.SmtpProbe:
    """Probe one address of one MX host and return every stage as evidence.

    ``host`` is the MX host name (used for SNI and the certificate match) or the address itself.
    ``rcpt`` adds MAIL FROM and RCPT TO (``mail_from`` defaults to ``postmaster@<helo_name>``);
    ``mail_from`` alone adds MAIL FROM only. ``cafile`` adds trust anchors for the chain check.
    ``origin`` is the ``time.monotonic()`` the run began, for ``SmtpProbe.started``.

    Raises InvalidTarget when ``address``, ``port`` or a mail address is unusable; network faults
    are never raised, they end in a failed stage.
    """
    options = Options(helo_name, rcpt, mail_from, starttls, timeouts, cafile)
    return await probe_target(Target(host, address, port), options, origin=origin)


async def probe_target(
    target: Target, options: Options, *, origin: float | None = None
) -> evidence.SmtpProbe:
    """``probe_address`` for a Target with its Options."""
    host, address, port = target.host, target.address, target.port
    helo_name, rcpt, mail_from, timeouts = (
        options.helo_name, options.rcpt, options.mail_from, options.timeouts
    )
    family = family_of(address)
    if not 0 < port < 65536:
        raise InvalidTarget(f"port {port} is out of range")
    sender = _path(mail_from if mail_from is not None else f"postmaster@{helo_name}") if (
        rcpt is not None or mail_from is not None
    ) else None
    recipient = _path(rcpt) if rcpt is not None else None
    began = time.monotonic()
    session = _Session(target, helo_name=helo_name, timeouts=timeouts, cafile=options.cafile)
    try:
        async with asyncio.timeout(timeouts.total):
            await _converse(session, sender=sender, recipient=recipient, starttls=options.starttls)
    except TimeoutError:
        session.stages.append(
            evidence.SmtpStage(
                stage=session.current,
                ok=False,
                duration=round(time.monotonic() - session.current_since, 6),
                error=f"the whole probe ran out of its {timeouts.total:g} s",
            )
        )
    finally:
        session.close()
        await asyncio.sleep(0)  # let the transport's connection_lost run: the socket closes now
    return evidence.SmtpProbe(
        host=host,
        address=address,
        port=port,
        family=family,
        stages=tuple(session.stages),
        extensions=session.extensions,
        tls=session.tls,
        started=round(began - (origin if origin is not None else began), 6),
    )


async def _converse(s: _Session, *, sender: bytes | None, recipient: bytes | None, starttls: bool) -> None:
    if not await s.connect():
        return
    if not await s.hello():
        await _quit(s)
        return
    if starttls and s.offers_starttls and not (await _secure(s) and await s.hello(EHLO_TLS)):
        await _quit(s)
        return
    if sender is not None and await s.command(MAIL, (250,), b"MAIL", b"FROM:" + sender):
        if recipient is not None and s.connected:
            await s.command(RCPT, (250, 251, 252), b"RCPT", b"TO:" + recipient)
    if sender is not None and s.connected:
        await s.command(RSET, (250,), b"RSET")
    await _quit(s)


async def _quit(s: _Session) -> None:
    if s.connected:
        await s.command(QUIT, (221,), b"QUIT")


async def _secure(s: _Session) -> bool:
    """STARTTLS with chain verification. When only the chain fails, redo it unverified on a new
    connection (Python cannot finish a handshake whose verification failed), as an opportunistic MTA
    would carry on, and keep the verification error in ``tls.verify_error``."""
    ok, exc = await s.starttls(verify=True)
    if ok or not isinstance(exc, ssl.SSLCertVerificationError):
        return ok
    failed = s.stages.pop()
    verify_error = words(exc.verify_message or exc.reason or "certificate not verifiable", 300)
    s.close()
    s.current = STARTTLS
    retry = _Session(s.target, helo_name=s.helo_name, timeouts=s.timeouts, cafile=s.cafile)
    t = time.monotonic()
    try:
        ok = await retry.connect() and await retry.hello() and (await retry.starttls(verify=False))[0]
    except BaseException:
        retry.close()
        raise
    last = retry.stages[-1]
    duration = round(failed.duration + time.monotonic() - t, 6)
    if not ok or retry.tls is None:
        retry.close()
        why = f"{verify_error}; the unverified retry failed at {last.stage}: {last.error or last.text}"
        s.stages.append(evidence.SmtpStage(STARTTLS, False, last.code, last.text, duration, words(why)))
        return False
    s.client = retry.client
    s.tls = dataclasses.replace(retry.tls, verify_error=verify_error)
    s.stages.append(evidence.SmtpStage(STARTTLS, True, last.code, last.text, duration))
    return True


async def probe_many(
    targets: Iterable[Target], options: Options, *, concurrency: int = 8
) -> tuple[evidence.SmtpProbe, ...]:
    """Probe every target, at most ``concurrency`` at once; results in the order of ``targets``."""
    todo = list(targets)
    origin = time.monotonic()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(t: Target) -> evidence.SmtpProbe:
        async with gate:
            return await probe_target(t, options, origin=origin)

    return tuple(await asyncio.gather(*(one(t) for t in todo)))


def targets_of(ev: evidence.Evidence, view: str, port: int = 25) -> list[Target]:
    """Every exchanger address of the route through ``view``, in preference order, IPv6 first per host
    (as the MTAs try them); an address shared by two exchangers is probed under each name."""
    found = route.route_for_view(ev, view)
    out: list[Target] = []
    for x in sorted(found.exchangers, key=lambda x: x.preference):
        host = x.host.rstrip(".")
        for address in x.addresses:
            t = Target(host, address, port)
            if t not in out:
                out.append(t)
    return out


async def probe_evidence(
    ev: evidence.Evidence,
    *,
    view: str,
    port: int = 25,
    options: Options | None = None,
    concurrency: int = 8,
) -> evidence.Evidence:
    """``ev`` with ``smtp`` filled: every exchanger address found through ``view`` probed on ``port``.

    ``options`` default: EHLO with the local host name, STARTTLS, no envelope, default budgets. The view
    and port are recorded in ``ev.options`` (``smtp_view``, ``smtp_port``) so the checks can say which
    addresses were never probed because their lookup failed. Raises InvalidTarget for an unknown view.
    """
    if ev.view(view) is None:
        known = ", ".join(v.name for v in ev.views) or "none"
        raise InvalidTarget(f"view {view!r} is not in the evidence (views: {known})")
    opts = options or Options(helo_name=default_helo_name())
    probes = await probe_many(targets_of(ev, view, port), opts, concurrency=concurrency)
    recorded = {**ev.options, "smtp_view": view, "smtp_port": str(port)}
    return dataclasses.replace(ev, smtp=probes, options=recorded)
