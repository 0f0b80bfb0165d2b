"""What a rollout handed to the local daemon runs with: the settings `canary rollout`
saves next to the stack's state (`controller.json`, owner-only), which the daemon's
controller process (`runner.py`) and its `/metrics` read back."""

from __future__ import annotations

from pathlib import Path

from canary_deploy.config import Settings
from canary_deploy.local.paths import private_dir, private_opener
from canary_deploy.rollout.settings import RolloutSettings
from canary_deploy.rollout.store import RolloutStore

SETTINGS_FILE = "controller.json"


def settings_file(state_dir: Path) -> Path:
    return state_dir / SETTINGS_FILE


def save_settings(settings: Settings) -> Path:
    """Write what the controller process needs to open the same target and store: the
    settings, with the state directory made absolute (the daemon runs elsewhere)."""
    state_dir = settings.local.state_dir.expanduser().resolve()
    absolute = settings.model_copy(
        update={
            "local": settings.local.model_copy(update={"state_dir": state_dir}),
            "rollout": with_workdir(settings.rollout),
        }
    )
    path = settings_file(state_dir)
    private_dir(state_dir)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", opener=private_opener) as fh:  # the images may carry secrets
        fh.write(absolute.model_dump_json(indent=2))
    tmp.replace(path)
    return path


def with_workdir(rollout: RolloutSettings) -> RolloutSettings:
    """The rollout settings with the hooks' working directory made absolute (default:
    this process's, where `canary rollout` was started): the controller runs elsewhere."""
    hooks = rollout.hooks
    workdir = (hooks.workdir or Path.cwd()).expanduser().resolve()
    return rollout.model_copy(update={"hooks": hooks.model_copy(update={"workdir": workdir})})


def load_settings(state_dir: Path) -> Settings | None:
    try:
        return Settings.model_validate_json(settings_file(state_dir).read_text())
    except (OSError, ValueError):
        return None


def open_rollouts(state_dir: Path) -> RolloutStore | None:
    """The rollouts of the stack whose controller the daemon runs (named in the settings
    the CLI saved); None when no rollout was ever handed to the daemon."""
    settings = load_settings(state_dir)
    if settings is None:
        return None
    return RolloutStore(state_dir / "state.db", settings.stack_name)
