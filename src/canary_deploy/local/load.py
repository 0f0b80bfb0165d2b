"""`canary load`: an HTTP/1.1 keep-alive load generator (asyncio + httptools) that counts
which version answered, errors and latency percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools

from canary_deploy.backend import Target
from canary_deploy.errors import UsageError

UNKNOWN_VERSION = "?"


def request_body(data: str | None) -> bytes | None:
    """`--data`: a JSON body, checked before anything is sent."""
    if data is None:
        return None
    try:
        json.loads(data)
    except ValueError as exc:
        raise UsageError(f"--data is not valid JSON: {exc}") from None
    return data.encode()


def balancer_counts(target: Target | None, result: LoadResult) -> dict[str, int] | None:
    """Requests per target group as the local balancer counted them during the run, for
    responses that do not say their version (everything but /whoami and /predict)."""
    if target is None or target.name != "local" or UNKNOWN_VERSION not in result.by_version:
        return None
    end = result.started + result.elapsed_s
    return {v: c.requests for v, c in target.metrics.counts(result.started - 1, end + 1).items()}


@dataclass(frozen=True)
class LoadPlan:
    """What to send. `requests` N as fast as `concurrency` allows (or at `rate`), or `rate`
    requests/s for `duration_s` (no rate: as fast as possible for the duration)."""

    url: str
    path: str = "/whoami"
    requests: int | None = None
    rate: float | None = None
    duration_s: float | None = None
    concurrency: int = 8
    method: str = "GET"
    body: bytes | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"load needs an http:// URL, got {self.url!r}")
        if not self.path.startswith("/"):
            raise UsageError(f"path must start with '/', got {self.path!r}")
        if self.requests is not None and self.requests < 1:
            raise UsageError(f"number of requests must be at least 1, got {self.requests}")
        if self.rate is not None and self.rate <= 0:
            raise UsageError(f"rate must be positive, got {self.rate}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise UsageError(f"duration must be positive, got {self.duration_s}")
        if self.concurrency < 1:
            raise UsageError(f"concurrency must be at least 1, got {self.concurrency}")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80


@dataclass(frozen=True)
class Sample:
    """One request's outcome; status 0 means no HTTP response (connection error, timeout)."""

    index: int
    status: int
    latency_s: float
    version: str
    task_id: str | None = None
    error: str | None = None
    sent: float = 0.0  # time.perf_counter() when it was due (latency counts from here)
    written: float = 0.0  # time.perf_counter() when it went on the wire (0: it never did)

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500


@dataclass
class VersionSummary:
    version: str
    requests: int = 0
    errors: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the latencies (q in 0..1)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(q * len(ordered)))
        return ordered[rank - 1]


@dataclass
class LoadResult:
    started: float = 0.0  # epoch seconds
    elapsed_s: float = 0.0
    by_version: dict[str, VersionSummary] = field(default_factory=dict)
    total: VersionSummary = field(default_factory=lambda: VersionSummary("all"))
    statuses: dict[int, int] = field(default_factory=dict)
    last_error: str | None = None

    def add(self, sample: Sample) -> None:
        for summary in (
            self.by_version.setdefault(sample.version, VersionSummary(sample.version)),
            self.total,
        ):
            summary.requests += 1
            summary.errors += sample.failed
            if sample.status:
                summary.latencies.append(sample.latency_s)
        self.statuses[sample.status] = self.statuses.get(sample.status, 0) + 1
        if sample.error:
            self.last_error = sample.error

    @property
    def throughput(self) -> float:
        return self.total.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def unanswered(self) -> bool:
        """Requests were sent and not one got a response."""
        return bool(self.total.requests) and self.statuses.get(0, 0) == self.total.requests

    def to_dict(self) -> dict[str, Any]:
        """The summary `load -o json` prints."""

        def one(s: VersionSummary) -> dict[str, Any]:
            return {
                "requests": s.requests,
                "errors": s.errors,
                "error_rate": s.error_rate,
                "p50_s": s.percentile(0.5),
                "p95_s": s.percentile(0.95),
                "p99_s": s.percentile(0.99),
            }

        return {
            "elapsed_s": self.elapsed_s,
            "requests_per_s": self.throughput,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "versions": {v: one(s) for v, s in sorted(self.by_version.items())},
            "total": one(self.total),
        }


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `request()` sends and waits for one full response."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.chunks: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they do have write().
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionError("connection closed by peer"))

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            body = b"".join(self.chunks)
            keep = bool(self.parser.should_keep_alive())
            self.waiter.set_result((self.parser.get_status_code(), body, keep))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def request(self, raw: bytes) -> tuple[int, bytes, bool]:
        assert self.transport is not None
        self.chunks = []
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True


def _request_bytes(plan: LoadPlan) -> bytes:
    host = urlsplit(plan.url).netloc
    lines = [f"{plan.method} {plan.path} HTTP/1.1", f"Host: {host}", "User-Agent: canary-load"]
    if plan.body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(plan.body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (plan.body or b"")


def _identify(body: bytes) -> tuple[str, str | None]:
    """Version and task id from a /whoami-style JSON body, if it has them."""
    if not body.startswith(b"{") or b'"version"' not in body or len(body) > 65536:
        return UNKNOWN_VERSION, None
    try:
        doc = json.loads(body)
    except ValueError:
        return UNKNOWN_VERSION, None
    task = doc.get("task_id")
    return str(doc.get("version", UNKNOWN_VERSION)), None if task is None else str(task)


class LoadGenerator:
    """Runs a plan; `on_sample` is called for every response (progress, per-line output)."""

    def __init__(self, plan: LoadPlan, on_sample: Callable[[Sample], None] | None = None) -> None:
        self.plan = plan
        self.on_sample = on_sample
        self.result = LoadResult()
        self._raw = _request_bytes(plan)
        self._issued = 0

    def run(self, stop: threading.Event | None = None) -> LoadResult:
        """Run to completion (or until `stop` is set) in a fresh event loop."""
        runner: Callable[..., LoadResult] = asyncio.run
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
        return runner(self.run_async(stop))

    async def run_async(self, stop: threading.Event | None = None) -> LoadResult:
        plan = self.plan
        self.result.started = time.time()
        t0 = time.perf_counter()
        deadline = None if plan.duration_s is None else t0 + plan.duration_s
        queue: asyncio.Queue[tuple[int, float] | None] | None = None
        producer = None
        if plan.rate is not None:
            queue = asyncio.Queue()
            producer = asyncio.ensure_future(self._schedule(queue, t0, deadline, stop))
        workers = [
            asyncio.ensure_future(self._worker(queue, deadline, stop))
            for _ in range(plan.concurrency)
        ]
        try:
            if producer is not None:
                await producer
                assert queue is not None
                for _ in workers:
                    queue.put_nowait(None)
            await asyncio.gather(*workers)
        finally:
            for job in [*workers, producer]:
                if job is not None:
                    job.cancel()
        self.result.elapsed_s = time.perf_counter() - t0
        return self.result

    def _take(self) -> int | None:
        if self.plan.requests is not None and self._issued >= self.plan.requests:
            return None
        self._issued += 1
        return self._issued

    async def _schedule(
        self,
        queue: asyncio.Queue[tuple[int, float] | None],
        t0: float,
        deadline: float | None,
        stop: threading.Event | None,
    ) -> None:
        """Open loop: one slot every 1/rate s, whether or not earlier requests finished."""
        assert self.plan.rate is not None
        interval = 1.0 / self.plan.rate
        n = 0
        while True:
            due = t0 + n * interval
            if (deadline is not None and due >= deadline) or (stop is not None and stop.is_set()):
                return
            index = self._take()
            if index is None:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((index, due))
            n += 1

    async def _worker(
        self,
        queue: asyncio.Queue[tuple[int, float] | None] | None,
        deadline: float | None,
        stop: threading.Event | None,
    ) -> None:
        conn: _Connection | None = None
        loop = asyncio.get_running_loop()
        try:
            while True:
                if queue is not None:
                    item = await queue.get()
                    if item is None:
                        return
                    index, sent = item  # latency from the scheduled time: no coordinated omission
                else:
                    if (stop is not None and stop.is_set()) or (
                        deadline is not None and time.perf_counter() >= deadline
                    ):
                        return
                    taken = self._take()
                    if taken is None:
                        return
                    index, sent = taken, time.perf_counter()
                if conn is None or conn.closed:
                    conn = await self._connect(loop)
                sample, conn = await self._one(conn, index, sent, loop)
                self.result.add(sample)
                if self.on_sample is not None:
                    self.on_sample(sample)
        finally:
            if conn is not None:
                conn.close()

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(_Connection, self.plan.host, self.plan.port),
                self.plan.timeout_s,
            )
        except (OSError, TimeoutError):
            return None
        return conn

    async def _one(
        self, conn: _Connection | None, index: int, sent: float, loop: asyncio.AbstractEventLoop
    ) -> tuple[Sample, _Connection | None]:
        plan = self.plan

        def failure(error: str) -> tuple[Sample, None]:
            elapsed = time.perf_counter() - sent
            return Sample(index, 0, elapsed, UNKNOWN_VERSION, None, error, sent), None

        if conn is None:
            return failure(f"cannot connect to {plan.host}:{plan.port}")
        written = time.perf_counter()
        try:
            status, body, keep = await asyncio.wait_for(conn.request(self._raw), plan.timeout_s)
        except (ConnectionError, OSError) as exc:
            conn.close()
            return failure(str(exc))
        except TimeoutError:
            conn.close()
            return failure(f"no response within {plan.timeout_s:.0f} s")
        latency = time.perf_counter() - sent
        if not keep:
            conn.close()
        version, task_id = _identify(body)
        sample = Sample(index, status, latency, version, task_id, None, sent, written)
        return sample, (conn if keep else None)
