"""Notifiers of the watch: a log line on stdout, a JSON webhook, and e-mail through an SMTP relay.

Each takes one event payload (built by ``monitor.watch``) and either returns or raises
``NotifyError``; each send has a total time bound, from the connection to the last byte of the
answer, so a server that trickles cannot hold it longer. The e-mail notifier never sends credentials
without TLS unless told to. The webhook body carries a ``text`` field, which Slack and Microsoft
Teams incoming webhooks display, next to the structured fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import sys
import urllib.parse
from collections.abc import Coroutine
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol, TextIO, TypeVar

from mxdoctor import __version__

T = TypeVar("T")

# The status line and headers of a webhook's answer; a receiver that says more is not read further.
MAX_ANSWER_HEAD = 64 * 1024
EMAIL_TLS_MODES = ("starttls", "implicit", "none")


class NotifyError(Exception):
    """A notification could not be delivered (it stays pending and is retried next poll)."""


class Notifier(Protocol):
    name: str

    def send(self, payload: dict[str, Any]) -> None: ...


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (line breaks, terminal escapes) escaped."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def headline(payload: dict[str, Any]) -> str:
    """One line for people: what, where, how old, why, and the diagnosed root cause (domains and reasons
    come from queue listings, so any control character in them is escaped)."""
    return one_line(_headline(payload))


def _headline(payload: dict[str, Any]) -> str:
    domain = payload.get("domain", "?")
    host = payload.get("host")
    where = f" on {host}" if host else ""
    if payload.get("kind") == "silence":
        if payload.get("event") == "clear":
            return f"RESOLVED: {host} pushes its queue again"
        return (f"SILENT: no snapshot from {host} for {payload.get('silent_for')} "
                f"(expected at least every {payload.get('silent_after')})")
    if payload.get("event") == "clear":
        return (f"RESOLVED{where}: mail to {domain} is flowing again "
                f"(queue drained below {payload.get('threshold')})")
    text = (f"DELAYED{where}: {payload.get('messages', '?')} message(s) to {domain} queued, "
            f"oldest {payload.get('oldest_age', '?')}")
    if payload.get("age_from"):
        text += f" (aged from the {payload['age_from']})"
    reason = payload.get("reason") or {}
    if reason:
        text += f"; reason: {reason.get('category')} - {reason.get('text') or reason.get('summary')}"
    diagnosis = payload.get("diagnosis") or {}
    if diagnosis.get("root_cause"):
        text += f"; root cause: {diagnosis['root_cause']}: {diagnosis.get('message', '')}"
        if diagnosis.get("fix_sender"):
            text += f"; sender-side fix: {diagnosis['fix_sender']}"
    elif diagnosis.get("error"):
        text += f"; diagnosis failed: {diagnosis['error']}"
    if diagnosis.get("views_used"):
        text += f"; views: {', '.join(map(str, diagnosis['views_used']))}"
        if diagnosis.get("views_unreachable"):
            text += f" (not reachable from here: {', '.join(map(str, diagnosis['views_unreachable']))})"
    return text


@dataclass
class LogNotifier:
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    name: str = "log"

    def send(self, payload: dict[str, Any]) -> None:
        try:
            print(f"mxdoctor watch: {headline(payload)}", file=self.stream, flush=True)
        except (OSError, ValueError) as exc:  # a closed or broken stdout: the line waits in the outbox
            raise NotifyError(f"log: {exc}") from None


def run_bounded(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run ``coro`` on a private event loop, cancelled once ``timeout`` seconds have passed in all."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        # Not asyncio.run: its executor shutdown would wait for a name lookup that outlived the bound.
        with contextlib.suppress(Exception):
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(asyncio.sleep(0))  # the closes and aborts scheduled last
        loop.close()


@dataclass
class WebhookNotifier:
    """A JSON POST; ``timeout`` bounds the whole request: connect, TLS, request, status line and headers."""

    url: str
    timeout: float = 10.0
    name: str = "webhook"
    ca_file: str | None = None

    def send(self, payload: dict[str, Any]) -> None:
        body = json.dumps({"text": headline(payload), **payload}, default=str).encode()
        try:
            # The id names a domain from a queue listing: no byte of it may end the header line early.
            event_id = "".join(ch if " " <= ch < "\x7f" else "?" for ch in str(payload.get("id", "")))
            status = run_bounded(self._post(body, event_id), self.timeout)
        except TimeoutError:
            raise NotifyError(f"webhook did not answer within {self.timeout:g}s") from None
        except ssl.SSLError as exc:
            raise NotifyError(f"webhook TLS: {exc.reason or exc}") from None
        except (OSError, ValueError, UnicodeError) as exc:
            raise NotifyError(f"webhook unreachable: {exc}") from None
        if not 200 <= status < 300:
            raise NotifyError(f"webhook answered HTTP {status}")

    async def _post(self, body: bytes, event_id: str) -> int:
        parts = urllib.parse.urlsplit(self.url)
        secure = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        context = ssl.create_default_context(cafile=self.ca_file) if secure else None
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname=host if secure else None, limit=MAX_ANSWER_HEAD)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            head = (
                f"POST {target} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
                f"User-Agent: mxdoctor/{__version__}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nIdempotency-Key: {event_id}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            await writer.drain()
            while True:
                status = _status(await reader.readline())
                while (await reader.readline()).strip():  # the headers, up to the empty line
                    pass
                if status >= 200 or status < 100:
                    return status  # 1xx are interim answers; the final one follows
        finally:
            writer.close()


def _status(line: bytes) -> int:
    """The code of an HTTP status line; raises ValueError on anything else."""
    words = line.split(None, 2)
    if len(words) < 2 or not words[0].startswith(b"HTTP/") or not words[1].isdigit():
        raise ValueError(f"not an HTTP answer: {line[:60]!r}")
    return int(words[1])


@dataclass
class EmailNotifier:
    """Mail through a relay. ``tls``: ``starttls`` (upgrade whenever the relay offers it), ``implicit``
    (TLS from the first byte, port 465) or ``none``. Credentials are sent only over TLS unless
    ``allow_plaintext``; ``require_tls`` refuses to send anything without it. ``timeout`` bounds the
    whole exchange."""

    relay: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    tls: str = "starttls"
    require_tls: bool = False
    allow_plaintext: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    timeout: float = 20.0
    name: str = "email"

    def message(self, payload: dict[str, Any]) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Subject"] = f"[mxdoctor] {headline(payload)[:120]}"
        msg["X-Mxdoctor-Event"] = one_line(str(payload.get("id", "")))
        msg.set_content(headline(payload) + "\n\n" + json.dumps(payload, indent=2, default=str) + "\n")
        return msg

    def send(self, payload: dict[str, Any]) -> None:
        import aiosmtplib

        try:
            run_bounded(self._send(self.message(payload)), self.timeout)
        except TimeoutError:
            raise NotifyError(f"mail relay {self.relay}:{self.port}: no answer within {self.timeout:g}s") from None
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            raise NotifyError(f"mail relay {self.relay}:{self.port}: {exc}") from None

    async def _send(self, message: EmailMessage) -> None:
        import aiosmtplib

        context = ssl.create_default_context(cafile=self.ca_file)
        smtp = aiosmtplib.SMTP(hostname=self.relay, port=self.port, use_tls=self.tls == "implicit",
                               start_tls=False, tls_context=context, timeout=self.timeout)
        await smtp.connect()
        transports = [smtp.transport]
        try:
            await smtp.ehlo()
            if self.tls == "starttls" and smtp.supports_extension("starttls"):
                await smtp.starttls(tls_context=context)
                transports.append(smtp.transport)
                await smtp.ehlo()
            secure = smtp.get_transport_info("sslcontext") is not None
            if not secure and (self.require_tls or (self.username and not self.allow_plaintext)):
                why = "sends credentials" if self.username else "sends mail"
                raise NotifyError(f"mail relay {self.relay}:{self.port} offers no TLS, and mxdoctor "
                                  f"{why} only over TLS (allow_plaintext = true to permit it)")
            if self.username:
                await smtp.login(self.username, self.password or "")
            await smtp.send_message(message)
            with contextlib.suppress(aiosmtplib.SMTPException):
                await smtp.quit()
        finally:
            transports.append(smtp.transport)
            smtp.close()
            for transport in transports:
                if isinstance(transport, asyncio.Transport):
                    # A TLS close waits for the peer's close_notify, which this private loop will not wait
                    # for once the send is over: abort, so the socket is closed now.
                    transport.abort()
