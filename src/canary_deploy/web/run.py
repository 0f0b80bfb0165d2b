"""Starting the dashboard: bind first (so a free port is known and the URL can be printed
before serving), then serve until interrupted."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import uvicorn

from canary_deploy.config import Settings
from canary_deploy.errors import UsageError
from canary_deploy.rollout import service
from canary_deploy.targets import open_target
from canary_deploy.web.access import Access, check_bind
from canary_deploy.web.server import Dashboard
from canary_deploy.web.snapshot import PACES, Reader


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free one
    allow_control: bool = False
    allow_remote: bool = False
    token: str | None = None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a UsageError that says why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror}",
            hint="pick another --port (0 picks a free one)",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(access: Access, sock: socket.socket) -> str:
    host = access.host if ":" not in access.host else f"[{access.host}]"
    if access.remote and host in ("0.0.0.0", "[::]"):
        host = socket.gethostname()
    url = f"http://{host}:{sock.getsockname()[1]}/"
    return url + (f"?token={quote(access.access_token)}" if access.access_token else "")


def _server(settings: Settings, options: Options) -> tuple[uvicorn.Server, socket.socket, str]:
    """The bound socket, the server that will serve it, and the URL to open."""
    check_bind(options.host, allow_remote=options.allow_remote, token=options.token)
    sock = bind(options.host, options.port)
    try:
        access = Access(
            options.host,
            sock.getsockname()[1],
            allow_control=options.allow_control,
            access_token=options.token,
        )
        target = open_target(settings)
        pace = PACES.get(settings.target, PACES["local"])
        reader = Reader(target, lambda: service.existing_store(settings), pace)
        dashboard = Dashboard(settings, access, reader, pace)
        config = uvicorn.Config(
            dashboard.app(),
            log_level="warning",
            access_log=False,
            lifespan="on",
            # Open pages keep their event streams: stopping closes them instead of waiting.
            timeout_graceful_shutdown=1,
        )
    except BaseException:
        sock.close()
        raise
    return uvicorn.Server(config), sock, url_of(access, sock)


def serve(settings: Settings, options: Options, ready: Callable[[str], None]) -> None:
    """Serve the dashboard until Ctrl-C; `ready` gets the URL to open once bound."""
    server, sock, url = _server(settings, options)
    try:
        ready(url)
        server.run(sockets=[sock])
    finally:
        sock.close()


@contextmanager
def background(settings: Settings, options: Options = Options()) -> Iterator[str]:
    """Serve the dashboard from a thread while the block runs (e.g. beside `canary demo`);
    yields its URL, and stops it (open pages included) on the way out."""
    server, sock, url = _server(settings, options)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="dashboard", daemon=True
    )
    thread.start()
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
