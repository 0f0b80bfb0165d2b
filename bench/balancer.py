"""Benchmark the local balancer against nginx and the backends directly (prints figures).

Two identical nginx backends (one process, one worker, two ports, bodies "stable" and
"canary"); interleaved rounds of wrk against (a) a backend directly, (b) nginx as a
weighted 95/5 reverse proxy with upstream keepalive, one worker, and (c) our balancer
at 95/5 with every feature on (stickiness, fast health checks, admin socket, forwarded
headers, metrics), started through `canary balancer` as a user would. The proxy under
test runs on CPU 1 and wrk on CPU 0 when taskset and two CPUs are available. Ours runs
as it is installed: compiled with mypyc when `make` built it (canary_deploy.speedups),
and then (d) the same sources as pure Python (CANARY_PURE_PYTHON=1) run beside it.

A second contest repeats nginx-as-proxy and ours against two more backends that add
an `X-Request-Id` header unique to every response: our balancer remembers its verdict on
each distinct response head (a target repeats a few heads a second), and these heads
never repeat, so that contest shows the cost when the cache never hits.

Then: time from a weight-change call on the admin socket to the new split being in
effect, and failed requests while the weights change 20 times under wrk load.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from canary_deploy import speedups  # noqa: E402
from canary_deploy.balancer.admin import AdminClient  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(cpu: int) -> list[str]:
    """A taskset prefix pinning to one CPU, when that is possible here."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


NGINX_COMMON = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
{body}
}}
"""


class Nginx:
    """An nginx we start in the foreground with its own prefix, config and pid file."""

    def __init__(self, name: str, body: str, cpu: int | None) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix=f"bench-nginx-{name}-"))
        conf = self.prefix / "nginx.conf"
        conf.write_text(NGINX_COMMON.format(prefix=self.prefix, body=body))
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(user + conf.read_text())
        cmd = [shutil.which("nginx") or "nginx", "-p", str(self.prefix), "-c", str(conf)]
        self.proc = subprocess.Popen(
            [*([] if cpu is None else pin(cpu)), *cmd, "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)


def wait_http(url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                response.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process and its children (nginx's workers), from /proc.

    CPU per request is a fairer comparison than wall-clock rates on a busy machine.
    """
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name: state(0) ppid(1) ... utime(11) stime(12).
        if int(entry.name) == pid or int(fields[1]) == pid:
            user += int(fields[11]) / tick
            system += int(fields[12]) / tick
    return user, system


def wrk(url: str, seconds: float, connections: int) -> dict[str, float]:
    """Run wrk on CPU 0; requests/s, p50/p99 in ms, and failed requests."""
    cmd = [
        *pin(0),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "failed": errors, "total": total}


def start_ours(
    port: int,
    stable: int,
    canary: int,
    sock: Path,
    src: Path = REPO / "src",
    pure: bool = False,
) -> subprocess.Popen[str]:
    cmd = [
        *pin(1),
        sys.executable,
        "-m",
        "canary_deploy",
        "balancer",
        "--listen",
        f"127.0.0.1:{port}",
        "--stable",
        f"127.0.0.1:{stable}",
        "--canary",
        f"127.0.0.1:{canary}",
        "--weights",
        "95",
        "5",
        "--stickiness",
        "3600",
        "--health-profile",
        "fast",
        "--admin-socket",
        str(sock),
    ]
    env = {**os.environ, "PYTHONPATH": str(src)}
    if pure:
        env[speedups.PURE_ENV] = "1"
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def served_by(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def weight_change_latency(url: str, client: AdminClient, changes: int = 20) -> list[float]:
    """Seconds from the start of a PUT /weights to the first response from the new group."""
    times = []
    for i in range(changes):
        to_canary = i % 2 == 0
        want = "canary" if to_canary else "stable"
        body = {"stable": 0, "canary": 100} if to_canary else {"stable": 100, "canary": 0}
        start = time.perf_counter()
        client.request("PUT", "/weights", body)
        while served_by(url) != want:
            pass
        times.append(time.perf_counter() - start)
    return times


NGINX_PROXY = """
    upstream targets {{
        server 127.0.0.1:{0} weight=95;
        server 127.0.0.1:{1} weight=5;
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{2};
        location / {{
            proxy_pass http://targets;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
"""


def contest(contestants: dict[str, tuple[str, int]], args: argparse.Namespace) -> None:
    """Interleaved wrk rounds against each (url, pid to charge CPU to); prints the figures."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in contestants}
    for r in range(args.rounds):
        for name, (url, pid) in contestants.items():
            user_before, sys_before = cpu_seconds(pid)
            res = wrk(url, args.seconds, args.connections)
            user_after, sys_after = cpu_seconds(pid)
            res["user_us"] = (user_after - user_before) / res["total"] * 1e6
            res["sys_us"] = (sys_after - sys_before) / res["total"] * 1e6
            res["cpu_us"] = res["user_us"] + res["sys_us"]
            results[name].append(res)
            print(
                f"  round {r + 1} {name:6s} {res['rps']:9.0f} req/s  p50 {res['p50']:6.2f} ms"
                f"  p99 {res['p99']:6.2f} ms  failed {int(res['failed'])}"
                f"  {res['cpu_us']:5.1f} us CPU/req"
                f" ({res['user_us']:.1f} user + {res['sys_us']:.1f} sys)"
            )
    print("median over rounds (CPU/req: the proxy's own CPU, or the backends' for direct):")
    med = {
        name: {
            k: statistics.median(x[k] for x in rs)
            for k in ("rps", "p50", "p99", "cpu_us", "user_us", "sys_us")
        }
        for name, rs in results.items()
    }
    for name, m in med.items():
        print(
            f"  {name:6s} {m['rps']:9.0f} req/s  p50 {m['p50']:6.2f} ms  p99 {m['p99']:6.2f} ms"
            f"  {m['cpu_us']:5.1f} us CPU/req ({m['user_us']:.1f} user + {m['sys_us']:.1f} sys)"
        )
    rps_ratio = med["ours"]["rps"] / med["nginx"]["rps"]
    p99_ratio = med["ours"]["p99"] / med["nginx"]["p99"]
    print(f"ours / nginx req/s: {rps_ratio:.2f}x   (target >= 0.6x)")
    print(f"ours / nginx p99:   {p99_ratio:.2f}x   (target <= 2x)")
    if "direct" in med:
        print(f"ours / direct req/s: {med['ours']['rps'] / med['direct']['rps']:.2f}x")
    for name in ("pure", "base"):
        if name in med:
            print(
                f"ours / {name}: req/s {med['ours']['rps'] / med[name]['rps']:.2f}x,"
                f" CPU/req {med['ours']['cpu_us'] / med[name]['cpu_us']:.2f}x"
            )
    if "pure" in med and "base" in med:
        print(
            f"pure / base: req/s {med['pure']['rps'] / med['base']['rps']:.2f}x,"
            f" CPU/req {med['pure']['cpu_us'] / med['base']['cpu_us']:.2f}x"
        )
    print(
        f"CPU per request, nginx / ours: {med['nginx']['cpu_us'] / med['ours']['cpu_us']:.2f}x"
        "   (the req/s ratio an idle machine would give if CPU-bound)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="also run the balancer from this source tree (e.g. `git archive` of an older"
        " commit, extracted), interleaved with the others, as 'base'",
    )
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            subprocess.run([str(REPO / "scripts" / "apt-ensure"), "nginx", "wrk"], check=True)
            break

    b_stable, b_canary, u_stable, u_canary = (free_port() for _ in range(4))
    backends = Nginx(
        "backends",
        f"""
    server {{ listen 127.0.0.1:{b_stable}; location / {{ return 200 "stable"; }} }}
    server {{ listen 127.0.0.1:{b_canary}; location / {{ return 200 "canary"; }} }}
    server {{ listen 127.0.0.1:{u_stable}; location / {{
        add_header X-Request-Id $request_id; return 200 "stable"; }} }}
    server {{ listen 127.0.0.1:{u_canary}; location / {{
        add_header X-Request-Id $request_id; return 200 "canary"; }} }}
""",
        cpu=None,
    )
    compiled, mode = speedups.status()
    print(f"ours: {mode}" + ("; 'pure': the same sources as pure Python" if compiled else ""))
    sock_dir = Path(tempfile.mkdtemp(prefix="bench-balancer-"))
    proxies: list[Nginx] = []
    ours: list[subprocess.Popen[str]] = []
    try:
        contests: list[tuple[str, dict[str, tuple[str, int]]]] = []
        for index, (label, stable, canary) in enumerate(
            (
                ("same response heads (as nginx sends them)", b_stable, b_canary),
                ("a unique response head every time (head cache never hits)", u_stable, u_canary),
            )
        ):
            p_nginx, p_ours, p_base, p_pure = (free_port() for _ in range(4))
            proxies.append(Nginx("proxy", NGINX_PROXY.format(stable, canary, p_nginx), cpu=1))
            ours.append(start_ours(p_ours, stable, canary, sock_dir / f"admin-{index}.sock"))
            contestants = {
                "nginx": (f"http://127.0.0.1:{p_nginx}/", proxies[-1].proc.pid),
                "ours": (f"http://127.0.0.1:{p_ours}/", ours[-1].pid),
            }
            if index == 0:  # the backends alone, once
                contestants = {
                    "direct": (f"http://127.0.0.1:{stable}/", backends.proc.pid),
                    **contestants,
                }
            if compiled:  # the same code as pure Python, for comparison
                ours.append(
                    start_ours(p_pure, stable, canary, sock_dir / f"pure-{index}.sock", pure=True)
                )
                contestants["pure"] = (f"http://127.0.0.1:{p_pure}/", ours[-1].pid)
            if args.baseline_src is not None:
                ours.append(
                    start_ours(
                        p_base,
                        stable,
                        canary,
                        sock_dir / f"base-{index}.sock",
                        args.baseline_src.resolve(),
                    )
                )
                contestants["base"] = (f"http://127.0.0.1:{p_base}/", ours[-1].pid)
            contests.append((label, contestants))
        for _, contestants in contests:
            for url, _ in contestants.values():
                wait_http(url)
        time.sleep(1.5)  # let the fast health checks mark both targets healthy
        print(
            f"cpus={os.cpu_count()}  pinning={'proxy on CPU 1, wrk on CPU 0' if pin(0) else 'none'}"
            f"  wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} interleaved rounds"
        )
        for label, contestants in contests:
            print(f"\n{label}:")
            contest(contestants, args)

        print()
        # Weight changes: on the first contest's balancer.
        ours_url = contests[0][1]["ours"][0]
        client = AdminClient(sock_dir / "admin-0.sock")
        times = weight_change_latency(ours_url, client)
        print(
            f"weight change -> new split in effect (20 changes): median "
            f"{statistics.median(times) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms"
            "   (target <= 50 ms)"
        )

        client.request("PUT", "/weights", {"stable": 95, "canary": 5})
        changes_done = threading.Event()

        def change_weights() -> None:
            time.sleep(0.5)
            for i in range(20):
                canary = (i * 37) % 101
                client.request("PUT", "/weights", {"stable": 100 - canary, "canary": canary})
                time.sleep(0.15)
            changes_done.set()

        changer = threading.Thread(target=change_weights)
        changer.start()
        load = wrk(ours_url, 5, args.connections)
        changer.join()
        assert changes_done.is_set()
        print(
            f"20 weight changes under load: {int(load['failed'])} failed of "
            f"{int(load['total'])} requests   (target 0)"
        )
    finally:
        for process in ours:
            stop_process(process)
        for proxy in proxies:
            proxy.stop()
        backends.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
