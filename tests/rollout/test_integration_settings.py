"""`[rollout.hooks]` and `[[notifications]]` in canary.toml: what loads, and the errors a
user gets for what does not (never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_deploy.config import load_settings
from canary_deploy.errors import UsageError


def load(tmp_path: Path, toml: str) -> object:
    cfg = tmp_path / "canary.toml"
    cfg.write_text(toml)
    return load_settings({}, env={}, config_file=cfg)


def problems(tmp_path: Path, toml: str) -> str:
    with pytest.raises(UsageError) as exc:
        load(tmp_path, toml)
    return exc.value.message


def test_hooks_and_webhooks_load(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[rollout.hooks]\npre_step = "./smoke.sh"\non_rollback = ["page", "--sev3"]\n'
        'pre_promote = {url = "https://ci.example.com/gate", retries = 2, timeout = "10s"}\n'
        'tester_header = "X-Canary=always"\n'
        '[notifications]\nurl = "https://hooks.slack.com/services/x"\nformat = "slack"\n',
    )
    hooks = settings.rollout.hooks  # type: ignore[attr-defined]
    assert hooks.pre_step.command == "./smoke.sh"
    assert hooks.on_rollback.command == ("page", "--sev3")
    assert (hooks.pre_promote.timeout, hooks.pre_promote.retries) == (10.0, 2)
    assert hooks.tester_header == "X-Canary: always"
    assert hooks.on_failure("pre_rollout") == "rollback" and hooks.on_failure("pre_step") == "pause"
    (webhook,) = settings.notifications  # type: ignore[attr-defined]  # one table is a list of one
    assert webhook.format == "slack" and "rolled_back" in webhook.events


def test_mistakes_are_named_with_their_path(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        '[rollout.hooks]\npre_promte = "x"\n'
        'pre_step = {command = "x", url = "http://a"}\ntester_header = "X-Canary"\n'
        '[[notifications]]\nurl = "hooks.slack.com/x"\nevents = ["rollback"]\n',
    )
    assert "rollout.hooks.pre_promte: unknown setting; did you mean pre_promote?" in message
    assert "rollout.hooks.pre_step: a hook needs exactly one of command or url" in message
    assert "expected a header like 'X-Canary: always', got 'X-Canary'" in message
    assert "notifications.0.url: url must start with http:// or https://" in message
    assert "notifications.0.events.0: Input should be 'started', 'step'" in message


def test_notifications_under_rollout_say_where_they_go(tmp_path: Path) -> None:
    message = problems(tmp_path, '[rollout.notifications]\nurl = "http://x/y"\n')
    assert "webhooks go in a top-level [[notifications]] table" in message


def test_on_failure_is_for_gates_only(tmp_path: Path) -> None:
    message = problems(
        tmp_path, '[rollout.hooks]\npost_step = {command = "x", on_failure = "pause"}'
    )
    assert "post_step: on_failure is for the gates (pre_rollout, pre_step, pre_promote)" in message
