"""The demo's automated rollouts, repeated: how often `make demo` promotes its healthy
canary and rolls back its bad one (and on which metric).

Runs the very acts `canary demo` runs (rollout/demo.py: its plan, its images, its load)
on one local stack, `--healthy N` and `--bad M` times, and counts the outcomes.
Run: `.venv/bin/python bench/demo_acts.py [--healthy 20] [--bad 5]`; about a minute per
healthy act and 30 s per bad one on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

from canary_deploy import usecases
from canary_deploy.backend import SilentProgress
from canary_deploy.local.demo import demo_settings
from canary_deploy.local.target import LocalTarget
from canary_deploy.rollout import loop
from canary_deploy.rollout.controller import TickResult
from canary_deploy.rollout.demo import ACTS, run_acts


class _Quiet:
    def show(self, result: TickResult, quantiles: Mapping[str, float | None]) -> None:
        pass


@contextlib.contextmanager
def _quiet_view() -> Iterator[loop.RolloutView]:
    yield _Quiet()


def classify(line: str) -> str:
    if "promoted after" in line:
        return "promoted"
    if "paused for a human" in line:
        return "paused"
    found = re.search(r"rolled back at step \d+ on (.*?) after", line)
    return f"rolled back on {found.group(1)}" if found else f"other: {line}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--healthy", type=int, default=20, help="runs of the healthy act")
    parser.add_argument("--bad", type=int, default=5, help="runs of the bad act")
    args = parser.parse_args()
    bad, healthy = ACTS
    outcomes: dict[str, Counter[str]] = {bad.title: Counter(), healthy.title: Counter()}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="demo-acts-") as tmp:
        settings = demo_settings(Path(tmp), "127.0.0.1:0")
        target = LocalTarget.from_settings(settings)
        progress = SilentProgress()
        try:
            status = usecases.deploy(target, usecases.release_spec(settings), progress)
            assert status.listener is not None
            url = status.listener.url
            schedule = [healthy] * args.healthy + [bad] * args.bad
            for i, act in enumerate(schedule):
                lines = run_acts(
                    settings,
                    target,
                    url,
                    progress,
                    _quiet_view,
                    acts=[act],
                    announce=lambda _: None,
                )
                outcome = classify(lines[0])
                outcomes[act.title][outcome] += 1
                print(f"  {i + 1}/{len(schedule)} {act.title}: {outcome}", flush=True)
        finally:
            target.delete(progress, purge=True)
    print()
    for title, counts in outcomes.items():
        total = sum(counts.values())
        if total:
            shown = ", ".join(f"{k} {v}" for k, v in counts.most_common())
            print(f"{title}: {total} runs: {shown}")
    print(f"Total time {(time.monotonic() - started) / 60:.1f} min.")


if __name__ == "__main__":
    main()
