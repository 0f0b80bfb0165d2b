"""The dashboard's web server (Starlette on uvicorn): the pages, the server-sent events
that keep them live, the steering endpoint, and the guard in front of all of them."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import traceback
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from canary_deploy.config import Settings
from canary_deploy.errors import CanaryError, UsageError
from canary_deploy.rollout.model import Event, Rollout
from canary_deploy.web import actions, fragments, layout, rollout_view
from canary_deploy.web.access import ACCESS_COOKIE, Access
from canary_deploy.web.hub import Hub, sse_message
from canary_deploy.web.snapshot import Pace, Reader

STATIC = Path(__file__).parent / "static"
# Sent on every response: no framing (a confirm button must not be clickjacked), no
# script but our own, and no token leaking through a Referer.
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
KEEPALIVE_S = 15.0


class Guard:
    """In front of every route: the Host must name this server (DNS rebinding), a remote
    dashboard's access token must come with the request, and every response carries the
    security headers."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        query = scope.get("query_string", b"").decode("latin-1")
        refusal: Response | None = None
        if not self.access.host_allowed(headers.get("host")):
            refusal = PlainTextResponse("this dashboard does not answer to that Host", 421)
        elif not self.access.token_ok(headers, query):
            refusal = PlainTextResponse(
                "open the dashboard with the URL it printed (?token=…)", 401
            )
        set_cookie = self.access.access_token is not None and "token=" in query

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    out.setdefault(name, value)
                if set_cookie and refusal is None:
                    out.append(
                        "set-cookie",
                        f"{ACCESS_COOKIE}={self.access.access_token}; HttpOnly; "
                        "SameSite=Strict; Path=/",
                    )
            await send(message)

        await (refusal or self.app)(scope, receive, send_with_headers)


class Dashboard:
    """The server's state: one reader on its own thread, the hub every page listens to."""

    def __init__(
        self,
        settings: Settings,
        access: Access,
        reader: Reader,
        pace: Pace,
        *,
        act: Callable[[Settings, Any], actions.Done] = actions.carry_out,
    ) -> None:
        self.settings = settings
        self.access = access
        self.reader = reader
        self.pace = pace
        self.act = act
        self.hub = Hub()
        # The reader's thread: a store's connection stays in the thread that opened it.
        self.reading = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-read")
        self.kick = asyncio.Event()
        self.steering = asyncio.Lock()

    def _refresh(self) -> dict[str, str]:
        """In the reader's thread: read what is due, render every live part."""
        self.reader.refresh()
        snap = self.reader.snapshot
        return {
            "chain": fragments.chain(snap.status, snap.errors.get("status")),
            "traffic": fragments.traffic(
                snap.series, time.time(), self.pace, snap.errors.get("traffic")
            ),
            "rollout": rollout_view.rollout(snap.rollout, snap.errors.get("rollout")),
            "controls": rollout_view.controls(
                snap.rollout, allow_control=self.access.allow_control
            ),
            "history": fragments.history(snap.history),
            "freshness": fragments.freshness(snap),
        }

    async def poll(self) -> None:
        """Refresh forever at the fastest part's pace, sooner after a steering action."""
        loop = asyncio.get_running_loop()
        every = min(self.pace.status_s, self.pace.metrics_s, self.pace.rollout_s)
        while True:
            try:
                await self.hub.publish(await loop.run_in_executor(self.reading, self._refresh))
            except Exception:
                # A bug: say so loudly, and keep serving what was read last (every part
                # is read again at the next refresh).
                traceback.print_exc()
                print("the dashboard hit a bug in canary-deploy; please report it", file=sys.stderr)
            self.kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), every)

    async def overview(self, request: Request) -> Response:
        html = layout.overview(
            self.settings.state_name,
            self.settings.target,
            self.pace.note,
            self.hub.since(0),
            session_token=self.access.session_token if self.access.allow_control else None,
        )
        return HTMLResponse(html)

    async def events(self, request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            seen = 0
            while True:
                if seen < self.hub.version:
                    version = self.hub.version
                    yield sse_message(version, self.hub.since(seen))
                    seen = version
                elif not await self.hub.wait(seen, KEEPALIVE_S):
                    yield ": keep-alive\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )

    async def rollout_page(self, request: Request) -> Response:
        rollout_id = int(request.path_params["rollout_id"])
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self.reading, self._rollout, rollout_id)
        except CanaryError as exc:
            return PlainTextResponse(exc.message, 502)
        if found is None:
            return PlainTextResponse(f"no rollout #{rollout_id} on this stack", 404)
        r, events = found
        batches = request.query_params.get("all") == "1"
        return HTMLResponse(
            layout.rollout_page(self.settings.state_name, r, events, batches=batches)
        )

    def _rollout(self, rollout_id: int) -> tuple[Rollout, list[Event]] | None:
        store = self.reader.store()
        if store is None:
            return None
        try:
            r = store.get(rollout_id)
        except UsageError:
            return None
        return None if r.stack != store.stack else (r, store.events(rollout_id))

    async def action(self, request: Request) -> Response:
        refusal = self.access.steering_refusal(request.headers)
        if refusal is not None:
            return JSONResponse({"ok": False, "error": refusal}, 403)
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return JSONResponse({"ok": False, "error": "send JSON"}, 415)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"ok": False, "error": "the body is not JSON"}, 400)
        async with self.steering:
            try:
                done = await asyncio.to_thread(self.act, self.settings, body)
            except CanaryError as exc:
                status = 409 if isinstance(exc, UsageError) else 502
                return JSONResponse({"ok": False, "error": exc.message, "hint": exc.hint}, status)
            finally:
                self.reading.submit(self.reader.force, "status", "rollout")
                self.kick.set()
        return JSONResponse({"ok": True, "message": done.message, "result": done.doc})

    def app(self) -> ASGIApp:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            poller = asyncio.create_task(self.poll())
            try:
                yield
            finally:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
                self.reading.submit(self.reader.close).result()
                self.reading.shutdown()

        routes = [
            Route("/", self.overview),
            Route("/events", self.events),
            Route("/rollouts/{rollout_id:int}", self.rollout_page),
            Route("/api/actions", self.action, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
        return Guard(Starlette(routes=routes, lifespan=lifespan), self.access)
