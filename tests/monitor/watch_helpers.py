"""Helpers of the watch tests: a loopback webhook receiver and postqueue -j listings written on demand."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that stores every POSTed JSON body; ``fail`` makes it answer 500."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if receiver.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def write_queue(path: Path, now: float, messages: list[tuple[str, float, str]]) -> None:
    """A postqueue -j listing: (recipient, age in seconds, delay reason) per message."""
    with open(path.with_suffix(".tmp"), "w") as fh:
        for i, (rcpt, age, reason) in enumerate(messages):
            fh.write(json.dumps({
                "queue_name": "deferred", "queue_id": f"Q{i:06X}", "arrival_time": int(now - age),
                "message_size": 300, "sender": "s@example.org",
                "recipients": [{"address": rcpt, "delay_reason": reason}],
            }) + "\n")
    path.with_suffix(".tmp").replace(path)  # atomic, as a cron job writing the listing should


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "the condition") -> Any:
    """Poll ``predicate`` until it returns something true, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
