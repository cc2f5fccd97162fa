"""The lab's SMTP servers, built on aiosmtpd: configurable greeting, EHLO extensions, STARTTLS with a lab
certificate, RCPT accepted or rejected by pattern, and mail kept in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from mxdoctor.lab import certs

log = logging.getLogger(__name__)

DEFAULT_IDENT = "ESMTP mxdoctor lab"
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0
# A silent client is dropped after this long, as real servers do (Postfix: 300 s); short keeps labs light.
IDLE_TIMEOUT = 60.0
# Mail is kept in memory: without a SIZE extension, this is still the most a message may hold.
MAX_MESSAGE = 32 * 1024 * 1024


@dataclass(frozen=True)
class SmtpConfig:
    """How one lab SMTP server behaves.

    ``greeting_code`` 220 serves normally; 421 greets and closes; any other 4xx/5xx greets with that code
    and then answers every command with it (QUIT excepted), as a server refusing service does
    (RFC 5321 §3.1, §3.8). ``greeting_text`` is the whole text after the code (default: the host name and
    "ESMTP mxdoctor lab", or a fitting refusal). ``rcpt_reject`` holds (fnmatch pattern on the lower-case
    address, code, text).
    """

    hostname: str
    greeting_code: int = 220
    greeting_text: str | None = None
    extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME", "SIZE 10240000")
    starttls: bool = True
    rcpt_reject: tuple[tuple[str, int, str], ...] = ()

    def greeting_line(self) -> str:
        return f"{self.greeting_code} {self.greeting()}"

    def greeting(self) -> str:
        """The greeting's text after the code."""
        if self.greeting_text:
            return self.greeting_text
        if self.greeting_code == 220:
            return f"{self.hostname} {DEFAULT_IDENT}"
        if self.greeting_code == 421:
            return f"{self.hostname} Service not available, closing transmission channel"
        if 400 <= self.greeting_code < 500:
            return f"{self.hostname} Service temporarily unavailable"
        return f"{self.hostname} No SMTP service here"

    def size_limit(self) -> int | None:
        for extension in self.extensions:
            word, _, value = extension.partition(" ")
            if word.upper() == "SIZE" and value.strip().isdigit():
                return int(value)
        return None


@dataclass(frozen=True)
class ReceivedMessage:
    """One message a lab SMTP server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    peer: str
    server: str


class _Handler:
    """aiosmtpd handler hooks: the EHLO list, RCPT policy, and keeping DATA."""

    def __init__(self, server: LabSmtpServer) -> None:
        self.server = server
        self.config = server.config

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # aiosmtpd leaves the session's HELO name to a hook that replaces its EHLO reply.
        session.host_name = hostname
        lines = [self.config.hostname]
        lines += [e for e in self.config.extensions if e.upper() != "STARTTLS"]
        if self.config.starttls and session.ssl is None:
            lines.append("STARTTLS")
        return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        for pattern, code, text in self.config.rcpt_reject:
            if fnmatch.fnmatchcase(address.lower(), pattern.lower()):
                return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_exception(self, error: Exception) -> str:
        # A client that drops a TLS handshake (a probe rejecting the lab certificate) is ordinary here:
        # note it quietly instead of aiosmtpd's logged traceback.
        log.debug("lab SMTP %s: session error %r", self.config.hostname, error)
        return f"500 Error: ({type(error).__name__}) {error}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        message = ReceivedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(data),
            peer=str(peer),
            server=self.config.hostname,
        )
        self.server.messages.append(message)
        return f"250 2.0.0 OK: queued as {uuid.uuid4().hex[:12].upper()}"


class _RefusingSession(asyncio.Protocol):
    """A session on a server whose greeting is not 220: greet, then refuse or close."""

    def __init__(self, config: SmtpConfig, sessions: set[asyncio.Transport]) -> None:
        self.config = config
        self.sessions = sessions
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sessions.add(transport)
        transport.write(self.config.greeting_line().encode() + b"\r\n")
        if self.config.greeting_code == 421:
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        transport = self.transport
        if transport is not None:
            self.idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self._arm()
        self.buffer += data
        while b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            verb = line.strip().split(b" ", 1)[0].upper()
            if verb == b"QUIT":
                self.transport.write(b"221 2.0.0 Bye\r\n")
                self.transport.close()
                return
            self.transport.write(self.config.greeting_line().encode() + b"\r\n")
        if len(self.buffer) > 4096:  # RFC 5321 §4.5.3.1.4: a line is at most 512 octets
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        if self.transport is not None:
            self.sessions.discard(self.transport)


class LabSmtpServer:
    """One lab SMTP server on (address, port), run on its own event loop in a background thread.

    ``start()`` binds at once and raises OSError (EADDRINUSE, EACCES, ...) when it cannot; ``stop()``
    closes every connection and frees the port. ``messages`` holds what was received, in memory only.
    """

    def __init__(self, config: SmtpConfig, address: str, port: int, cert_dir: Path | None = None) -> None:
        self.config = config
        self.address = address
        self.port = port
        self.cert_dir = cert_dir
        self.messages: list[ReceivedMessage] = []
        self._handler = _Handler(self)
        self._tls: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._sessions: set[asyncio.Transport] = set()
        self._failure: BaseException | None = None
        self.certificate: Path | None = None  # the chain served in STARTTLS, once started

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"lab SMTP server {self.config.hostname} on {self.address} already runs")
        if self.config.starttls:
            self._tls = self._tls_context()
        sock = self._bind()
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(sock, ready), name=f"lab-smtp-{self.config.hostname}", daemon=True
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT) or self._failure is not None:
            failure = self._failure
            self.stop()
            if isinstance(failure, OSError):
                raise failure
            raise RuntimeError(f"lab SMTP server {self.config.hostname} did not start: {failure}")

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may already be closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT)
        self._loop = None
        self._thread = None

    # -- inside the server thread -----------------------------------------------------------------

    def _run(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(loop.create_server(self._session, sock=sock))
        except BaseException as exc:
            self._failure = exc
            sock.close()
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for transport in list(self._sessions):
            transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _session(self) -> asyncio.Protocol:
        if self.config.greeting_code != 220:
            return _RefusingSession(self.config, self._sessions)
        # aiosmtpd greets "220 <hostname> <ident>" and uses the host name nowhere else we let it (our
        # EHLO hook writes its own), so the greeting's first word stands in for it.
        first, _, rest = self.config.greeting().partition(" ")
        return _TrackedSMTP(
            self._sessions,
            self._handler,
            hostname=first,
            ident=rest or "ESMTP",
            tls_context=self._tls,
            data_size_limit=self.config.size_limit() or MAX_MESSAGE,
            enable_SMTPUTF8=any(e.upper() == "SMTPUTF8" for e in self.config.extensions),
            timeout=IDLE_TIMEOUT,
            loop=self._loop,
        )

    # -- set-up -----------------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((self.address, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _tls_context(self) -> ssl.SSLContext:
        cert, key = certs.make_certificate([self.config.hostname], self.cert_dir)
        self.certificate = cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context


class _TrackedSMTP(SMTP):
    """aiosmtpd's SMTP session, registered so that stop() can close it."""

    def __init__(self, sessions: set[asyncio.Transport], handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._lab_sessions = sessions
        self._lab_transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._lab_transport is None and isinstance(transport, asyncio.Transport):
            # The first transport is the TCP one; STARTTLS later hands over an SSL transport over it.
            self._lab_transport = transport
            self._lab_sessions.add(transport)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lab_transport is not None:
            self._lab_sessions.discard(self._lab_transport)
        super().connection_lost(exc)
