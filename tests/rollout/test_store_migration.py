"""A state db written by an older canary opens, and its rollouts read with the defaults
of the columns added since."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from canary_deploy.analysis import Judge
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.store import RolloutStatus, RolloutStore

_FIRST_SCHEMA = """
CREATE TABLE rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, stack TEXT NOT NULL, status TEXT NOT NULL,
    step INTEGER NOT NULL, step_started_at REAL NOT NULL, step_canary_requests INTEGER NOT NULL,
    cursor REAL NOT NULL, plan TEXT NOT NULL, judge TEXT NOT NULL, last_decision TEXT,
    canary_image TEXT, reason TEXT, owner_pid INTEGER, heartbeat REAL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL
);
"""


def test_a_db_from_before_the_added_columns_reads_and_saves(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    plan = build_plan("local", {"steps": [5, 100]})
    old_plan = {k: v for k, v in plan.to_dict().items()
                if k not in ("max_canary_tasks", "reread_s", "tick_s")}  # fmt: skip
    db = sqlite3.connect(path)
    db.executescript(_FIRST_SCHEMA)
    db.execute(
        "INSERT INTO rollouts (stack, status, step, step_started_at, step_canary_requests, "
        "cursor, plan, judge, created_at, updated_at) VALUES (?, ?, 0, 1, 0, 1, ?, ?, 1, 1)",
        ("stack", "running", json.dumps(old_plan), json.dumps(Judge(plan.judge).to_dict())),
    )
    db.commit()
    db.close()
    with closing(RolloutStore(path, "stack")) as store:
        r = store.get(1)
        assert r.status is RolloutStatus.RUNNING
        assert (r.applied_weights, r.fed_windows, r.health_wait_since) == (None, (), None)
        # A plan stored before these settings keeps the pace it was started with.
        assert (r.plan.max_canary_tasks, r.plan.reread_s, r.plan.tick_s) == (None, 0.0, 0.25)
        store.save(r, now=2.0)
        assert store.get(1).fed_windows == ()
