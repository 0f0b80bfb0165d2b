"""Rollback paths on an emulated AWS: our ModifyListener rollback vs the seed's stack update.

Starts its own moto server on 127.0.0.1, deploys one stack, then alternates
(a) `canary rollback`'s path: one ModifyListener call plus read-back verification,
(b) the seed's path: a CloudFormation stack update with new weight parameters,
    waited to completion,
counting AWS API calls with botocore's `before-call` event and timing each run.
Run: .venv/bin/python bench/rollback_paths.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from canary_deploy import usecases
from canary_deploy.aws import emulator
from canary_deploy.aws.clients import AwsClients
from canary_deploy.aws.target import AwsTarget
from canary_deploy.backend import SilentProgress
from canary_deploy.config import load_settings
from canary_deploy.weights import STABLE_ONLY, Weights

STACK = "bench-rollback"
SPLIT = Weights(50, 50)


class CallCounter:
    """Counts API calls (operation names) made by the clients it is attached to."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._active = False

    def attach(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        if self._active:
            self.calls[model.name] += 1

    def measure(self, action: Callable[[], None]) -> tuple[float, Counter[str]]:
        """Wall time and API calls of one run of `action` (only calls made inside it)."""
        self.calls = Counter()
        self._active = True
        try:
            start = time.perf_counter()
            action()
            return time.perf_counter() - start, self.calls
        finally:
            self._active = False


def seed_update(clients: AwsClients, weights: Weights) -> None:
    """What `./deploy.sh rollback` does: a stack update with new weights, waited for."""
    cf = clients.cloudformation
    current = cf.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]
    parameters: list[Any] = [
        {"ParameterKey": "StableWeight", "ParameterValue": str(weights.stable)},
        {"ParameterKey": "CanaryWeight", "ParameterValue": str(weights.canary)},
    ] + [
        {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
        for p in current
        if p["ParameterKey"] not in ("StableWeight", "CanaryWeight")
    ]
    cf.update_stack(
        StackName=STACK,
        UsePreviousTemplate=True,
        Parameters=parameters,
        Capabilities=["CAPABILITY_IAM"],
    )
    # Delay 1 s favours the seed: the AWS CLI polls every 30 s.
    cf.get_waiter("stack_update_complete").wait(
        StackName=STACK, WaiterConfig={"Delay": 1, "MaxAttempts": 600}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with emulator.running() as server:
        os.environ.update(server.env)
        os.environ.pop("AWS_PROFILE", None)
        settings = load_settings(
            {
                "target": "aws",
                "stack_name": STACK,
                "image_uri_stable": "repo/app:v1",
                "image_uri_canary": "repo/app:v2",
            },
            env={},
        )
        clients = AwsClients.create(region="us-east-1", profile=None, stack_name=STACK)
        target = AwsTarget(clients, settings)
        target.deploy(usecases.release_spec(settings), SilentProgress())
        counter = CallCounter()
        counter.attach(clients.cloudformation, clients.elbv2, clients.ecs, clients.cloudwatch)

        def ours() -> None:
            target.router.set_weights(STABLE_ONLY)
            usecases.wait_for_weights(target, STABLE_ONLY)

        def seeds() -> None:
            seed_update(clients, STABLE_ONLY)

        results: dict[str, list[tuple[float, Counter[str]]]] = {"ours": [], "seed": []}
        for _ in range(args.rounds):
            # Interleaved so both paths see the same machine load; resets are not measured.
            for name, action in (("ours", ours), ("seed", seeds)):
                target.router.set_weights(SPLIT)
                seed_update(clients, SPLIT)
                results[name].append(counter.measure(action))
                assert target.router.get_weights() == STABLE_ONLY
        target.delete(SilentProgress())

    print(f"rollback paths on moto {server.endpoint_url} ({args.rounds} rounds, median)")
    medians: dict[str, tuple[float, int]] = {}
    for name, label in (
        ("ours", "(a) canary rollback: ModifyListener + verify"),
        ("seed", "(b) seed rollback: stack update + wait"),
    ):
        runs = results[name]
        wall = statistics.median(t for t, _ in runs)
        calls = round(statistics.median(sum(c.values()) for _, c in runs))
        medians[name] = (wall, calls)
        detail = ", ".join(f"{op} {n}" for op, n in sorted(runs[-1][1].items()))
        print(f"  {label:<48} {calls:>3} API calls  {wall * 1000:8.1f} ms   [{detail}]")
    (wall_a, calls_a), (wall_b, calls_b) = medians["ours"], medians["seed"]
    print(
        f"  ratio seed/ours: {calls_b / calls_a:.1f}x API calls, {wall_b / wall_a:.1f}x wall time"
    )
    print(
        "  note: moto completes a stack update at once; real CloudFormation takes minutes\n"
        "  (and may redeploy ECS services), so on AWS the wall-time gap is far larger."
    )


if __name__ == "__main__":
    main()
