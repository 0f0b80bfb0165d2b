"""`canary logs`: the tasks' output and the daemon's log, the last lines then, with -f,
what comes next until Ctrl-C or SIGTERM (issue 13, item 9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from canary_deploy.local.logs import _Follower, follow
from tests.local.conftest import LocalStack


def test_a_follower_reads_appended_lines_and_starts_over_after_a_rotation(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    log.write_text("old\n")
    follower = _Follower.at_end(log)
    with log.open("a") as fh:
        fh.write("one\ntw")
    assert follower.new_lines() == ["one"]  # a line still being written waits for its end
    with log.open("a") as fh:
        fh.write("o\n")
    assert follower.new_lines() == ["two"]
    log.rename(tmp_path / "t.log.1")  # rotated: a new file under the name
    log.write_text("three\n")
    assert follower.new_lines() == ["three"]


def test_follow_emits_every_new_line_of_every_file_until_stopped(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    a.write_text("")
    b.write_text("")
    seen: list[tuple[str, str]] = []
    polls = iter(range(3))

    def stop() -> bool:
        step = next(polls, None)
        if step == 0:
            a.write_text("a1\n")
            b.write_text("b1\nb2\n")
        return step is None

    follow({"a": a, "b": b}, lambda s, line: seen.append((s, line)), stop=stop, poll_s=0)
    assert seen == [("a", "a1"), ("b", "b1"), ("b", "b2")]


def test_logs_shows_each_version_s_tasks_and_the_daemon(deployed: LocalStack) -> None:
    tasks = {t["task_id"]: t["version"] for t in deployed.tasks()}
    stable = deployed.ok("logs", "stable", "-n", "3").stdout.splitlines()
    assert stable, "the sample app writes its startup lines"
    assert {line.split()[0] for line in stable} == {t for t, v in tasks.items() if v == "stable"}
    canary = deployed.ok("logs", "canary").stdout
    assert all(line.split()[0] in tasks for line in canary.splitlines())
    daemon = deployed.ok("logs").stdout
    assert "listening on" in daemon
    one = next(t for t, v in tasks.items() if v == "canary")
    only = deployed.ok("logs", "canary", "--task", one[:10]).stdout.splitlines()
    assert only and {line.split()[0] for line in only} == {one}
    bad = deployed.run("logs", "nope")
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr


def test_logs_follow_stops_on_sigterm_without_a_traceback(deployed: LocalStack) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "canary_deploy", "logs", "-f", "-n", "1"],
        cwd=deployed.root,
        env=deployed.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("daemon ")  # the last line, then following
        deployed.ok("set-weights", "90", "10")  # the daemon logs the change
        deadline = time.monotonic() + 60
        followed = ""
        while "90" not in followed and time.monotonic() < deadline:
            followed += proc.stdout.readline()
        assert "90" in followed
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 130
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
