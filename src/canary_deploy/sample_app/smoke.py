"""A smoke test of the sample app through the listener, usable as a rollout hook:
`python -m canary_deploy.sample_app.smoke` POSTs /predict a few times as a plain client
and a few times with the tester header (which routes to the canary), checks every answer,
and exits 1 when one is wrong.

The listener and header come from the hook's environment (CANARY_LISTENER_URL,
CANARY_TESTER_HEADER) or from --url and --header; without a header only plain requests
are made. --expect-canary v2 also checks that the tester header reached that version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

SAMPLE = {"age": 41, "income": 58.0, "debt_ratio": 0.4, "late_payments": 1}


@dataclass
class Outcome:
    """What the requests of one kind (plain, or with the tester header) got."""

    label: str
    ok: int = 0
    problems: list[str] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)

    def line(self) -> str:
        total = self.ok + len(self.problems)
        seen = ", ".join(sorted(self.versions)) or "none"
        text = f"{self.label}: {self.ok}/{total} ok (versions: {seen})"
        return text + "".join(f"\n  - {p}" for p in self.problems[:3])


def predict(url: str, header: tuple[str, str] | None, timeout: float) -> tuple[str | None, str]:
    """One POST /predict: (the answering version, "") or (None, what was wrong)."""
    request = urllib.request.Request(
        url.rstrip("/") + "/predict", data=json.dumps(SAMPLE).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    if header is not None:
        request.add_header(*header)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return None, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return None, f"no answer: {exc}"
    p, label, version = body.get("probability"), body.get("label"), body.get("version")
    if not isinstance(p, int | float) or not 0 <= p <= 1 or label not in (0, 1) or not version:
        return None, f"not a prediction: {body}"
    return str(version), ""


def check(url: str, header: tuple[str, str] | None, n: int, expect: str | None) -> Outcome:
    label = "plain" if header is None else f"{header[0]}: {header[1]}"
    outcome = Outcome(label)
    for _ in range(n):
        version, problem = predict(url, header, timeout=5.0)
        if version is not None and header is not None and expect and version != expect:
            problem = f"answered by {version}, not {expect}"
        if version is not None:
            outcome.versions.add(version)
        if problem:
            outcome.problems.append(problem)
        else:
            outcome.ok += 1
    return outcome


def parse_header(text: str) -> tuple[str, str] | None:
    """("X-Canary", "always") from "X-Canary: always" or "X-Canary=always"; None for ""."""
    if not text.strip():
        return None
    sep = ":" if ":" in text else "="
    name, _, value = text.partition(sep)
    return name.strip(), value.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m canary_deploy.sample_app.smoke")
    parser.add_argument("--url", default=os.environ.get("CANARY_LISTENER_URL") or None)
    parser.add_argument("--header", default=os.environ.get("CANARY_TESTER_HEADER", ""))
    parser.add_argument("-n", type=int, default=5, help="requests of each kind (default 5)")
    parser.add_argument("--expect-canary", help="the version the tester header must reach")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("no listener: pass --url or set CANARY_LISTENER_URL (hooks get it)")
    outcomes = [check(args.url, None, args.n, None)]
    header = parse_header(args.header)
    if header is not None:
        outcomes.append(check(args.url, header, args.n, args.expect_canary))
    for outcome in outcomes:
        print(outcome.line(), flush=True)
    failed = any(o.problems for o in outcomes)
    print("smoke test FAILED" if failed else "smoke test passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
