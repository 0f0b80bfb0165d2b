"""`canary logs` on the local target: the tasks' output (capped and rotated by tasklog.py)
and the daemon's log, the last lines and then, when following, what comes next."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from canary_deploy.local.tasklog import log_files

_FOLLOW_POLL_S = 0.25


def last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a log, reaching into its rotated files (`x.log.1`, …)
    when the current one holds fewer.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "t.log.1").write_text("a\\nb\\n")
    >>> _ = (d / "t.log").write_text("c\\nd\\n")
    >>> last_lines(d / "t.log", 3)
    ['b', 'c', 'd']
    """
    lines: list[str] = []
    for name in log_files(path):
        try:
            text = name.read_bytes().decode("utf-8", "replace")
        except OSError:
            continue  # no such (rotated) file, or renamed this instant by a rotation
        lines = text.splitlines() + lines
        if len(lines) >= count:
            break
    return lines[-count:] if count else []


@dataclass
class _Follower:
    """Reads what is appended to one log file from a position on; starts over when the
    file is rotated (a new file under the name) or truncated."""

    path: Path
    position: int = 0
    inode: int | None = None
    partial: bytes = field(default=b"")

    @classmethod
    def at_end(cls, path: Path) -> _Follower:
        try:
            st = path.stat()
        except OSError:
            return cls(path)
        return cls(path, st.st_size, st.st_ino)

    def new_lines(self) -> list[str]:
        try:
            st = self.path.stat()
        except OSError:
            return []
        if st.st_ino != self.inode or st.st_size < self.position:
            self.inode, self.position = st.st_ino, 0  # rotated: the new file from its start
        if st.st_size == self.position:
            return []
        with self.path.open("rb") as fh:
            fh.seek(self.position)
            data = self.partial + fh.read(st.st_size - self.position)
        self.position = st.st_size
        *complete, self.partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete]


def follow(
    paths: dict[str, Path],
    emit: Callable[[str, str], None],
    *,
    stop: Callable[[], bool] = lambda: False,
    poll_s: float = _FOLLOW_POLL_S,
) -> None:
    """Emit (source, line) for every line appended to any of `paths` from now on, until
    `stop()` says so (or Ctrl-C)."""
    followers = {source: _Follower.at_end(path) for source, path in paths.items()}
    while not stop():
        for source, follower in followers.items():
            for line in follower.new_lines():
                emit(source, line)
        time.sleep(poll_s)


def task_logs(log_dir: Path, version: str, live_tasks: list[str] | None) -> dict[str, Path]:
    """The log of each task of `version`: the live ones (from the daemon) when known,
    else the most recent task's (the daemon is down: its tasks too)."""
    if live_tasks is not None:
        return {t: log_dir / f"{t}.log" for t in sorted(live_tasks)}
    newest = sorted(_logs_of(log_dir, version), key=_mtime, reverse=True)[:1]
    return {p.name.removesuffix(".log"): p for p in newest}


def _logs_of(log_dir: Path, version: str) -> Iterator[Path]:
    return (p for p in log_dir.glob(f"{version}-*.log") if p.is_file())


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
