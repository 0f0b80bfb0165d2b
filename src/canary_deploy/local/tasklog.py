"""Task output with a size cap, like Docker's log drivers (`max-size`, `max-file`): a tiny
writer process per task reads the task's stdout+stderr from a pipe and rotates
`<task id>.log` into `.log.1` … `.log.<FILES-1>`, so a task's logs never pass
FILES x MAX_FILE_BYTES.

Why a process of its own, not the daemon: a task's output must not depend on the daemon
reading it (the daemon may crash or restart while tasks go on), and a size check that
truncates a file the task appends to loses lines and lets a fast writer overshoot by
whatever it writes between checks (4.3 GB in 15 s was seen). The writer lives exactly as
long as the pipe: it exits when the task and everything it started have closed their
end. Like Docker's default (blocking) mode, a task writing faster than the disk takes it
waits; the writer never stops reading, so no task waits forever.

Run as `python -m canary_deploy.local.tasklog PATH` with the pipe on stdin; it imports
only the standard library (one small interpreter per task).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

MAX_FILE_BYTES = 10 * 1024 * 1024  # 10 MiB per file, like `--log-opt max-size=10m`
FILES = 3  # the current file and two rotated ones, like `--log-opt max-file=3`
_READ_BYTES = 64 * 1024
_MODE = 0o600  # the state directory is private (see local/paths.py)


def log_files(path: Path, files: int = FILES) -> list[Path]:
    """A task's log files, newest first: `x.log`, `x.log.1`, …"""
    return [path, *(path.with_name(f"{path.name}.{n}") for n in range(1, files))]


def read_tail(path: Path, max_chars: int = 600) -> str:
    """The last `max_chars` bytes a task wrote (stripped), reaching into the rotated
    file when the current one was just started."""
    chunks: list[bytes] = []
    wanted = max_chars
    for name in log_files(path):
        try:
            with name.open("rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - wanted))
                chunks.append(fh.read(wanted))
        except OSError:
            continue  # not there (yet), or renamed this instant by a rotation: the next
        wanted -= len(chunks[-1])
        if wanted <= 0:
            break
    return b"".join(reversed(chunks)).decode("utf-8", "replace").strip()


class RotatingLog:
    """Appends to `path`; a write that would pass `max_bytes` first rotates the files
    (`x.log` -> `x.log.1` -> … ; the oldest is dropped). No file passes `max_bytes`: a
    write that fits a fresh file goes there whole, a larger one is split."""

    def __init__(self, path: Path, max_bytes: int = MAX_FILE_BYTES, files: int = FILES) -> None:
        if max_bytes < 1 or files < 1:
            raise ValueError("a task log needs max_bytes >= 1 and files >= 1")
        self.path = path
        self.max_bytes = max_bytes
        self.files = files
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        return os.open(self.path, flags, _MODE)

    def write(self, data: bytes) -> None:
        if self._size and self._size + len(data) > self.max_bytes >= len(data):
            self.rotate()
        view = memoryview(data)
        while view:
            if self._size >= self.max_bytes:
                self.rotate()
            room = self.max_bytes - self._size
            written = os.write(self._fd, view[:room])
            self._size += written
            view = view[written:]

    def rotate(self) -> None:
        os.close(self._fd)
        names = log_files(self.path, self.files)
        if self.files == 1:
            os.truncate(self.path, 0)
        for newer, older in zip(reversed(names[:-1]), reversed(names[1:]), strict=True):
            if newer.exists():
                os.replace(newer, older)
        self._fd = self._open()
        self._size = 0

    def close(self) -> None:
        os.close(self._fd)


def pump(source: int, log: RotatingLog) -> None:
    """Copy everything from `source` into `log` until end of file."""
    while True:
        try:
            data = os.read(source, _READ_BYTES)
        except InterruptedError:
            continue
        if not data:
            return
        try:
            log.write(data)
        except OSError:
            continue  # a full disk drops output; the task must not stop for it


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3):
        print("usage: python -m canary_deploy.local.tasklog PATH [MAX_BYTES FILES]")
        return 2
    # Ctrl-C in a terminal is not for it; it ends when the task's output ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limits = (int(argv[1]), int(argv[2])) if len(argv) == 3 else (MAX_FILE_BYTES, FILES)
    log = RotatingLog(Path(argv[0]), *limits)
    try:
        pump(sys.stdin.fileno(), log)
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
