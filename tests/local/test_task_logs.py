"""Task logs are capped and rotated per task like Docker's log drivers (issue 12 item 8),
the output tails in errors keep working across a rotation, and `delete` removes them."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from canary_deploy.local.tasklog import FILES, MAX_FILE_BYTES, RotatingLog, log_files, read_tail
from tests.local.conftest import LocalStack, wait_for

CHATTY_LINE = "chatty-task-says-hello-again"


def test_rotation_keeps_every_file_under_the_cap_and_the_newest_bytes(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    log = RotatingLog(path, max_bytes=10, files=3)
    try:
        log.write(b"aaaaaaaa\n")  # 9 bytes
        log.write(b"bbbbbbbb\n")  # does not fit: a new file, whole
        log.write(b"c" * 25)  # larger than a file: split, 1 + 10 + 10 + 4
    finally:
        log.close()
    names = log_files(path, 3)
    assert [p.name for p in names] == ["t.log", "t.log.1", "t.log.2"]
    assert all(p.stat().st_size <= 10 for p in names)
    # The oldest bytes were dropped; what is left is the newest, in order.
    kept = b"".join(p.read_bytes() for p in reversed(names))
    assert kept == (b"aaaaaaaa\nbbbbbbbb\n" + b"c" * 25)[-len(kept) :]
    assert path.read_bytes() == b"c" * 4
    assert not path.with_name("t.log.3").exists()


def test_a_writer_reopens_where_an_earlier_one_stopped(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    for _ in range(2):
        log = RotatingLog(path, max_bytes=10, files=2)
        log.write(b"123456")
        log.close()
    assert path.read_bytes() == b"123456"
    assert path.with_name("t.log.1").read_bytes() == b"123456"


def test_the_tail_reaches_into_the_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    log = RotatingLog(path, max_bytes=16, files=2)
    try:
        log.write(b"starting up\nfatal: no model\n")
    finally:
        log.close()
    assert path.stat().st_size < len("fatal: no model")
    assert read_tail(path, 40).endswith("fatal: no model")
    assert read_tail(path, 5) == "odel"  # only the last 5 characters, then stripped
    assert read_tail(tmp_path / "missing.log", 40) == ""


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for thread in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (thread / "children").read_text().split()]
    return children


def _sizes(paths: Iterable[Path]) -> dict[str, int]:
    found = {}
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            found[path.name] = path.stat().st_size
    return found


def _bytes_written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


@pytest.mark.integration
def test_a_chatty_task_keeps_its_logs_under_the_cap_and_delete_removes_them(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    chatty = (
        f"sh -c 'yes {CHATTY_LINE} & exec {sys.executable} -m canary_deploy.sample_app "
        "--version v2 --port $PORT'"
    )
    stack.ok("deploy", "--image-canary", chatty, "--canary-count", "1")
    task = next(t for t in stack.tasks() if t["version"] == "canary")
    (yes,) = _children(task["pid"])
    cap = FILES * MAX_FILE_BYTES
    # The task has written four times the cap (the reported task wrote 4.3 GB in 15 s).
    wait_for(lambda: _bytes_written(yes) > 4 * cap, 120, "the chatty task to write 4x the cap")

    logs = log_files(stack.paths.task_logs / f"{task['task_id']}.log")
    # Sampled while the writer rotates: a name may be missing for a moment, never extra.
    sizes = _sizes(stack.paths.task_logs.glob(f"{task['task_id']}.log*"))
    assert set(sizes) <= {p.name for p in logs}, sizes
    assert sizes and all(size <= MAX_FILE_BYTES for size in sizes.values()), sizes
    assert CHATTY_LINE in read_tail(logs[0], 200)  # what the tails in errors read

    stack.ok("delete", "--yes")
    assert list(stack.paths.task_logs.glob("*")) == []
