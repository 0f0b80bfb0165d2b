"""Verdicts end to end: A/A and bad canaries through the CLI a user types, on the local
stack, counted.

Each scenario gets its own local stack (own state directory and port). It runs
`canary deploy`, keeps `canary load --rate R` running in the background, then for each
run: `canary deploy` (the two images again: a rolled-back canary comes back, a wrongly
promoted one is undone) and `canary rollout --steps ... -o json`, and reads the outcome
from the JSON it prints. A rollout that pauses for a human is aborted with `canary
abort` and counted as paused. Nothing here calls the library: it is what a user sees.

| scenario | runs | target |
|---|---|---|
| A/A: canary identical in behaviour to stable | >= 30 | at most 2 rolled back |
| A/A on a busy machine (a CPU-bound process beside the stack) | >= 10 | promoted >= 90% |
| 2x error rate (2% vs 1%) | >= 10 | rolled back >= 90% |
| +30% latency (fault injection) | >= 10 | rolled back >= 90% |

Run: `make bench BENCH=verdicts` or `.venv/bin/python bench/verdicts.py [--aa 30
--busy 10 --errors 10 --latency 10] [--rate 400] [--steps 10,25,50]`; about 25-30 minutes
with the defaults on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANARY = [sys.executable, "-m", "canary_deploy"]


def app(version: str, *, error_rate: float, latency_ms: float = 0, jitter_ms: float = 0) -> str:
    """A local "image": the built-in sample app with fault injection."""
    env = f"CANARY_FAULT_ERROR_RATE={error_rate}"
    if latency_ms:
        env += f" CANARY_FAULT_LATENCY_MS={latency_ms} CANARY_FAULT_LATENCY_JITTER_MS={jitter_ms}"
    return f"{env} builtin:{version}"


@dataclass(frozen=True)
class Scenario:
    name: str
    good: str  # stable's image
    candidate: str  # the canary's image
    expect: str  # "promoted" or "rolled_back"
    busy: bool = False
    # Same behaviour: after a promotion the next run swaps the roles (no stable roll).
    symmetric: bool = False


def scenarios() -> dict[str, Scenario]:
    # A model API answers in ~20 ms (uniform 10-30 ms here); the latency scenario makes the
    # canary 30% slower everywhere (13-39 ms). A/A runs the bare sample app (sub-ms), the
    # case where a few tenths of a millisecond used to roll healthy canaries back.
    return {
        "aa": Scenario(
            "A/A: canary identical to stable (1% errors each)",
            app("v1", error_rate=0.01),
            app("v2", error_rate=0.01),
            "promoted",
            symmetric=True,
        ),
        "busy": Scenario(
            "A/A on a busy machine (a CPU-bound process beside the stack)",
            app("v1", error_rate=0.01),
            app("v2", error_rate=0.01),
            "promoted",
            busy=True,
            symmetric=True,
        ),
        "errors": Scenario(
            "2x error rate (2% vs 1%)",
            app("v1", error_rate=0.01),
            app("v2", error_rate=0.02),
            "rolled_back",
        ),
        "latency": Scenario(
            "+30% latency (20 ms +-10 -> 26 ms +-13)",
            app("v1", error_rate=0.01, latency_ms=20, jitter_ms=10),
            app("v2", error_rate=0.01, latency_ms=26, jitter_ms=13),
            "rolled_back",
        ),
    }


@dataclass
class Outcome:
    status: str  # promoted, rolled_back, paused, failed
    seconds: float
    decided_by: str = ""
    canary_requests: int = 0
    reason: str = ""
    evidence: str = ""  # the explanation of each metric that decided a rollback


@dataclass
class Result:
    scenario: Scenario
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """One local stack driven through the CLI, in its own state dir and port."""

    def __init__(self, root: Path, args: argparse.Namespace) -> None:
        self.env = dict(os.environ)
        no_settings = root / "empty-canary.toml"  # never the developer's canary.toml
        no_settings.write_text("")
        self.env.update(
            CANARY_STATE_DIR=str(root / "state"),
            CANARY_LISTEN=f"127.0.0.1:{free_port()}",
            CANARY_CONFIG=str(no_settings),
            DESIRED_COUNT_STABLE=str(args.stable_count),
            DESIRED_COUNT_CANARY=str(args.canary_count),
            COLUMNS="200",
        )
        self.args = args
        self.log = (root / "cli.log").open("a")

    def canary(self, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*CANARY, *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        shown = " ".join(argv)
        self.log.write(f"$ canary {shown} -> {done.returncode}\n{done.stdout}{done.stderr}\n")
        self.log.flush()
        return done

    def deploy(self, stable: str, canary: str) -> None:
        done = self.canary("deploy", "--image-stable", stable, "--image-canary", canary)
        if done.returncode != 0:
            raise RuntimeError(f"deploy failed: {done.stderr.strip() or done.stdout.strip()}")

    def rollout(self) -> Outcome:
        a = self.args
        argv = [
            *CANARY,
            "rollout",
            "--steps",
            a.steps,
            "--min-duration",
            a.min_duration,
            "--max-duration",
            a.max_duration,
            "-o",
            "json",
        ]
        started = time.monotonic()
        proc = subprocess.Popen(
            argv,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        paused = False
        deadline = started + a.run_timeout
        while proc.poll() is None:
            time.sleep(2.0)
            if not paused and (self._paused() or time.monotonic() > deadline):
                paused = True  # play the human: a paused rollout is aborted
                self.canary("abort")
        out, err = proc.communicate()
        seconds = time.monotonic() - started
        self.log.write(f"$ canary rollout -> {proc.returncode}\n{out}{err}\n")
        self.log.flush()
        doc = _last_json(out)
        if doc is None:
            return Outcome("failed", seconds, reason=(err.strip() or out.strip())[-300:])
        decision = doc.get("last_decision") or {}
        metrics = decision.get("metrics", [])
        harmful = [m["name"] for m in metrics if m["e_harm"] >= m["harm_threshold"]]
        status = "paused" if paused else str(doc["status"])
        return Outcome(
            status,
            seconds,
            decided_by=", ".join(harmful),
            canary_requests=int(decision.get("canary_requests", 0)),
            reason=str(doc.get("reason") or ""),
            evidence=" | ".join(m["explanation"] for m in metrics if m["name"] in harmful),
        )

    def _paused(self) -> bool:
        """The newest rollout is paused for a human (read from the state db directly: a
        `canary history` process every second would load the machine being measured)."""
        db = Path(self.env["CANARY_STATE_DIR"]) / "state.db"
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                newest = "SELECT status FROM rollouts ORDER BY id DESC LIMIT 1"
                row = conn.execute(newest).fetchone()
        except sqlite3.Error:
            return False
        return row is not None and row[0] == "paused"

    def close(self) -> None:
        self.canary("delete", "--yes", "--purge", timeout=120)
        self.log.close()


def _last_json(text: str) -> dict[str, Any] | None:
    start = text.rfind("\n{")
    start = 0 if text.startswith("{") and start < 0 else start + 1
    with contextlib.suppress(ValueError):
        doc = json.loads(text[start:])
        if isinstance(doc, dict):
            return doc
    return None


@contextlib.contextmanager
def background(argv: Sequence[str], env: dict[str, str] | None = None) -> Iterator[None]:
    proc = subprocess.Popen(
        list(argv),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# One CPU-bound process for the busy scenario (it stops by itself after two hours).
BURNER = [
    sys.executable,
    "-c",
    "import time\nend = time.time() + 7200\nwhile time.time() < end: pass",
]


def run_scenario(key: str, sc: Scenario, runs: int, args: argparse.Namespace) -> Result:
    result = Result(sc)
    with tempfile.TemporaryDirectory(prefix=f"verdicts-{key}-") as tmp:
        stack = Stack(Path(tmp), args)
        try:
            stack.deploy(sc.good, sc.candidate)
            load = [*CANARY, "load", "--rate", str(args.rate), "-d", "100000", "-c", "32"]
            with (
                background(load, stack.env),
                background(BURNER) if sc.busy else contextlib.nullcontext(),
            ):
                time.sleep(args.warm_s)  # stable's traffic for the frozen thresholds
                stable, canary = sc.good, sc.candidate
                for i in range(runs):
                    stack.deploy(stable, canary)
                    outcome = stack.rollout()
                    result.outcomes.append(outcome)
                    print(
                        f"  {key} run {i + 1}/{runs}: {outcome.status} in {outcome.seconds:.0f}s"
                        + (f" ({outcome.decided_by})" if outcome.decided_by else "")
                        + (f" [{outcome.canary_requests} canary requests]")
                        + (f" {outcome.reason}" if outcome.status == "failed" else ""),
                        flush=True,
                    )
                    if outcome.evidence:
                        print(f"    {outcome.evidence}", flush=True)
                    if outcome.status == "promoted" and sc.symmetric:
                        stable, canary = canary, stable
        finally:
            stack.close()
    return result


def wilson_upper(k: int, n: int, z: float = 1.96) -> float:
    if n == 0:
        return 1.0
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def report(results: dict[str, Result], elapsed_s: float) -> str:
    lines = [
        "| scenario | runs | promoted | rolled back | paused | failed | figure | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        n = len(r.outcomes)
        promoted, rolled = r.count("promoted"), r.count("rolled_back")
        paused, failed = r.count("paused"), r.count("failed")
        if key == "aa":
            figure = f"false rollbacks {rolled}/{n}, Wilson upper {wilson_upper(rolled, n):.1%}"
            target, met = "<= 2 rolled back", rolled <= 2
        elif key == "busy":
            figure = f"promoted {promoted / n:.0%}" if n else "-"
            target, met = "promoted >= 90%", n > 0 and promoted >= 0.9 * n
        else:
            caught = [o.canary_requests for o in r.outcomes if o.status == "rolled_back"]
            median = statistics.median(caught) if caught else float("nan")
            figure = f"rolled back {rolled / n:.0%}, median {median:,.0f} canary requests"
            target, met = "rolled back >= 90%", n > 0 and rolled >= 0.9 * n
        lines.append(
            f"| {r.scenario.name} | {n} | {promoted} | {rolled} | {paused} | {failed} | "
            f"{figure} | {target} | {'yes' if met else 'NO'} |"
        )
    why = {}
    for r in results.values():
        for o in r.outcomes:
            if o.status == "rolled_back":
                key = o.decided_by or "(no metric over its threshold: aborted/other)"
                why[(r.scenario.name, key)] = why.get((r.scenario.name, key), 0) + 1
    lines.append("")
    lines.append("Rolled back on:")
    for (name, metric), count in sorted(why.items()):
        lines.append(f"- {name}: {metric} x{count}")
    lines.append(f"\nTotal time {elapsed_s / 60:.1f} min.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa", type=int, default=30, help="A/A runs")
    parser.add_argument("--busy", type=int, default=10, help="A/A runs on a busy machine")
    parser.add_argument("--errors", type=int, default=10, help="2x error-rate runs")
    parser.add_argument("--latency", type=int, default=10, help="+30%% latency runs")
    parser.add_argument("--rate", type=float, default=800.0, help="load, requests/s")
    parser.add_argument("--steps", default="10,25,50")
    parser.add_argument("--min-duration", default="4s")
    parser.add_argument("--max-duration", default="8s")
    parser.add_argument("--stable-count", type=int, default=2)
    parser.add_argument("--canary-count", type=int, default=1)
    parser.add_argument("--warm-s", type=float, default=5.0)
    parser.add_argument("--run-timeout", type=float, default=120.0)
    args = parser.parse_args()
    wanted = {"aa": args.aa, "busy": args.busy, "errors": args.errors, "latency": args.latency}
    print(
        f"verdicts: rate {args.rate:g} req/s, steps {args.steps}, min {args.min_duration} / "
        f"max {args.max_duration} per step, {args.stable_count} stable / {args.canary_count} "
        "canary task(s), default judge (baseline, warm-up, tolerance)",
        flush=True,
    )
    started = time.monotonic()
    results: dict[str, Result] = {}
    for key, sc in scenarios().items():
        if wanted[key] > 0:
            print(f"== {sc.name}", flush=True)
            results[key] = run_scenario(key, sc, wanted[key], args)
    print()
    print(report(results, time.monotonic() - started))


if __name__ == "__main__":
    main()
