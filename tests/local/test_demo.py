"""`canary demo` walks the seed's schedule, rolls back, runs two automated rollouts and
leaves nothing running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from canary_deploy.local.control import DaemonControl as ControlForCleanup
from canary_deploy.local.paths import StackPaths
from canary_deploy.local.processes import stack_processes

pytestmark = pytest.mark.integration


def test_demo_walks_the_schedule_and_cleans_up(tmp_path: Path) -> None:
    err_file = (tmp_path / "stderr").open("w")
    demo = subprocess.Popen(
        [sys.executable, "-m", "canary_deploy", "demo", "--step-seconds", "1.5", "--rate", "40"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=err_file,
        text=True,
        # (PYTHONPATH passes through: the code under test, from a checkout or worktree.)
        env={
            "PATH": "/usr/bin:/bin",
            "COLUMNS": "120",
            **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},
        },
    )
    assert demo.stdout is not None
    head = ""
    while "Dashboard: " not in head and demo.poll() is None:
        head += demo.stdout.readline()
    # The dashboard is served while the demo runs (issue 15: `make demo` prints its URL).
    dashboard = re.search(r"Dashboard: (http://127\.0\.0\.1:\d+/)", head)
    assert dashboard is not None, head
    with urllib.request.urlopen(dashboard.group(1), timeout=30) as page:
        assert page.status == 200 and b"canary" in page.read()
    # The rest through the same buffered reader (communicate() would read the pipe under
    # it and lose what readline() had buffered).
    rest = demo.stdout.read()
    demo.wait(300)
    err_file.close()
    err = (tmp_path / "stderr").read_text()
    proc = subprocess.CompletedProcess(demo.args, demo.returncode, head + rest, err)
    out = proc.stdout
    found = re.search(r"\(state (\S+)\)", out)
    assert found is not None, proc.stderr + out
    state_dir = Path(found.group(1))
    paths = StackPaths.for_dir(state_dir)
    if proc.returncode != 0:  # do not leave a half-run demo behind
        ControlForCleanup(paths).stop(forget=True)
    assert proc.returncode == 0, proc.stderr + out
    steps = re.findall(r"^-> (\S+): weights (\d+/\d+)", out, flags=re.M)
    assert steps == [
        ("deploy", "95/5"),
        ("set-weights", "75/25"),
        ("set-weights", "50/50"),
        ("set-weights", "0/100"),
        ("rollback", "100/0"),
    ], out
    # At 95/5 a tester is pinned to the canary by header (issue 16), then let go.
    assert re.search(
        r"^tester route #1 --header X-Canary=always -> canary: "
        r"canary route add --header X-Canary=always --to canary$",
        out,
        re.M,
    ), out
    assert re.search(
        r"^   10 requests with X-Canary: always: v2 10 \(all reached the canary at weights "
        r"95/5; tester traffic, not judged\)$",
        out,
        re.M,
    ), out
    assert "tester route deleted: every request follows the weights again" in out
    assert out.index("tester route deleted") < out.index("-> set-weights: weights 75/25")
    # Each step's traffic follows its weights: nothing reaches v2 at 100/0 or v1 at 0/100.
    shares = re.findall(r"v1 (\d+), v2 (\d+)", out)
    assert int(shares[3][0]) == 0 and int(shares[3][1]) > 0, out
    assert int(shares[4][1]) == 0 and int(shares[4][0]) > 0, out
    assert re.search(r"\d+ requests during the demo, 0 failed", out), out
    # Then the automated rollouts. Which verdict each gets is the judge's (a 2x canary is
    # caught in ~99% of runs of this plan): tests/rollout pins verdicts down with clear-cut
    # canaries; here every act must reach an outcome and no request may go unanswered.
    acts = re.findall(
        r"^(bad|healthy) canary: .*?: (rolled back at step \d|promoted after|paused for a human)",
        out,
        re.M,
    )
    assert [a[0] for a in acts][:2] == ["bad", "healthy"], out  # then again in the recap
    assert re.search(
        r"requests during the automated rollouts: [\d,]+ injected 500s, 0 without a response", out
    ), out
    assert not state_dir.exists()
    assert stack_processes(paths.marker) == []
    with pytest.raises(OSError):  # and stopped with it
        urllib.request.urlopen(dashboard.group(1), timeout=5)
