"""Serve an ASGI app with uvicorn on a thread of its own, beside the watch loop, and stop it cleanly.

The watch loop is synchronous (it sleeps between polls and runs diagnoses in threads); the web server
has its own event loop, so a slow page never delays a poll and a slow poll never blocks a page.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from mxdoctor.errors import ConfigError


class WebServer:
    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="mxdoctor-web", daemon=True)
        self.host, self.port = host, port

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; raise ConfigError when the address cannot be bound within ``timeout``."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"web: cannot listen on {self.host}:{self.port} (in use, or not an address here)")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
