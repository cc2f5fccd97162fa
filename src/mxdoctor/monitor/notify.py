"""Notifiers of the watch: a log line on stdout, a JSON webhook, and e-mail through an SMTP relay.

Each takes one event payload (built by ``monitor.watch``) and either returns or raises
``NotifyError``; every network wait has a timeout. The webhook body carries a ``text`` field, which
Slack and Microsoft Teams incoming webhooks display, next to the structured fields.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol, TextIO


class NotifyError(Exception):
    """A notification could not be delivered (it stays pending and is retried next poll)."""


class Notifier(Protocol):
    name: str

    def send(self, payload: dict[str, Any]) -> None: ...


def headline(payload: dict[str, Any]) -> str:
    """One line for people: what, where, how old, why, and the diagnosed root cause."""
    domain = payload.get("domain", "?")
    if payload.get("event") == "clear":
        return f"RESOLVED: mail to {domain} is flowing again (queue drained below {payload.get('threshold')})"
    text = (f"DELAYED: {payload.get('messages', '?')} message(s) to {domain} queued, "
            f"oldest {payload.get('oldest_age', '?')}")
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
    return text


@dataclass
class LogNotifier:
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    name: str = "log"

    def send(self, payload: dict[str, Any]) -> None:
        print(f"mxdoctor watch: {headline(payload)}", file=self.stream, flush=True)


@dataclass
class WebhookNotifier:
    url: str
    timeout: float = 10.0
    name: str = "webhook"

    def send(self, payload: dict[str, Any]) -> None:
        body = json.dumps({"text": headline(payload), **payload}, default=str).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": str(payload.get("id", ""))},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                response.read(65536)
                if response.status >= 300:
                    raise NotifyError(f"webhook answered HTTP {response.status}")
        except urllib.error.HTTPError as exc:
            raise NotifyError(f"webhook answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotifyError(f"webhook unreachable: {reason}") from None


@dataclass
class EmailNotifier:
    relay: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 20.0
    name: str = "email"

    def message(self, payload: dict[str, Any]) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Subject"] = f"[mxdoctor] {headline(payload)[:120]}"
        msg["X-Mxdoctor-Event"] = str(payload.get("id", ""))
        msg.set_content(headline(payload) + "\n\n" + json.dumps(payload, indent=2, default=str) + "\n")
        return msg

    def send(self, payload: dict[str, Any]) -> None:
        import aiosmtplib

        async def go() -> None:
            await aiosmtplib.send(
                self.message(payload),
                hostname=self.relay,
                port=self.port,
                start_tls=self.starttls,
                use_tls=False,
                username=self.username,
                password=self.password,
                timeout=self.timeout,
            )

        try:
            asyncio.run(asyncio.wait_for(go(), self.timeout * 2))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise NotifyError(f"mail relay {self.relay}:{self.port}: {exc}") from None
