"""Run `canary` as a user would: a subprocess in a directory of its own, with none of the
caller's settings in its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from canary_deploy.config import ENV_FALLBACKS, ENV_VARS

_SETTINGS_VARS = {*ENV_VARS, *ENV_FALLBACKS, "CANARY_CONFIG"}


def canary(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`canary ARGS` in `cwd` (state in `cwd/.canary`), wide output, no terminal."""
    clean = {k: v for k, v in os.environ.items() if k not in _SETTINGS_VARS}
    clean.update({"COLUMNS": "200", "CANARY_STATE_DIR": str(cwd / ".canary"), **env})
    return subprocess.run(
        [sys.executable, "-m", "canary_deploy", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
