"""One daemon and one data plane per state directory: the lock `paths.sole_holder` holds."""

from __future__ import annotations

import stat
from pathlib import Path

from canary_deploy.local.paths import sole_holder


def test_a_second_process_of_a_kind_finds_the_lock_held_until_the_first_lets_go(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "daemon.lock"
    with sole_holder(lock) as first, sole_holder(lock) as second:
        assert (first, second) == (True, False)
    with sole_holder(lock) as again:
        assert again
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
