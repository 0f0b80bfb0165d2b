"""The balancer's hot path in instructions per request, under valgrind (callgrind).

An in-process loop, no network and no event loop running: one client connection and
one pooled target connection, wired as tests/balancer/conftest.py wires them, with
transports that only count what is written. Each round sends one simple GET through
the client's fast path and feeds the target's answer (one whole response in one read)
through the target's fast path, which pools the connection again for the next round.
The target connection's transport reports a real socket (one end of a socketpair that
never speaks), so the check for unread bytes on a reused connection runs as it does on
a real connection.

Two contests: every response has the same head (the response head cache always hits),
or a unique `X-Request-Id` in every head (it never hits).

Each figure is callgrind's user-space instruction count of a run with N rounds minus
that of a run with N/5 rounds, over the difference in rounds: interpreter start-up,
imports and wiring cancel out; the loop's own few instructions per round stay in. Both
runs first do WARMUP rounds (the head cache is full, every code path has run once).

    CANARY_PURE_PYTHON=1 python bench/balancer_instructions.py \\
        --src /tmp/base12/src --src src

measures each source tree (put first on PYTHONPATH of the measured interpreter) and
prints each figure with its ratio to the first tree's. Which build ran (pure Python or
mypyc-compiled, see canary_deploy.speedups) is printed too: the environment decides.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONTESTS = ("same", "unique")
WARMUP = 2000  # more than response_head.HEAD_CACHE_SIZE: the cache is full and evicting
REQUEST = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n"
# An nginx-like response; the unique contest adds a request id to every head.
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 20:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 6\r\nConnection: keep-alive\r\n"
    b"%b\r\nstable"
)
SAME = RESPONSE % b""


class CountingTransport:
    """Just enough of an asyncio transport: writes are counted, not kept."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock
        self.writes = 0
        self.written = 0
        self.last = b""
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.written += len(data)
        self.last = data

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading and not self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return ("10.0.0.7", 50000)
        if name == "socket":
            return self.sock
        return default


def drive(contest: str, rounds: int) -> None:
    """Run WARMUP + `rounds` rounds of `contest` in this process (the measured part)."""
    import asyncio

    from canary_deploy.balancer import metrics, proxy, routing, upstream
    from canary_deploy.weights import Weights

    # The same wiring as the tests' (the target class was renamed by the hardening).
    target_class = getattr(routing, "RegisteredTarget", None) or routing.Target
    loop = asyncio.new_event_loop()
    router = routing.Router(Weights(100, 0), "round_robin")
    target = target_class("t1", "127.0.0.1", 9001)
    target.state = "healthy"
    router.groups["stable"].targets["t1"] = target
    router.groups["stable"].refresh()
    ctx = proxy.ProxyContext(
        loop,
        router,
        metrics.MetricsRecorder(),
        idle_timeout_s=60,
        stickiness=None,
        listen_port=8080,
    )
    mine, theirs = socket.socketpair()  # theirs never sends: the poll finds nothing
    conn = upstream.UpstreamConnection(loop, ctx.metrics, target, None)
    target_side = CountingTransport(mine)
    conn.connection_made(target_side)
    target.idle.append(conn)
    client = proxy.ClientConnection(ctx)
    client_side = CountingTransport()
    client.connection_made(client_side)

    # One checked round: the request reached the target, the response the client.
    client.data_received(REQUEST)
    assert target_side.last.startswith(REQUEST[:-2]), target_side.last
    conn.data_received(SAME)
    assert client_side.last.startswith(b"HTTP/1.1 200 OK\r\n"), client_side.last
    assert client_side.last.endswith(b"\r\n\r\nstable"), client_side.last
    assert target.idle == [conn], "the target connection was not pooled again"

    client_data = client.data_received
    target_data = conn.data_received
    if contest == "same":
        for _ in range(WARMUP + rounds):
            client_data(REQUEST)
            target_data(SAME)
    else:
        for i in range(WARMUP + rounds):
            client_data(REQUEST)
            target_data(RESPONSE % (b"X-Request-Id: %d\r\n" % i))

    total = WARMUP + rounds + 1
    assert client_side.writes == total and target_side.writes == total, "a round went wrong"
    assert not client_side.closed and not target_side.closed and target.idle == [conn]
    assert b"X-Request-Id" in client_side.last or contest == "same"
    theirs.close()
    mine.close()
    loop.close()


def build_kind() -> str:
    from canary_deploy.balancer import proxy

    return "mypyc-compiled" if not proxy.__file__.endswith(".py") else "pure Python"


def callgrind_instructions(src: Path, contest: str, rounds: int, python: str) -> int:
    """User-space instructions of one driver run under callgrind."""
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(src), "PYTHONHASHSEED": "0"}
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            python,
            __file__,
            "--drive",
            contest,
            str(rounds),
        ]
        subprocess.run(command, env=env, check=True, capture_output=True)
        found = re.search(rb"^(?:summary|totals): (\d+)", out.read_bytes(), re.M)
        if found is None:
            raise SystemExit(f"no instruction count in {out}")
        return int(found.group(1))


def per_request(src: Path, contest: str, rounds: int, python: str) -> float:
    big = callgrind_instructions(src, contest, rounds, python)
    small = callgrind_instructions(src, contest, rounds // 5, python)
    return (big - small) / (rounds - rounds // 5)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--src",
        action="append",
        type=Path,
        help="a source tree holding canary_deploy/ (repeat to compare; default: src/)",
    )
    parser.add_argument("-n", "--rounds", type=int, default=20000, help="rounds per run")
    parser.add_argument("--contest", choices=(*CONTESTS, "both"), default="both")
    parser.add_argument("--python", default=sys.executable, help="the interpreter measured")
    parser.add_argument("--drive", nargs=2, metavar=("CONTEST", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.drive:
        if args.drive[0] == "kind":
            print(build_kind())
            return 0
        drive(args.drive[0], int(args.drive[1]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed")
        return 2
    sources = [s.resolve() for s in (args.src or [REPO / "src"])]
    contests = CONTESTS if args.contest == "both" else (args.contest,)
    first: dict[str, float] = {}
    print(f"instructions per request (callgrind, {args.rounds} - {args.rounds // 5} rounds)")
    for src in sources:
        env = {**os.environ, "PYTHONPATH": str(src)}
        kind = subprocess.run(
            [args.python, __file__, "--drive", "kind", "0"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for contest in contests:
            figure = per_request(src, contest, args.rounds, args.python)
            first.setdefault(contest, figure)
            print(
                f"  {src} ({kind}), {contest} heads: {figure:,.0f}"
                f"  ({figure / first[contest]:.3f} of the first)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
