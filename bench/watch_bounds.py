"""Benchmark: the time bounds of ``mxdoctor watch`` against a webhook that trickles a byte a second.

Prints the wall time of each send with ``--webhook-timeout`` (the whole request is bounded, so about
the timeout, not the ~60 s a per-read bound gives), and the time from SIGTERM to exit of a watch that
is idle, in the middle of such a send, and in the middle of a diagnosis that takes five minutes.
Everything runs on 127.0.0.1. Usage: python bench/watch_bounds.py [--timeout S] [--sends N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mxdoctor.monitor import notify

ROOT = Path(__file__).resolve().parents[1]
DNS = "Host or domain name not found. Name service error for name=mx.a.example type=AAAA: Host not found, try again"


class Trickler:
    """Accepts, reads the request, answers one byte a second; counts requests in progress."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.active = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        self.active += 1
        try:
            with conn:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                    conn.sendall(bytes([byte]))
                    time.sleep(1.0)
        except OSError:
            pass
        finally:
            self.active -= 1


def write_queue(path: Path, reason: str) -> None:
    record = {"queue_name": "deferred", "queue_id": "Q1", "arrival_time": int(time.time() - 7200),
              "message_size": 300, "sender": "s@example.org",
              "recipients": [{"address": "m@a.example", "delay_reason": reason}]}
    path.write_text(json.dumps(record) + "\n")


def sigterm_exit(args: list[str], ready: object, env: dict[str, str]) -> str:
    """Start watch, wait until ``ready()`` is true, send SIGTERM; seconds until it exited, and its status."""
    proc = subprocess.Popen([sys.executable, "-m", "mxdoctor.cli", "watch", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not ready() and time.monotonic() < deadline:  # type: ignore[operator]
            time.sleep(0.05)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(60)
        return f"{time.monotonic() - started:.2f}s (exit status {status})"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=2.0, help="the webhook timeout in seconds (2)")
    parser.add_argument("--sends", type=int, default=3, help="sends to time (3)")
    opts = parser.parse_args()
    trickler = Trickler()

    hook = notify.WebhookNotifier(trickler.url, timeout=opts.timeout)
    times = []
    for _ in range(opts.sends):
        started = time.monotonic()
        try:
            hook.send({"id": "a.example#bench.1:alert", "event": "alert", "domain": "a.example"})
        except notify.NotifyError:
            pass
        times.append(time.monotonic() - started)
    print(f"trickling webhook, --webhook-timeout {opts.timeout:g}s: per send "
          + ", ".join(f"{t:.2f}s" for t in times) + f" (median {statistics.median(times):.2f}s)")

    with tempfile.TemporaryDirectory(prefix="mxdoctor-bench-watch-") as tmp:
        work = Path(tmp)
        queue = work / "queue.jsonl"
        (work / "slowdiag.py").write_text(
            "import pathlib, time\ndef diagnose(domain):\n"
            f"    pathlib.Path({str(work / 'diagnosing')!r}).touch()\n    time.sleep(300)\n    return {{}}\n")
        env = {**os.environ, "PYTHONPATH": f"{work}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        base = [str(queue), "--interval", "1s", "--alert-age", "30m", "--no-log"]

        write_queue(queue, "connect to mx.a.example[192.0.2.9]:25: Connection timed out")
        state_file = work / "idle.sqlite"
        polled = [0.0]

        def between_polls() -> bool:  # the first poll is over (its state is written), the second not due
            if not polled[0] and state_file.exists():
                polled[0] = time.monotonic()
            return bool(polled[0]) and time.monotonic() - polled[0] > 0.5

        idle = sigterm_exit([*base, "--no-diagnose", "--state", str(state_file)], between_polls, env)
        print(f"SIGTERM to exit, idle between polls: {idle}")

        fresh = Trickler()  # the sends above may still be trickling into closed sockets
        during_send = sigterm_exit(
            [*base, "--no-diagnose", "--state", str(work / "send.sqlite"), "--webhook", fresh.url,
             "--webhook-timeout", "60s"], lambda: fresh.active > 0, env)
        print(f"SIGTERM to exit, during a trickling send (--webhook-timeout 60s): {during_send}")

        write_queue(queue, DNS)
        during_diagnosis = sigterm_exit(
            [*base, "--state", str(work / "diag.sqlite"), "--diagnoser", "slowdiag:diagnose"],
            (work / "diagnosing").exists, env)
        print(f"SIGTERM to exit, during a 300 s diagnosis: {during_diagnosis}")


if __name__ == "__main__":
    main()
