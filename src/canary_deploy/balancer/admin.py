"""The admin interface: HTTP/1.1 + JSON on a unix socket (mode 0600), server and client."""

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
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from canary_deploy.backend import GROUPS, Version
from canary_deploy.errors import CanaryError, OperationFailed, UsageError
from canary_deploy.weights import Weights

if TYPE_CHECKING:
    from canary_deploy.balancer.server import Balancer

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


class AdminServer:
    """Routes `METHOD /path/{param}` to async handlers; one request per connection."""

    def __init__(self, socket_path: str | Path) -> None:
        self.socket_path = Path(socket_path)
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._server: asyncio.Server | None = None

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """`path` may hold `{name}` segments; they reach the handler in the query dict."""
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
        self._routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

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
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, content_type, payload = await self._respond(reader)
            writer.write(
                f"HTTP/1.1 {status} {http.client.responses.get(status, 'Status')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *header_lines = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        length = 0
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length > MAX_BODY_BYTES:
            return _error(413, "request body too large")
        raw = await reader.readexactly(length) if length else b""
        url = urlsplit(target)
        query = dict(parse_qsl(url.query))
        allowed = []
        for route_method, pattern, handler in self._routes:
            match = pattern.match(url.path)
            if match is None:
                continue
            if route_method != method.upper():
                allowed.append(route_method)
                continue
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError as exc:
                return _error(400, f"request body is not JSON: {exc}")
            try:
                result = await handler(body, {**query, **match.groupdict()})
            except CanaryError as exc:
                return _error(_status_of(exc), exc.message, exc.hint)
            except Exception as exc:  # a bug: report it to the caller rather than hang up
                return _error(500, f"internal error: {type(exc).__name__}: {exc}")
            if isinstance(result, str):
                return 200, "text/plain; version=0.0.4", result.encode()
            return 200, "application/json", json.dumps(result).encode()
        if allowed:
            return _error(405, f"{method} not allowed on {url.path}; use {', '.join(allowed)}")
        return _error(404, f"no route for {method} {url.path}")


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


def _float(query: dict[str, str], name: str, default: float | None = None) -> float:
    raw = query.get(name)
    if raw is None:
        if default is None:
            raise UsageError(f"query parameter {name!r} is required")
        return default
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw!r}") from None


def _floats(query: dict[str, str], name: str) -> list[float]:
    raw = query.get(name, "")
    try:
        return [float(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers, got {raw!r}") from None


def weights_from_body(body: Any) -> Weights:
    """The body of `PUT /weights`: {"stable": S, "canary": C} and an optional
    "baseline": B (0 when absent); integers (or integer strings) summing to 100."""
    if not isinstance(body, dict) or not {"stable", "canary"} <= body.keys():
        raise UsageError('weights need a JSON body {"stable": S, "canary": C, "baseline": B}')
    unknown = sorted(str(k) for k in body.keys() - set(GROUPS))
    if unknown:
        raise UsageError(
            f"unknown target group {unknown[0]!r} in weights",
            hint="the target groups are stable, canary and baseline",
        )
    values: list[int] = []
    for name in GROUPS:
        raw = body.get(name, 0)
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise UsageError(f"{name} weight must be an integer, got {raw!r}")
        values.append(raw)
    return Weights(*values)


def group_of(name: str, *, status: int = 400) -> Version:
    """A target group named in a request, or a clear error."""
    for group in GROUPS:
        if name == group:
            return group
    raise AdminError(
        status, f"unknown target group {name!r}", hint="use stable, canary or baseline"
    )


def balancer_routes(server: AdminServer, balancer: Balancer) -> None:
    """Register the balancer's admin routes on `server`: weights, targets, metrics."""
    _weight_routes(server, balancer)
    _target_routes(server, balancer)
    _metrics_routes(server, balancer)


def _weight_routes(server: AdminServer, balancer: Balancer) -> None:
    """GET and PUT /weights: the listener's weights."""

    async def get_weights(body: Any, query: dict[str, str]) -> Any:
        return balancer.get_weights().to_dict()

    async def put_weights(body: Any, query: dict[str, str]) -> Any:
        balancer.set_weights(weights_from_body(body))
        return balancer.get_weights().to_dict()

    server.add_route("GET", "/weights", get_weights)
    server.add_route("PUT", "/weights", put_weights)


def _target_routes(server: AdminServer, balancer: Balancer) -> None:
    """/targets: each group's targets and their health; register and deregister one."""

    async def get_targets(body: Any, query: dict[str, str]) -> Any:
        return {g: [asdict(t) for t in ts] for g, ts in balancer.target_health().items()}

    async def post_targets(body: Any, query: dict[str, str]) -> Any:
        if not isinstance(body, dict):
            raise UsageError('body must be {"group", "target_id", "host", "port"}')
        try:
            group, target_id = str(body["group"]), str(body["target_id"])
            host, port = str(body.get("host", "127.0.0.1")), int(body["port"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"invalid target: {exc}") from None
        balancer.register_target(group_of(group), target_id, host, port)
        return await get_targets(None, {})

    async def delete_target(body: Any, query: dict[str, str]) -> Any:
        group = group_of(query["group"], status=404)
        delay = query.get("delay_s")
        await balancer.deregister_target(
            group,
            query["id"],
            delay_s=None if delay is None else _float(query, "delay_s"),
        )
        return {"deregistered": query["id"], "group": group}

    server.add_route("GET", "/targets", get_targets)
    server.add_route("POST", "/targets", post_targets)
    server.add_route("DELETE", "/targets/{group}/{id}", delete_target)


def _metrics_routes(server: AdminServer, balancer: Balancer) -> None:
    """Prometheus text, per-group counts and quantiles, and raw buckets for a window."""

    async def get_metrics(body: Any, query: dict[str, str]) -> Any:
        return balancer.metrics.prometheus_text()

    async def get_counts(body: Any, query: dict[str, str]) -> Any:
        counts = balancer.metrics.counts(
            _float(query, "start"), _float(query, "end"), _floats(query, "thresholds")
        )
        return {v: asdict(c) for v, c in counts.items()}

    async def get_quantiles(body: Any, query: dict[str, str]) -> Any:
        version = group_of(query.get("version", "canary"))
        qs = _floats(query, "qs") or [0.5, 0.95, 0.99]
        values = balancer.metrics.quantiles(
            version,
            _float(query, "start"),
            _float(query, "end"),
            qs,
        )
        return {"version": version, "qs": qs, "quantiles": list(values)}

    async def get_buckets(body: Any, query: dict[str, str]) -> Any:
        return balancer.metrics.export_buckets(_float(query, "since", 0.0))

    async def get_rejections(body: Any, query: dict[str, str]) -> Any:
        return balancer.metrics.rejections()

    server.add_route("GET", "/metrics", get_metrics)
    server.add_route("GET", "/counts", get_counts)
    server.add_route("GET", "/quantiles", get_quantiles)
    server.add_route("GET", "/buckets", get_buckets)
    server.add_route("GET", "/rejections", get_rejections)
