"""`canary demo --emulated-aws`: the seed's walk-through on moto, leaving nothing running."""

from __future__ import annotations

import io
import os
import re

import pytest
from rich.console import Console

from canary_deploy.aws import demo


def test_demo_walks_the_seed_steps_and_stops_its_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # must be overridden, not used
    out = io.StringIO()
    code = demo.run(Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert code == 0, text
    assert "EMULATED AWS (moto)" in text
    assert "no container task really runs" in text
    steps = re.findall(r"\$ canary --target aws ([a-z-]+(?: \d+ \d+)?)", text)
    assert steps == [
        "deploy",
        "status",
        "set-weights 75 25",
        "set-weights 50 50",
        "set-weights 0 100",
        "rollback",
        "delete",
    ]
    weights = re.findall(r"listener weights stable/canary = (\d+/\d+)", text)
    assert weights == ["95/5", "95/5", "75/25", "50/50", "0/100", "100/0"]
    pid = int(re.search(r"pid (\d+)", text).group(1))  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # The caller's environment is restored.
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
