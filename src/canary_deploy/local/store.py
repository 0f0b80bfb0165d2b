"""The local stack's state in SQLite (WAL): desired spec, weights, listener rules, event log,
metric buckets."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from canary_deploy.backend import ReleaseSpec
from canary_deploy.local.statedb import DB_NAME, CorruptState, connect, move_aside
from canary_deploy.routes import TesterRoute, routes_from_list
from canary_deploy.weights import Weights

__all__ = ["DB_NAME", "Event", "StateStore", "spec_from_dict", "spec_to_dict"]

log = logging.getLogger("canary.daemon")
Buckets = Callable[[], Iterable[dict[str, Any]]]
_P = ParamSpec("_P")
_R = TypeVar("_R")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL, kind TEXT NOT NULL, version TEXT, message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metric_buckets (
    t INTEGER NOT NULL, version TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (t, version)
);
"""


@dataclass(frozen=True)
class Event:
    id: int
    t: float
    kind: str
    version: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "t": self.t,
            "kind": self.kind,
            "version": self.version,
            "message": self.message,
        }


def spec_to_dict(spec: ReleaseSpec) -> dict[str, Any]:
    return {
        "image_stable": spec.image_stable,
        "image_canary": spec.image_canary,
        "desired_count_stable": spec.desired_count_stable,
        "desired_count_canary": spec.desired_count_canary,
        "container_port": spec.container_port,
        "weights": spec.weights.to_dict(),
        "health_check_path": spec.health_check_path,
        "stickiness_seconds": spec.stickiness_seconds,
        "desired_count_baseline": spec.desired_count_baseline,
        "slow_start_seconds": spec.slow_start_seconds,
    }


def spec_from_dict(doc: dict[str, Any]) -> ReleaseSpec:
    """The inverse of `spec_to_dict`; keys older state lacks take their defaults."""
    return ReleaseSpec(
        image_stable=str(doc["image_stable"]),
        image_canary=str(doc["image_canary"]),
        desired_count_stable=int(doc["desired_count_stable"]),
        desired_count_canary=int(doc["desired_count_canary"]),
        container_port=int(doc["container_port"]),
        weights=Weights.from_dict(doc["weights"]),
        health_check_path=str(doc.get("health_check_path", "/")),
        stickiness_seconds=doc.get("stickiness_seconds"),
        desired_count_baseline=int(doc.get("desired_count_baseline", 0)),
        slow_start_seconds=int(doc.get("slow_start_seconds", 0)),
    )


def _heals(
    method: Callable[Concatenate[StateStore, _P], _R],
) -> Callable[Concatenate[StateStore, _P], _R]:
    """In the daemon (see `rebuild_when_damaged`), damage met by this call rebuilds the
    file from memory, and the call runs once more on the new file."""

    @functools.wraps(method)
    def run(self: StateStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except CorruptState as exc:
            if self._recent_buckets is None:
                raise
            self.repair(exc.reason)
            return method(self, *args, **kwargs)

    return run


class StateStore:
    """One SQLite file per stack. Writes are small and synchronous: a weight change is on
    disk before the admin call returns, so `kill -9` right after it loses nothing.

    A damaged file raises `CorruptState` (see statedb.py). The documents this store read
    or wrote stay in memory too, so the daemon can `rebuild` a damaged file."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / DB_NAME
        self._docs: dict[str, Any] = {}
        self._recent_buckets: Buckets | None = None
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    # ---- damage

    def rebuild_when_damaged(self, recent_buckets: Buckets) -> None:
        """For the daemon, which holds the truth in memory: from now on, damage met by
        any call is repaired at once (`rebuild`, with `recent_buckets()`) and recorded,
        so the stack keeps working (an emergency rollback above all)."""
        self._recent_buckets = recent_buckets

    def rebuild(self, buckets: Iterable[dict[str, Any]] = ()) -> Path:
        """Move the file aside and write a new one from memory: the documents (spec,
        weights, listener) this store last read or wrote, and `buckets`. Returns where
        the old file went (its events and rollout history stay there)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()  # its closing checkpoint may meet the damage too
        moved = move_aside(self.path)
        self._db = self._open()
        for key, value in self._docs.items():
            self._put(key, value)
        self._write_buckets(buckets)
        return moved

    def repair(self, problem: str) -> Path:
        """In the daemon: `rebuild` with the recent metrics, and record why (an event in
        the new file, a line in the daemon's log). Returns where the old file went."""
        if self._recent_buckets is None:
            raise RuntimeError("repair() needs rebuild_when_damaged() first")
        moved = self.rebuild(self._recent_buckets())
        message = (
            f"the state database was damaged ({problem}): moved to {moved.name}, "
            "rebuilt from the daemon's memory (spec, weights, listener, recent metrics)"
        )
        log.warning("%s", message)
        self.add_event("daemon", None, message)
        return moved

    # ---- key/value documents

    def _get(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        value = None if row is None else json.loads(row[0])
        if value is not None:
            self._docs[key] = value
        return value

    def _put(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )
        self._docs[key] = value

    @_heals
    def load_spec(self) -> ReleaseSpec | None:
        doc = self._get("spec")
        return None if doc is None else spec_from_dict(doc)

    @_heals
    def save_spec(self, spec: ReleaseSpec) -> None:
        self._put("spec", spec_to_dict(spec))

    @_heals
    def load_weights(self) -> Weights | None:
        doc = self._get("weights")
        return None if doc is None else Weights.from_dict(doc)

    @_heals
    def save_weights(self, weights: Weights, revision: int = 0) -> None:
        """`revision` numbers the listener's weight changes (see StackAdmin)."""
        self._put("weights", {**weights.to_dict(), "revision": revision})

    @_heals
    def weights_revision(self) -> int:
        doc = self._get("weights")
        return 0 if doc is None else int(doc.get("revision", 0))

    @_heals
    def load_listener(self) -> tuple[str, int] | None:
        doc = self._get("listener")
        return None if doc is None else (str(doc["host"]), int(doc["port"]))

    @_heals
    def save_listener(self, host: str, port: int) -> None:
        """The bound address, so a restarted daemon comes back where clients point."""
        self._put("listener", {"host": host, "port": port})

    @_heals
    def load_rules(self) -> list[TesterRoute]:
        """The listener's rules (tester routes), in priority order."""
        doc = self._get("rules")
        return [] if doc is None else routes_from_list(doc)

    @_heals
    def save_rules(self, routes: list[TesterRoute]) -> None:
        self._put("rules", [r.to_dict() for r in routes])

    @_heals
    def clear_spec(self) -> None:
        """After `delete`: nothing is desired any more (no spec, weights, listener or
        rules), history stays."""
        self._db.execute("DELETE FROM kv WHERE key IN ('spec', 'weights', 'listener', 'rules')")
        for key in ("spec", "weights", "listener", "rules"):
            self._docs.pop(key, None)

    # ---- event log

    @_heals
    def add_event(self, kind: str, role: str | None, message: str, t: float | None = None) -> None:
        self._db.execute(
            "INSERT INTO events (t, kind, version, message) VALUES (?, ?, ?, ?)",
            (time.time() if t is None else t, kind, role, message),
        )

    @_heals
    def events(self, since_id: int = 0, limit: int = 200) -> list[Event]:
        """The newest `limit` events after `since_id`, oldest first."""
        rows = self._db.execute(
            "SELECT id, t, kind, version, message FROM events WHERE id > ? "
            "ORDER BY id DESC LIMIT ?",
            (since_id, limit),
        ).fetchall()
        return [Event(*row) for row in reversed(rows)]

    # ---- metrics

    @_heals
    def save_buckets(self, buckets: Iterable[dict[str, Any]]) -> int:
        return self._write_buckets(buckets)

    def _write_buckets(self, buckets: Iterable[dict[str, Any]]) -> int:
        rows = [(int(b["t"]), str(b["version"]), json.dumps(b)) for b in buckets]
        self._db.executemany(
            "INSERT INTO metric_buckets (t, version, doc) VALUES (?, ?, ?) "
            "ON CONFLICT(t, version) DO UPDATE SET doc = excluded.doc",
            rows,
        )
        return len(rows)

    @_heals
    def load_buckets(self, since: float) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT doc FROM metric_buckets WHERE t >= ? ORDER BY t", (int(since),)
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    @_heals
    def prune(self, before: float) -> None:
        """Drop metric buckets older than `before`; the event log is kept."""
        self._db.execute("DELETE FROM metric_buckets WHERE t < ?", (int(before),))
