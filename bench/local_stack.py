"""Local stack figures: time from `canary deploy` to the first 200 through the listener,
the data plane's and the daemon's memory (RSS) idle and under load, and what a `kill -9`
of the daemon under load costs (failed requests, time until a new daemon answers).
Prints numbers; asserts nothing.

    .venv/bin/python bench/local_stack.py [--rounds 3] [--rate 500] [--seconds 5]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from canary_deploy.balancer.admin import AdminClient
from canary_deploy.errors import CanaryError
from canary_deploy.local.control import DaemonControl
from canary_deploy.local.load import LoadGenerator, LoadPlan, LoadResult
from canary_deploy.local.paths import StackPaths
from canary_deploy.local.processes import free_port, stack_processes


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_200(port: int, deadline: float) -> float | None:
    """Poll GET /whoami until it answers 200; returns the perf_counter time of it."""
    while time.perf_counter() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/whoami")
            if conn.getresponse().status == 200:
                return time.perf_counter()
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.01)
    return None


def task_pids(paths: StackPaths) -> list[int]:
    """The stack's task processes (the marker also covers the data plane and daemon)."""
    found = []
    for pid in stack_processes(paths.marker):
        try:
            if b"CANARY_TASK_ID=" in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def memory_and_load(paths: StackPaths, port: int, rate: float, seconds: float) -> dict[str, float]:
    plane, daemon = paths.dataplane_pid(), paths.daemon_pid()
    assert plane is not None and daemon is not None
    figures: dict[str, float] = {}
    time.sleep(3)
    figures["plane_rss_idle_mib"] = rss_mib(plane)
    figures["daemon_rss_idle_mib"] = rss_mib(daemon)
    cpu0 = cpu_seconds(plane), cpu_seconds(daemon)
    time.sleep(5)  # idle: health checks, the control loop and metric persistence
    figures["plane_cpu_idle_pct"] = (cpu_seconds(plane) - cpu0[0]) / 5 * 100
    figures["daemon_cpu_idle_pct"] = (cpu_seconds(daemon) - cpu0[1]) / 5 * 100
    tasks = task_pids(paths)
    figures["tasks"] = len(tasks)
    figures["tasks_rss_mib"] = sum(rss_mib(p) for p in tasks)
    peak = [figures["plane_rss_idle_mib"]]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak.append(rss_mib(plane))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    plan = LoadPlan(f"http://127.0.0.1:{port}", rate=rate, duration_s=seconds, concurrency=32)
    result = LoadGenerator(plan).run()
    stop.set()
    sampler.join()
    figures["plane_rss_load_mib"] = max(peak)
    figures["load_requests"] = result.total.requests
    figures["load_errors"] = result.total.errors
    figures["load_rps"] = result.throughput
    figures["load_p99_ms"] = (result.total.percentile(0.99) or 0) * 1000
    return figures


def daemon_killed(paths: StackPaths, port: int, rate: float) -> dict[str, float]:
    """`kill -9` of the daemon 2 s into 6 s of load: failed requests, and how long until
    the data plane's new daemon answers on the admin socket."""
    daemon = paths.daemon_pid()
    assert daemon is not None
    plan = LoadPlan(f"http://127.0.0.1:{port}", rate=rate, duration_s=6, concurrency=32)
    results: list[LoadResult] = []
    loader = threading.Thread(target=lambda: results.append(LoadGenerator(plan).run()))
    loader.start()
    time.sleep(2)
    killed = time.perf_counter()
    os.kill(daemon, signal.SIGKILL)
    back = None
    while back is None and time.perf_counter() - killed < 30:
        try:
            AdminClient(paths.socket, timeout_s=1).request("GET", "/status")
            back = time.perf_counter() - killed
        except CanaryError:
            time.sleep(0.02)
    loader.join()
    total = results[0].total
    return {
        "killed_requests": total.requests,
        "killed_errors": total.errors,
        "killed_daemon_back_s": float("nan") if back is None else back,
    }


def one_round(root: Path, rate: float, seconds: float, measure_memory: bool) -> dict[str, float]:
    port = free_port()
    paths = StackPaths.for_dir(root / ".canary")
    env = dict(os.environ, CANARY_STATE_DIR=str(paths.state_dir),
               CANARY_LISTEN=f"127.0.0.1:{port}", CANARY_HEALTH_PROFILE="fast")  # fmt: skip
    for name in ("IMAGE_URI_STABLE", "IMAGE_URI_CANARY"):
        env.pop(name, None)
    figures: dict[str, float] = {}
    t0 = time.perf_counter()
    deploy = subprocess.Popen(
        [sys.executable, "-m", "canary_deploy", "deploy"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        seen = first_200(port, t0 + 120)
        deploy.wait(timeout=120)
        figures["deploy_returned_s"] = time.perf_counter() - t0
        if seen is None:
            raise SystemExit("no 200 through the listener within 120 s")
        figures["first_200_s"] = seen - t0
        if measure_memory:
            figures.update(memory_and_load(paths, port, rate, seconds))
            figures.update(daemon_killed(paths, port, rate))
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.wait()
        DaemonControl(paths).stop(forget=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0, help="load for the RSS figure")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="canary-bench-") as tmp:
            rounds.append(one_round(Path(tmp), args.rate, args.seconds, measure_memory=i == 0))
        r = rounds[-1]
        print(f"round {i + 1}: first 200 after {r['first_200_s']:.2f} s, "
              f"deploy returned after {r['deploy_returned_s']:.2f} s", flush=True)  # fmt: skip
    first = [r["first_200_s"] for r in rounds]
    done = [r["deploy_returned_s"] for r in rounds]
    m = rounds[0]
    print()
    print(f"cpu cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print("canary deploy -> first 200 through the listener (fresh stack: 2+1 tasks)")
    spread = f"min {min(first):.2f}, max {max(first):.2f}"
    print(f"  median {statistics.median(first):.2f} s  ({spread}) over {len(first)} rounds")
    print(f"canary deploy returns (all tasks healthy): median {statistics.median(done):.2f} s")
    print(f"data plane RSS idle:    {m['plane_rss_idle_mib']:.1f} MiB, "
          f"daemon {m['daemon_rss_idle_mib']:.1f} MiB")  # fmt: skip
    print(f"data plane CPU idle:    {m['plane_cpu_idle_pct']:.1f}% of one core, "
          f"daemon {m['daemon_cpu_idle_pct']:.1f}%")  # fmt: skip
    print(f"data plane RSS under load: {m['plane_rss_load_mib']:.1f} MiB  "
          f"({m['load_requests']:.0f} requests at {m['load_rps']:.0f}/s for {args.seconds:.0f} s, "
          f"{m['load_errors']:.0f} errors, p99 {m['load_p99_ms']:.1f} ms)")  # fmt: skip
    print(f"task processes: {m['tasks']:.0f}, {m['tasks_rss_mib']:.1f} MiB RSS in total")
    print(f"daemon killed (kill -9) under {args.rate:.0f} req/s: {m['killed_errors']:.0f} failed "
          f"of {m['killed_requests']:.0f} requests; a new daemon answered after "
          f"{m['killed_daemon_back_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
