"""Automated rollouts on the local stack: how many canary requests a bad canary serves
before it is rolled back, how fast 100% stable is in effect after the verdict, and how
long a healthy canary takes to be promoted.

Setup (issue 6): local stack, 200 req/s of load, canary share 5% at the first step,
stable error rate 1%, bad canary 2% (fault injection in the sample app); both versions
answer in 10 ± 2 ms and run 2 tasks each. The plan is the
local default (steps 5 -> 25 -> 50 -> 100, min 10 s / max 60 s per step, batches every
2 s). Run: `.venv/bin/python bench/rollout_local.py [--runs 5] [--healthy-runs 2]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from canary_deploy import usecases
from canary_deploy.backend import SilentProgress
from canary_deploy.config import load_settings
from canary_deploy.local.load import LoadGenerator, LoadPlan
from canary_deploy.local.target import LocalTarget
from canary_deploy.rollout import loop, service
from canary_deploy.rollout.controller import TickResult
from canary_deploy.rollout.start import begin
from canary_deploy.weights import Weights

RATE = 200.0
BASELINE_S = 10.0


def image(version: str, error_rate: float) -> str:
    # A model API answers in ~10 ms; without it, 2 ms thresholds would measure the
    # scheduler of a busy 2-core machine rather than the versions.
    return (
        f"CANARY_FAULT_ERROR_RATE={error_rate} CANARY_FAULT_LATENCY_MS=10 "
        f"CANARY_FAULT_LATENCY_JITTER_MS=2 {sys.executable} -m canary_deploy.sample_app "
        f"--version {version} --port $PORT"
    )


class Recorder:
    """A RolloutView that keeps what the benchmark needs."""

    def __init__(self) -> None:
        self.rollback_latency_s: float | None = None
        self.rollback_decision: dict[str, object] | None = None
        self.ended_at: float | None = None

    def show(self, result: TickResult, quantiles: Mapping[str, float | None]) -> None:
        if result.rollback_latency_s is not None:
            self.rollback_latency_s = result.rollback_latency_s
            self.rollback_decision = result.decision
        if result.rollout.status.terminal and self.ended_at is None:
            self.ended_at = time.time()


def one_run(canary_error_rate: float) -> dict[str, float | str | None]:
    state = Path(tempfile.mkdtemp(prefix="canary-bench-"))
    settings = load_settings(
        {
            "local.state_dir": state,
            "local.listen": "127.0.0.1:0",
            "image_uri_stable": image("v1", 0.01),
            "image_uri_canary": image("v2", canary_error_rate),
            "stable_weight": 100,
            "canary_weight": 0,
            # As many canary tasks as stable ones: at 50/50 each task carries the same load,
            # so latency compares the versions, not how busy one task is.
            "desired_count_stable": 2,
            "desired_count_canary": 2,
        },
        env={},
        config_file=state / "none.toml",
    )
    target = LocalTarget.from_settings(settings)
    stop = threading.Event()
    loader: threading.Thread | None = None
    try:
        status = usecases.deploy(target, usecases.release_spec(settings), SilentProgress())
        assert status.listener is not None
        url = status.listener.url.rstrip("/")
        generator = LoadGenerator(LoadPlan(url, "/whoami", rate=RATE, concurrency=16))
        loader = threading.Thread(target=generator.run, args=(stop,), daemon=True)
        loader.start()
        time.sleep(BASELINE_S)  # stable's baseline, to freeze latency thresholds from
        store = service.open_store(settings)
        plan = service.plan_from(settings, steps=None, overrides={})
        rollout, _ = begin(settings, target, store, plan)
        started = time.time()
        recorder = Recorder()
        final = loop.run(target, store, rollout, recorder)
        ended = recorder.ended_at or time.time()
        in_effect = target.router.get_weights() == Weights(100, 0)
        served = target.metrics.counts(started, ended + 1)["canary"].requests
        decision = recorder.rollback_decision or final.last_decision or {}
        store.close()
        metrics = decision.get("metrics") or []
        by = [str(m["name"]) for m in metrics if m["e_harm"] >= m["harm_threshold"]]
        return {
            "outcome": str(final.status),
            "seconds": ended - started,
            "canary_requests_judged": float(decision.get("canary_requests", 0) or 0),
            "canary_requests_served": float(served),
            "rollback_latency_ms": None
            if recorder.rollback_latency_s is None
            else recorder.rollback_latency_s * 1000,
            "stable_only_after": "yes" if in_effect else "NO",
            "by": ", ".join(by) or "-",
        }
    finally:
        stop.set()
        if loader is not None:
            loader.join(timeout=15)
        target.delete(SilentProgress(), purge=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--healthy-runs", type=int, default=2)
    args = parser.parse_args()
    print(f"local stack, {RATE:.0f} req/s, stable 1% errors; plan: local defaults", flush=True)

    bad = []
    for i in range(args.runs):
        r = one_run(0.02)
        bad.append(r)
        print(
            f"  bad canary (2%) run {i + 1}: {r['outcome']} after {r['seconds']:.0f}s, "
            f"{r['canary_requests_served']:.0f} canary requests served "
            f"({r['canary_requests_judged']:.0f} judged), verdict -> 100/0 in "
            f"{r['rollback_latency_ms'] or float('nan'):.1f} ms, stable-only after: "
            f"{r['stable_only_after']}; evidence: {r['by']}",
            flush=True,
        )
    rolled = [r for r in bad if r["outcome"] == "rolled_back"]
    if rolled:
        served = [float(r["canary_requests_served"] or 0) for r in rolled]
        lat = [float(r["rollback_latency_ms"] or 0) for r in rolled]
        print(
            f"bad canary: rolled back {len(rolled)}/{len(bad)}; canary requests served before "
            f"rollback median {statistics.median(served):.0f} (min {min(served):.0f}, max "
            f"{max(served):.0f}); verdict -> 100% stable median {statistics.median(lat):.1f} ms "
            f"(max {max(lat):.1f} ms; target <= 50 ms)"
        )

    good = []
    for i in range(args.healthy_runs):
        r = one_run(0.01)
        good.append(r)
        print(
            f"  healthy canary run {i + 1}: {r['outcome']} after {r['seconds']:.0f}s"
            + (f" (evidence: {r['by']})" if r["outcome"] == "rolled_back" else ""),
            flush=True,
        )
    promoted = [float(r["seconds"] or 0) for r in good if r["outcome"] == "promoted"]
    if promoted:
        print(
            f"healthy canary: promoted {len(promoted)}/{len(good)}; time to promotion median "
            f"{statistics.median(promoted):.0f}s"
        )


if __name__ == "__main__":
    main()
