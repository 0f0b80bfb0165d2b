"""Run a balancer with its admin socket until interrupted (`canary balancer`)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from canary_deploy.backend import Role
from canary_deploy.balancer.admin import AdminServer, balancer_routes
from canary_deploy.balancer.config import BalancerConfig
from canary_deploy.balancer.server import Balancer
from canary_deploy.errors import OperationFailed, UsageError


def parse_endpoint(text: str, what: str) -> tuple[str, int]:
    """`host:port` (or `:port`, host 127.0.0.1) into a pair, with a clear error."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"{what} must be host:port, got {text!r}", hint="e.g. 127.0.0.1:9001")
    return host or "127.0.0.1", int(port)


def parse_endpoints(text: str, what: str) -> list[tuple[str, int]]:
    """A comma-separated list of `host:port`."""
    return [parse_endpoint(part, what) for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Ready:
    """Where a started balancer listens, for the CLI to print."""

    url: str
    admin_socket: Path


def serve(
    config: BalancerConfig,
    targets: dict[Role, list[tuple[str, int]]],
    admin_socket: Path,
    on_ready: Callable[[Ready], None],
) -> None:
    """Start, call `on_ready`, run until SIGINT/SIGTERM, then shut down cleanly."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(config, targets, admin_socket, on_ready))
    else:
        uvloop.run(_serve(config, targets, admin_socket, on_ready))


async def _serve(
    config: BalancerConfig,
    targets: dict[Role, list[tuple[str, int]]],
    admin_socket: Path,
    on_ready: Callable[[Ready], None],
) -> None:
    balancer = Balancer(config)
    for role, endpoints in targets.items():
        for host, port in endpoints:
            balancer.register_target(role, f"{host}:{port}", host, port)
    admin = AdminServer(admin_socket)
    balancer_routes(admin, balancer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await balancer.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OperationFailed(
                    f"{config.host}:{config.port} is already in use",
                    hint="pick another port with --listen",
                ) from None
            raise OperationFailed(f"cannot listen on {config.host}:{config.port}: {exc}") from None
        try:
            await admin.start()
        except OSError as exc:
            raise OperationFailed(
                f"cannot open the admin socket {admin_socket}: {exc.strerror or exc}",
                hint=_socket_hint(exc),
            ) from None
        on_ready(Ready(f"http://{config.host}:{balancer.port}", admin_socket))
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await admin.stop()
        await balancer.stop()


def _socket_hint(exc: OSError) -> str:
    if exc.errno is None and "too long" in str(exc):  # socket.bind: "AF_UNIX path too long"
        return "a Unix socket's path has at most 107 bytes: pass a shorter --admin-socket PATH"
    return "another balancer may be running; pass --admin-socket PATH"
