"""A webhook receiver on loopback: a real HTTP server on a thread of its own (so neither a
test's event loop nor the server under test shares anything with it), recording every
request, and answering 500 to the next `fail_next` ones."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.peers.ports import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def event(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def signed_with(self, secret: str) -> bool:
        """Whether X-Transship-Signature is the HMAC-SHA256 of the body under `secret`, as
        a receiver checks it (constant-time comparison)."""
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.header("X-Transship-Signature") or "")


class WebhookReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.fail_next = 0
        self.stall_next = 0  # requests answered only after `stall_seconds`
        self.stall_seconds = 0.0
        self._lock = threading.Lock()
        self._received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    stall = receiver.stall_next > 0
                    receiver.stall_next -= 1 if stall else 0
                if stall:
                    time.sleep(receiver.stall_seconds)
                with receiver._lock:
                    status = 500 if receiver.fail_next > 0 else 200
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                    receiver._received.append(
                        Received(self.path, dict(self.headers.items()), body, status)
                    )
                answer = b"boom" if status == 500 else b"thanks"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.send_header("X-Receiver", "test")
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def events(self, action: str | None = None) -> list[Received]:
        return [r for r in self.received if action is None or r.event.get("action") == action]

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def wait_sync(self, done: Callable[[list[Received]], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.received):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {self.received!r}")
            time.sleep(0.05)

    async def wait(self, done: Callable[[list[Received]], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.received):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver got {self.received!r}")
            await asyncio.sleep(0.05)


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
