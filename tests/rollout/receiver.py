"""A webhook receiver for tests: a tiny HTTP server on 127.0.0.1 that keeps every JSON
body it is sent, and answers with the status the test sets."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.lock = threading.Lock()
        self.url = ""
        # Called with each body before it is answered (the sender is still waiting).
        self.on_post: Callable[[dict[str, Any]], None] | None = None

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.bodies)


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A running receiver; stopped (and its port closed) on exit."""
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with got.lock:
                got.bodies.append(body)
                got.headers.append(dict(self.headers))
                status = got.status
            if got.on_post is not None:
                got.on_post(body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
