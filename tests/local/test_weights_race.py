"""Concurrent weight changes (issue 12 item 16): the daemon applies them one at a time and
the last one wins; a command whose change was applied and then replaced by a later one
exits 0 and says what it set, what is live now, and that another change came after it."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.local.conftest import LocalStack

pytestmark = pytest.mark.integration

CALLS = 20


def test_twenty_concurrent_set_weights_all_succeed_and_the_last_one_wins(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy")
    wanted = [(100 - i, i) for i in range(1, CALLS + 1)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "canary_deploy", "set-weights", str(s), str(c)],
            cwd=stack.root,
            env=stack.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s, c in wanted
    ]
    outputs = [(*p.communicate(timeout=120), p.returncode) for p in procs]

    for (stable, canary), (stdout, stderr, code) in zip(wanted, outputs, strict=True):
        assert code == 0, f"set-weights {stable} {canary}: {stderr}{stdout}"
        assert "error" not in stderr, stderr
        live = re.search(r"\(weights (\d+)/(\d+)\)", stdout)
        assert live is not None, stdout
        said = f"Set {stable}/{canary}"
        if (int(live[1]), int(live[2])) == (stable, canary):
            assert f"{said}; live now {stable}/{canary}." in stdout, stdout
        else:
            assert (
                f"{said}; another change came after it (last writer wins): live now "
                f"{live[1]}/{live[2]}." in stdout
            ), stdout

    # The daemon applied every change, one at a time; the last one applied is live.
    changes = [e["message"] for e in stack.admin("GET", "/events") if e["kind"] == "weights"]
    assert sorted(changes) == sorted(f"set to {s}/{c}" for s, c in wanted)
    final = stack.status()["listener"]["weights"]
    assert changes[-1] == f"set to {final['stable']}/{final['canary']}"
