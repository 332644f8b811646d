"""A real HTTP receiver for webhook tests: it records what arrives (and when, on the test's
clock), verifies every signature with the standardwebhooks package, and answers as told."""

import datetime as dt
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook as Verifier

HANG_LIMIT_S = 30.0  # a hanging answer is released by then at the latest


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: dt.datetime
    verified: bool
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Answers `status(n)` to the n-th request (from 0); "hang" holds it until released,
    "close" answers 200 and closes the connection (what it had not read yet is dropped)."""

    now: Callable[[], dt.datetime]
    secret: str | None = None
    status: Callable[[int], int | str] = lambda n: 200
    received: list[Received] = field(default_factory=list)
    # As Python's http.server answers by default: HTTP/1.0, no length, the connection closed.
    plain: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)

    def start(self, tls: ssl.SSLContext | None = None) -> "Receiver":
        """Serve (over TLS with `tls`, a server context) on a free port of 127.0.0.1."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0" if self.plain else "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the server's name for it
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = False
                if receiver.secret is not None:
                    Verifier(receiver.secret).verify(body, headers)  # raises if it is wrong
                    verified = True
                with lock:
                    n = len(receiver.received)
                    answer = receiver.status(n)
                    receiver.received.append(Received(
                        headers, body, receiver.now(), verified,
                        0 if answer == "hang" else 200 if answer == "close" else int(answer)))
                receiver.arrived.set()
                if answer == "hang":
                    receiver.release.wait(HANG_LIMIT_S)
                    self.close_connection = True  # no answer at all: the sender sees it drop
                    return
                if answer == "close":
                    self.close_connection = True
                    self.send_response(200)
                    self.send_header("connection", "close")
                else:
                    self.send_response(int(answer))
                if not receiver.plain:
                    self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
