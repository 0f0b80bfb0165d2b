"""Local stack figures: time from `canary deploy` to the first 200 through the listener,
and the daemon's memory (RSS) idle and under load. Prints numbers; asserts nothing.

    .venv/bin/python bench/local_stack.py [--rounds 3] [--rate 500] [--seconds 5]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from canary_deploy.local.control import DaemonControl
from canary_deploy.local.load import LoadGenerator, LoadPlan
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
            daemon = paths.daemon_pid()
            assert daemon is not None
            time.sleep(3)
            figures["daemon_rss_idle_mib"] = rss_mib(daemon)
            cpu0 = cpu_seconds(daemon)
            time.sleep(5)  # idle: health checks, the control loop and metric persistence
            figures["daemon_cpu_idle_pct"] = (cpu_seconds(daemon) - cpu0) / 5 * 100
            tasks = stack_processes(paths.marker)
            figures["tasks"] = len(tasks)
            figures["tasks_rss_mib"] = sum(rss_mib(p) for p in tasks)
            peak = [figures["daemon_rss_idle_mib"]]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak.append(rss_mib(daemon))
                    time.sleep(0.2)

            sampler = threading.Thread(target=sample)
            sampler.start()
            plan = LoadPlan(
                f"http://127.0.0.1:{port}", rate=rate, duration_s=seconds, concurrency=32
            )
            result = LoadGenerator(plan).run()
            stop.set()
            sampler.join()
            figures["daemon_rss_load_mib"] = max(peak)
            figures["load_requests"] = result.total.requests
            figures["load_errors"] = result.total.errors
            figures["load_rps"] = result.throughput
            figures["load_p99_ms"] = (result.total.percentile(0.99) or 0) * 1000
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
    print("canary deploy -> first 200 through the listener (fresh stack: daemon + 2+1 tasks)")
    spread = f"min {min(first):.2f}, max {max(first):.2f}"
    print(f"  median {statistics.median(first):.2f} s  ({spread}) over {len(first)} rounds")
    print(f"canary deploy returns (all tasks healthy): median {statistics.median(done):.2f} s")
    print(f"daemon RSS idle:        {m['daemon_rss_idle_mib']:.1f} MiB")
    print(f"daemon CPU idle:        {m['daemon_cpu_idle_pct']:.1f}% of one core")
    print(f"daemon RSS under load:  {m['daemon_rss_load_mib']:.1f} MiB  "
          f"({m['load_requests']:.0f} requests at {m['load_rps']:.0f}/s for {args.seconds:.0f} s, "
          f"{m['load_errors']:.0f} errors, p99 {m['load_p99_ms']:.1f} ms)")  # fmt: skip
    print(f"task processes: {m['tasks']:.0f}, {m['tasks_rss_mib']:.1f} MiB RSS in total")


if __name__ == "__main__":
    main()
