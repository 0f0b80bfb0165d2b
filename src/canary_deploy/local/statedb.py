"""The stack's SQLite file (`.canary/state.db`): opened owner-only, and a damaged one
reported as one clear error (exit 2, what to do) instead of a traceback - from the
first statement to the last row fetched."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from canary_deploy.errors import EXIT_USAGE, CanaryError, OperationFailed
from canary_deploy.local.paths import StackPaths, private_dir, private_file, tighten_state_dir

DB_NAME = "state.db"
# SQLite's own companions of a WAL database; they move with it.
_COMPANIONS = ("-wal", "-shm")
# Primary result codes that mean the file is not (or no longer) a sound database.
_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class CorruptState(CanaryError):
    """The state database cannot be read: truncated, overwritten, or not SQLite at all."""

    exit_code = EXIT_USAGE

    def __init__(self, path: Path, reason: str) -> None:
        daemon = StackPaths.for_dir(path.parent).daemon_pid()
        if daemon is not None:
            hint = (
                f"run `canary repair`: it moves the file aside and the running daemon "
                f"(pid {daemon}) rebuilds it from what it holds (spec, weights, listener, "
                "recent metrics); `canary rollback` works meanwhile"
            )
        else:
            hint = (
                "run `canary repair`: it moves the file aside (kept for inspection), then "
                "`canary deploy` starts the stack afresh - give it your images again, the "
                "stored spec and history stay in the moved file"
            )
        super().__init__(f"the local state database {path} is damaged ({reason})", hint=hint)
        self.path = path
        self.reason = reason


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DAMAGED


class _Cursor(sqlite3.Cursor):
    """Translates damage into `CorruptState` wherever SQLite reads pages: on execute and
    on every fetch (rows are read lazily)."""

    db_path: Path

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise CorruptState(self.db_path, str(exc)) from None
            raise

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        with self._guard():
            super().execute(sql, parameters)
        return self

    def executemany(self, sql: str, seq: Iterable[Any], /) -> _Cursor:
        with self._guard():
            super().executemany(sql, seq)
        return self

    def executescript(self, script: str, /) -> _Cursor:
        with self._guard():
            super().executescript(script)
        return self

    def fetchone(self) -> Any:
        with self._guard():
            return super().fetchone()

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        with self._guard():
            return super().fetchmany(size)

    def fetchall(self) -> list[Any]:
        with self._guard():
            return super().fetchall()


class _Connection(sqlite3.Connection):
    db_path: Path

    def cursor(self, factory: Any = _Cursor) -> Any:
        cursor = super().cursor(factory)
        cursor.db_path = self.db_path
        return cursor

    # sqlite3.Connection's shortcuts do not go through `cursor()`: route them there.
    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq: Iterable[Any], /) -> Any:
        return self.cursor().executemany(sql, seq)

    def executescript(self, script: str, /) -> Any:
        return self.cursor().executescript(script)


def connect(path: Path, **options: Any) -> sqlite3.Connection:
    """Open (or create) the database at `path`: its directory 0700 and older files there
    tightened, the file 0600 (SQLite gives its -wal and -shm the same mode)."""
    private_dir(path.parent)
    tighten_state_dir(path.parent)
    private_file(path)
    db = sqlite3.connect(path, factory=_Connection, **options)
    assert isinstance(db, _Connection)
    db.db_path = path
    return db


def damage(path: Path) -> str | None:
    """What is wrong with the database at `path` (SQLite's quick_check), None if sound.
    Anything else that stops the check (a locked file, no permission) is an error: the
    file is not judged damaged for it."""
    db = sqlite3.connect(path, timeout=10.0)
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            return str(exc)
        raise OperationFailed(f"cannot check {path}: {exc}") from None
    finally:
        db.close()
    problems = [str(row[0]) for row in rows if row[0] != "ok"]
    return "; ".join(problems[:3]) or None


def move_aside(path: Path) -> Path:
    """Rename the database and its companions to `<name>.damaged-<time>`; returns the
    new name of the database itself."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", *_COMPANIONS):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{moved}{suffix}")
    return moved
