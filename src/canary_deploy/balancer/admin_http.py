"""The admin socket's transport: HTTP/1.1 + JSON on a unix socket (mode 0600), one
request per connection; the server routes `METHOD /path/{param}` to async handlers, the
client is synchronous (stdlib only, usable from the CLI). What the routes mean is
`admin.py`'s."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import http.client
import json
import os
import re
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from canary_deploy.errors import CanaryError, OperationFailed, UsageError

Handler = Callable[[Any, dict[str, str]], Awaitable[Any]]
MAX_BODY_BYTES = 1024 * 1024


class AdminError(CanaryError):
    """An admin request that fails with a specific HTTP status."""

    def __init__(self, status: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def _status_of(exc: Exception) -> int:
    if isinstance(exc, AdminError):
        return exc.status
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, CanaryError):
        return 409
    return 500


# What add_route does when the route is taken: keep the one registered first (the
# default, and the contract the local daemon and data plane are written against), replace
# it (an explicit override), or refuse (a route registered twice by mistake).
IfTaken = Literal["keep", "replace", "raise"]


class Routes:
    """Routes `METHOD /path/{param}` to async handlers; one request per connection. Where
    the connections come from is the subclass's: `AdminServer` (a unix socket) or
    `LoopbackServer` (TCP on 127.0.0.1)."""

    def __init__(self) -> None:
        # (method, path as registered) -> its pattern and handler, in registration order.
        self._routes: dict[tuple[str, str], tuple[re.Pattern[str], Handler]] = {}
        self._server: asyncio.Server | None = None

    def add_route(
        self, method: str, path: str, handler: Handler, *, if_taken: IfTaken = "raise"
    ) -> None:
        """`path` may hold `{name}` segments; they reach the handler in the query dict.
        A route already taken is refused (ValueError), or kept or replaced as `if_taken`
        says: an override is always explicit."""
        key = (method.upper(), path)
        if key in self._routes:
            if if_taken == "keep":
                return
            if if_taken == "raise":
                raise ValueError(f"{key[0]} {path} is already routed")
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
        self._routes[key] = (re.compile(f"^{pattern}$"), handler)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                status, content_type, payload = await self._respond(reader)
            except asyncio.LimitOverrunError:
                status, content_type, payload = _error(400, "request head too large")
            writer.write(
                f"HTTP/1.1 {status} {http.client.responses.get(status, 'Status')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left before its request, or its answer, was whole
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        try:
            method, target, length = _parse_head(head)
        except AdminError as exc:
            return _error(exc.status, exc.message)
        raw = await reader.readexactly(length) if length else b""
        url = urlsplit(target)
        allowed = []
        for (route_method, _), (pattern, handler) in self._routes.items():
            match = pattern.match(url.path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            path_params = {name: unquote(value) for name, value in match.groupdict().items()}
            params = {**dict(parse_qsl(url.query)), **path_params}
            return await _call(handler, raw, params)
        if allowed:
            return _error(405, f"{method} not allowed on {url.path}; use {', '.join(allowed)}")
        return _error(404, f"no route for {method} {url.path}")


class AdminServer(Routes):
    """The routes on a unix socket only its owner can open (mode 0600)."""

    def __init__(self, socket_path: str | Path) -> None:
        super().__init__()
        self.socket_path = Path(socket_path)

    async def start(self) -> None:
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            if _is_listening(path):
                raise OSError(errno.EADDRINUSE, f"{path} is in use by a running process")
            path.unlink()  # stale socket from a process that died
        self._server = await asyncio.start_unix_server(self._handle, path=str(path))
        os.chmod(path, 0o600)  # the socket can change live traffic: owner only

    async def stop(self) -> None:
        await self._close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class LoopbackServer(Routes):
    """The routes over TCP on 127.0.0.1 only: for read-only routes other programs poll
    (Prometheus scraping /metrics). Anything that changes the stack stays on the socket."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.host = "127.0.0.1"
        self.port = port  # 0 picks a free one; `start` sets the one bound

    async def start(self) -> None:
        """Listen; OSError (EADDRINUSE) when the port is taken."""
        self._server = await asyncio.start_server(self._handle, host=self.host, port=self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self._close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _parse_head(head: str) -> tuple[str, str, int]:
    """The method, the target and the body's length of a request head, or a 400 (413 for
    a body over MAX_BODY_BYTES)."""
    request_line, *header_lines = head.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1].startswith("/"):
        raise AdminError(400, f"malformed request line {request_line[:80]!r}")
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            if not value.strip().isdigit():
                raise AdminError(400, f"invalid Content-Length {value.strip()[:20]!r}")
            length = int(value.strip())
    if length > MAX_BODY_BYTES:
        raise AdminError(413, "request body too large")
    return parts[0].upper(), parts[1], length


async def _call(handler: Handler, raw: bytes, params: dict[str, str]) -> tuple[int, str, bytes]:
    """One handler's answer: JSON (text for a str result), or its error as JSON."""
    try:
        body = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"request body is not JSON: {exc}")
    try:
        result = await handler(body, params)
    except CanaryError as exc:
        return _error(_status_of(exc), exc.message, exc.hint)
    except Exception as exc:  # a bug: report it to the caller rather than hang up
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")
    if isinstance(result, str):
        return 200, "text/plain; version=0.0.4", result.encode()
    return 200, "application/json", json.dumps(result).encode()


def _error(status: int, message: str, hint: str | None = None) -> tuple[int, str, bytes]:
    doc = {"error": message, "hint": hint}
    return status, "application/json", json.dumps(doc).encode()


def _is_listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class AdminClient:
    """Synchronous client for an AdminServer (stdlib only, usable from the CLI)."""

    def __init__(self, socket_path: str | Path, timeout_s: float = 30) -> None:
        self.socket_path = Path(socket_path)
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """JSON (or text) result of one request; errors become CanaryErrors."""
        conn = _UnixHTTPConnection(str(self.socket_path), self.timeout_s)
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (FileNotFoundError, ConnectionRefusedError):
            raise OperationFailed(
                f"nothing is listening on the admin socket {self.socket_path}",
                hint="start it first (`canary balancer ...` or `canary deploy`)",
            ) from None
        except OSError as exc:
            raise OperationFailed(
                f"admin socket {self.socket_path}: {exc.strerror or exc}"
            ) from None
        finally:
            conn.close()
        is_json = (response.getheader("Content-Type") or "").startswith("application/json")
        result = json.loads(data) if is_json and data else data.decode()
        if response.status >= 400:
            message = result.get("error") if isinstance(result, dict) else str(result)
            hint = result.get("hint") if isinstance(result, dict) else None
            error_type = UsageError if response.status in (400, 404, 405) else OperationFailed
            raise error_type(str(message), hint=hint)
        return result
