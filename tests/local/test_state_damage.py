"""A damaged `.canary/state.db` (truncated, or overwritten with garbage): every command
says what is wrong and how to recover (exit 2, no traceback), `canary rollback` still
works while the daemon runs, and `canary repair` recovers - rebuilt from the running
daemon, or moved aside so that a fresh `deploy` starts over."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from canary_deploy.local.store import StateStore
from tests.local.conftest import LocalStack, Result

pytestmark = pytest.mark.integration


def damage(db: Path, how: str) -> None:
    """Truncate the file mid-page, or overwrite it with bytes that are not SQLite; its
    write-ahead log, if any, is overwritten too (else it masks the damage for a while)."""
    size = db.stat().st_size
    if how == "truncated":
        os.truncate(db, max(100, size // 2))
    else:
        db.write_bytes(random.Random(7).randbytes(max(size, 8192)))
    wal = db.with_name(db.name + "-wal")
    if wal.exists():
        with wal.open("r+b") as fh:
            fh.write(random.Random(8).randbytes(wal.stat().st_size))


def replace_damaged(db: Path, how: str) -> None:
    """Put a damaged copy in the file's place (and drop its write-ahead log and index),
    as a sync tool or a bad restore would: a running daemon keeps writing to the files it
    has open and never meets the damage, while every new command does."""
    with contextlib.closing(sqlite3.connect(db)) as live:
        live.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file
    copy = db.with_name("copy.db")
    copy.write_bytes(db.read_bytes())
    damage(copy, how)
    os.replace(copy, db)
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)


def fill(state_dir: Path) -> None:
    """A stored stack (no daemon) with enough history that the file spans many pages."""
    with closing(StateStore(state_dir)) as store:
        from canary_deploy.backend import ReleaseSpec
        from canary_deploy.weights import Weights

        store.save_spec(ReleaseSpec("builtin:v1", "builtin:v2", 2, 1, 8000, Weights(95, 5)))
        store.save_weights(Weights(80, 20))
        for i in range(500):
            store.add_event("deploy", None, f"event {i} " + "x" * 200)
    # Everything into the main file, as after a clean shutdown.
    for suffix in ("-wal", "-shm"):
        (state_dir / f"state.db{suffix}").unlink(missing_ok=True)


def assert_damage_reported(result: Result, db: Path) -> None:
    output = result.stderr + result.stdout
    assert result.exit_code == 2, output
    assert "Traceback" not in output and "bug" not in output, output
    assert f"the local state database {db} is damaged" in output, output
    assert "canary repair" in output, output


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_without_a_daemon_every_command_says_the_state_is_damaged(
    new_stack: Callable[[], LocalStack], how: str
) -> None:
    stack = new_stack()
    fill(stack.paths.state_dir)
    db = stack.paths.state_dir / "state.db"
    damage(db, how)
    for command in (
        ["status"],
        ["rollback"],
        ["set-weights", "50", "50"],
        ["deploy"],
        ["history"],
        ["abort"],
        ["delete", "--yes"],
    ):
        assert_damage_reported(stack.run(*command), db)
    assert stack.paths.daemon_pid() is None  # nothing was started on a damaged state

    repaired = stack.ok("repair")
    moved = [
        path
        for path in stack.paths.state_dir.glob("state.db.damaged-*")
        if not path.name.endswith(("-wal", "-shm"))
    ]
    assert len(moved) == 1 and f"moved to {moved[0]}" in repaired.stdout
    assert "canary deploy" in repaired.stdout  # what to do next
    assert not db.exists()
    stack.ok("deploy")
    assert stack.status()["listener"]["weights"]["stable"] == 95


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_with_a_daemon_rollback_works_and_repair_rebuilds_from_the_daemon(
    new_stack: Callable[[], LocalStack], how: str
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--image-canary", "builtin:v1")
    stack.ok("set-weights", "70", "30")
    db = stack.paths.state_dir / "state.db"
    replace_damaged(db, how)

    rolled_back = stack.run("rollback", "-o", "json")
    assert rolled_back.exit_code == 0, rolled_back.stderr
    assert "Traceback" not in rolled_back.stderr
    assert rolled_back.json()["listener"]["weights"] == {"stable": 100, "canary": 0, "baseline": 0}
    assert "damaged" in rolled_back.stderr and "canary repair" in rolled_back.stderr

    assert_damage_reported(stack.run("status"), db)

    repaired = stack.ok("repair")
    assert "rebuilt" in repaired.stdout and "daemon" in repaired.stdout
    assert list(stack.paths.state_dir.glob("state.db.damaged-*"))
    status = stack.status()  # every command works again, on what the daemon held
    assert status["listener"]["weights"] == {"stable": 100, "canary": 0, "baseline": 0}
    assert status["versions"]["canary"]["task_definition"]["image"] == "builtin:v1"
    assert stack.ok("repair").stdout.strip().endswith("nothing to repair.")

    # The rebuilt file is what a restarted daemon comes back from.
    stack.stop_everything()
    with closing(StateStore(stack.paths.state_dir)) as store:
        spec, weights = store.load_spec(), store.load_weights()
    assert spec is not None and spec.image_canary == "builtin:v1"
    assert weights is not None and weights.stable == 100


def test_damage_the_daemon_itself_meets_is_rebuilt_from_its_memory(
    new_stack: Callable[[], LocalStack],
) -> None:
    """Also the daemon's own view damaged (the shared-memory index too): its next write
    finds the damage, and it rebuilds the file at once, so the rollback goes through."""
    stack = new_stack()
    stack.ok("deploy")
    stack.ok("set-weights", "60", "40")
    db = stack.paths.state_dir / "state.db"
    damage(db, "garbage")
    shm = db.with_name("state.db-shm")
    with shm.open("r+b") as fh:
        fh.write(bytes(shm.stat().st_size))

    rolled_back = stack.run("rollback", "-o", "json")
    assert rolled_back.exit_code == 0, rolled_back.stderr
    assert rolled_back.json()["listener"]["weights"] == {"stable": 100, "canary": 0, "baseline": 0}
    assert stack.status()["listener"]["weights"]["stable"] == 100
    events = [e["message"] for e in stack.admin("GET", "/events")]
    assert any("damaged" in m and "rebuilt from the daemon's memory" in m for m in events)
    assert list(stack.paths.state_dir.glob("state.db.damaged-*"))
