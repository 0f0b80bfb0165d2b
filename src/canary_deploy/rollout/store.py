"""Rollout state and audit log in SQLite: one row per rollout, events, and commands
sent from other terminals. Every state change and its event commit together."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from canary_deploy.errors import UsageError
from canary_deploy.local.statedb import connect
from canary_deploy.rollout.late import FedWindow
from canary_deploy.rollout.model import (
    ACTOR,
    HEARTBEAT_STALE_S,
    Command,
    Event,
    EventRecord,
    RecordedDecision,
    Rollout,
    RolloutStatus,
    StaleState,
    pid_alive,
)
from canary_deploy.rollout.plan import RolloutPlan
from canary_deploy.weights import Weights

# The rollout's types live in model.py; importing them from here keeps working.
__all__ = [
    "ACTOR",
    "HEARTBEAT_STALE_S",
    "Command",
    "Event",
    "EventRecord",
    "RecordedDecision",
    "Rollout",
    "RolloutStatus",
    "RolloutStore",
    "pid_alive",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stack TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL,
    step_started_at REAL NOT NULL,
    step_canary_requests INTEGER NOT NULL,
    cursor REAL NOT NULL,
    plan TEXT NOT NULL,
    judge TEXT NOT NULL,
    last_decision TEXT,
    canary_image TEXT,
    reason TEXT,
    owner_pid INTEGER,
    heartbeat REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    applied_weights TEXT,
    fed_windows TEXT,
    health_wait_since REAL
);
CREATE TABLE IF NOT EXISTS rollout_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id INTEGER NOT NULL,
    t REAL NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT
);
CREATE TABLE IF NOT EXISTS rollout_commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rollout_id INTEGER NOT NULL,
    t REAL NOT NULL,
    command TEXT NOT NULL,
    actor TEXT NOT NULL,
    consumed_at REAL
);
CREATE INDEX IF NOT EXISTS rollout_events_by_rollout ON rollout_events (rollout_id, id);
"""

# Columns added after the first release: (table, column, type), added to older dbs.
_ADDED_COLUMNS = (
    ("rollouts", "applied_weights", "TEXT"),
    ("rollouts", "fed_windows", "TEXT"),
    ("rollouts", "health_wait_since", "REAL"),
)


class RolloutStore:
    """Rollouts of one stack (`stack` keys the rows, so one db may serve several)."""

    def __init__(self, path: Path, stack: str) -> None:
        self.path = path
        self.stack = stack
        # Private (0600) like the rest of the state; damage raises `CorruptState`.
        self._db = connect(path, timeout=10.0, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
            for table, column, kind in _ADDED_COLUMNS:
                info = self._db.execute(f"PRAGMA table_info({table})").fetchall()
                if column not in {row[1] for row in info}:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: one writer at a time, state and events commit together."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ---- rollouts

    def _row(self, row: tuple[Any, ...]) -> Rollout:
        return Rollout(
            id=row[0],
            stack=row[1],
            status=RolloutStatus(row[2]),
            step=row[3],
            step_started_at=row[4],
            step_canary_requests=row[5],
            cursor=row[6],
            plan=RolloutPlan.from_dict(json.loads(row[7])),
            judge=json.loads(row[8]),
            last_decision=None
            if row[9] is None
            else RecordedDecision.from_dict(json.loads(row[9])),
            canary_image=row[10],
            reason=row[11],
            owner_pid=row[12],
            heartbeat=row[13],
            created_at=row[14],
            updated_at=row[15],
            applied_weights=None if row[16] is None else Weights.from_dict(json.loads(row[16])),
            fed_windows=tuple(FedWindow.from_dict(w) for w in json.loads(row[17] or "[]")),
            health_wait_since=row[18],
        )

    _COLUMNS = (
        "id, stack, status, step, step_started_at, step_canary_requests, cursor, plan, judge, "
        "last_decision, canary_image, reason, owner_pid, heartbeat, created_at, updated_at, "
        "applied_weights, fed_windows, health_wait_since"
    )

    def get(self, rollout_id: int) -> Rollout:
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM rollouts WHERE id = ?", (rollout_id,)
        ).fetchone()
        if row is None:
            raise UsageError(f"no rollout {rollout_id} for stack {self.stack}")
        return self._row(row)

    def latest(self) -> Rollout | None:
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM rollouts WHERE stack = ? ORDER BY id DESC LIMIT 1",
            (self.stack,),
        ).fetchone()
        return None if row is None else self._row(row)

    def active(self) -> Rollout | None:
        """The rollout that has not finished yet, if any."""
        latest = self.latest()
        return latest if latest is not None and not latest.status.terminal else None

    def create(
        self,
        plan: RolloutPlan,
        judge: dict[str, Any],
        *,
        now: float,
        canary_image: str | None,
        actor: str,
    ) -> Rollout:
        with self.transaction() as db:
            if self.active() is not None:
                raise UsageError(f"a rollout of {self.stack} is already in progress")
            cur = db.execute(
                "INSERT INTO rollouts (stack, status, step, step_started_at, "
                "step_canary_requests, cursor, plan, judge, canary_image, owner_pid, heartbeat, "
                "created_at, updated_at) VALUES (?, ?, 0, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.stack,
                    RolloutStatus.RUNNING,
                    now,
                    now,
                    json.dumps(plan.to_dict()),
                    json.dumps(judge),
                    canary_image,
                    os.getpid(),
                    now,
                    now,
                    now,
                ),
            )
            rollout_id = int(cur.lastrowid or 0)
            weights = " -> ".join(f"{s.canary_weight}%" for s in plan.steps)
            self._insert_event(
                db, rollout_id, now, "started", actor, f"rollout started: canary {weights}"
            )
        return self.get(rollout_id)

    def save(
        self,
        rollout: Rollout,
        *,
        now: float,
        events: Sequence[EventRecord] = (),
        consumed: Sequence[int] = (),
    ) -> Rollout:
        """Write the rollout's new state, its events and the commands it consumed at once,
        so a crash never applies a command twice nor loses a recorded action."""
        new = replace(rollout, updated_at=now)
        with self.transaction() as db:
            db.execute(
                "UPDATE rollouts SET status=?, step=?, step_started_at=?, step_canary_requests=?, "
                "cursor=?, judge=?, last_decision=?, reason=?, heartbeat=?, updated_at=?, "
                "applied_weights=?, fed_windows=?, health_wait_since=? WHERE id=?",
                (
                    new.status,
                    new.step,
                    new.step_started_at,
                    new.step_canary_requests,
                    new.cursor,
                    json.dumps(new.judge),
                    None if new.last_decision is None else json.dumps(new.last_decision.to_dict()),
                    new.reason,
                    now,
                    now,
                    None
                    if new.applied_weights is None
                    else json.dumps(new.applied_weights.to_dict()),
                    json.dumps([w.to_dict() for w in new.fed_windows]),
                    new.health_wait_since,
                    new.id,
                ),
            )
            for kind, actor, message, data in events:
                self._insert_event(db, new.id, now, kind, actor, message, data)
            for command_id in consumed:
                taken = db.execute(
                    "UPDATE rollout_commands SET consumed_at=? WHERE id=? AND consumed_at IS NULL",
                    (now, command_id),
                )
                if taken.rowcount != 1:
                    # Withdrawn (or taken by another process) since this tick read it:
                    # nothing is written, and the next tick decides without it.
                    raise StaleState(
                        f"command {command_id} of rollout {new.id} was withdrawn or consumed "
                        "since it was read; nothing was saved"
                    )
        return new

    def claim(self, rollout_id: int, *, now: float) -> None:
        """Become the rollout's controller, refusing while another live one holds it."""
        pid = os.getpid()
        with self.transaction() as db:
            row = db.execute(
                "SELECT owner_pid, heartbeat FROM rollouts WHERE id = ?", (rollout_id,)
            ).fetchone()
            owner, beat = row if row else (None, None)
            if (
                owner
                and owner != pid
                and pid_alive(owner)
                and beat is not None
                and now - beat < HEARTBEAT_STALE_S
            ):
                raise UsageError(
                    f"rollout {rollout_id} of {self.stack} is already being run by process {owner}",
                    hint="watch it with `canary status`, or steer it with "
                    "`canary promote|abort|pause|resume`",
                )
            db.execute(
                "UPDATE rollouts SET owner_pid=?, heartbeat=? WHERE id=?", (pid, now, rollout_id)
            )

    def renew(self, rollout_id: int, *, now: float) -> None:
        """A sign of life from this controller during a long action (no state change)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE rollouts SET heartbeat=? WHERE id=? AND owner_pid=?",
                (now, rollout_id, os.getpid()),
            )

    def release(self, rollout_id: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE rollouts SET owner_pid=NULL WHERE id=? AND owner_pid=?",
                (rollout_id, os.getpid()),
            )

    def controller_alive(self, rollout: Rollout, *, now: float) -> bool:
        return bool(
            rollout.owner_pid
            and pid_alive(rollout.owner_pid)
            and rollout.heartbeat is not None
            and now - rollout.heartbeat < HEARTBEAT_STALE_S
        )

    # ---- events and commands

    @staticmethod
    def _insert_event(
        db: sqlite3.Connection,
        rollout_id: int,
        t: float,
        kind: str,
        actor: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO rollout_events (rollout_id, t, kind, actor, message, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rollout_id, t, kind, actor, message, None if data is None else json.dumps(data)),
        )

    def events(self, rollout_id: int | None = None) -> list[Event]:
        if rollout_id is None:
            rows = self._db.execute(
                "SELECT e.id, e.rollout_id, e.t, e.kind, e.actor, e.message, e.data "
                "FROM rollout_events e JOIN rollouts r ON r.id = e.rollout_id "
                "WHERE r.stack = ? ORDER BY e.id",
                (self.stack,),
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT id, rollout_id, t, kind, actor, message, data FROM rollout_events "
                "WHERE rollout_id = ? ORDER BY id",
                (rollout_id,),
            ).fetchall()
        return [
            Event(r[0], r[1], r[2], r[3], r[4], r[5], None if r[6] is None else json.loads(r[6]))
            for r in rows
        ]

    def send(self, rollout_id: int, command: Command, *, actor: str) -> int:
        """Queue a command for the rollout's controller; returns its id."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO rollout_commands (rollout_id, t, command, actor) VALUES (?, ?, ?, ?)",
                (rollout_id, time.time(), command, actor),
            )
        return int(cur.lastrowid or 0)

    def withdraw(self, command_id: int, *, now: float, why: str) -> bool:
        """Take back a command no controller consumed, so it can never fire later; the
        withdrawal is recorded. False when a controller consumed it first."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT rollout_id, command, actor FROM rollout_commands "
                "WHERE id = ? AND consumed_at IS NULL",
                (command_id,),
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM rollout_commands WHERE id = ?", (command_id,))
            rollout_id, command, actor = row
            self._insert_event(
                db, rollout_id, now, "withdrawn", actor, f"{command} withdrawn: {why}"
            )
        return True

    def pending_commands(self, rollout_id: int) -> list[tuple[int, Command, str]]:
        rows = self._db.execute(
            "SELECT id, command, actor FROM rollout_commands "
            "WHERE rollout_id = ? AND consumed_at IS NULL ORDER BY id",
            (rollout_id,),
        ).fetchall()
        return [(r[0], Command(r[1]), r[2]) for r in rows]
