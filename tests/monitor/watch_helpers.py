"""Helpers of the watch tests: loopback webhook receivers (a plain one, and one that goes down or trickles
on demand) and postqueue -j listings written on demand."""

from __future__ import annotations

import json
import socket
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


class FlakyReceiver:
    """A webhook receiver on one loopback port whose mode the test switches: ``down`` (nothing listens,
    so connections are refused), ``trickle`` (reads the request, then answers one byte a second) and
    ``up`` (answers 200 at once). ``bodies`` holds the bodies it acknowledged, in arrival order."""

    def __init__(self, mode: str = "up") -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.bodies: list[dict[str, Any]] = []
        self.trickling = 0  # requests being answered a byte a second right now
        self.trickled = 0  # requests ever answered that way
        self.mode = "down"
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.set_mode(mode)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def set_mode(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
            if mode == "down" and self._listener is not None:
                self._listener.close()
                self._listener = None
            elif mode != "down" and self._listener is None:
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", self.port))
                listener.listen(64)
                listener.settimeout(0.1)
                self._listener = listener
                threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        self.set_mode("down")

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed: the receiver is down
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    body += chunk
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                if self.mode == "trickle":
                    with self._lock:
                        self.trickling += 1
                        self.trickled += 1
                    try:
                        for i in range(len(answer)):
                            conn.sendall(answer[i:i + 1])
                            time.sleep(1.0)
                    finally:
                        with self._lock:
                            self.trickling -= 1
                    return  # a client that waited this long gets no credit: it has given up long ago
                with self._lock:
                    self.bodies.append(json.loads(body))
                conn.sendall(answer)
            except OSError:
                return
