"""canary.toml is validated whole when it is loaded: every mistake is named with its file,
key path and what is allowed, a typo gets the nearest known key, and no mistake ends in a
traceback (issue 13, items 1 and 3)."""

from pathlib import Path

import pytest

from canary_deploy.config import load_settings
from canary_deploy.errors import UsageError
from canary_deploy.rollout.handover import load_settings as load_saved
from canary_deploy.rollout.handover import save_settings
from canary_deploy.rollout.plan import build_plan
from tests.unit.cli import canary


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    cfg = tmp_path / "canary.toml"
    cfg.write_text(text)
    with pytest.raises(UsageError) as exc:
        load_settings({}, env=env or {}, config_file=cfg)
    assert exc.value.exit_code == 2
    return exc.value.message


@pytest.mark.parametrize(
    "text,needles",
    [
        (
            '[rollout]\nmin_requests = "lots"',
            ["canary.toml: rollout.min_requests", "valid integer", "'lots'"],
        ),
        ('[rollout]\nsteps = "5,25,100"', ["rollout.steps", "should be a list", "'5,25,100'"]),
        ('[rollout]\npost_rollback_canary_count = "x"', ["rollout.post_rollback_canary_count"]),
        ('[rollout.judge]\nalpha = "x"', ["rollout.judge.alpha", "valid number", "'x'"]),
        ('[rollout.judge]\nlatency_quantiles = "p99"', ["rollout.judge.latency_quantiles", "list"]),
        ("[rollout.judge]\nalpha = 2", ["rollout.judge", "alpha must be in (0, 1)"]),
        (
            '[rollout]\nmin_duration = "1m"\nmax_duration = "10s"',
            ["max_duration (10s) must not be shorter than min_duration (60s)"],
        ),
        ("[rollout]\nsteps = []", ["at least one step"]),
        ("[rollout]\nsteps = [50, 25]", ["must increase", "[50, 25]"]),
        ('[rollout]\nsteps = [5, 0, "x"]', ["rollout.steps.1.weight", "rollout.steps.2.weight"]),
        (
            '[rollout]\nsteps = [{weight = 5, min_duration = "2m", max_duration = "1m"}]',
            ["rollout.steps.0", "step 5%: max_duration (60s)"],
        ),
        ('[rollout]\nbaseline = "yes"', ["rollout.baseline", "valid boolean"]),
        ('[rollout]\ninterval = "0s"', ["rollout.interval", "greater than 0"]),
        ('[local]\nhealth_profile = "quick"', ["local.health_profile", "'alb' or 'fast'"]),
    ],
)
def test_wrong_values_are_named_with_file_key_and_allowed(
    tmp_path: Path, text: str, needles: list[str]
) -> None:
    message = _load(tmp_path, text)
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in message and "instances of" not in message


@pytest.mark.parametrize(
    "text,typo,known",
    [
        ("stable_wieght = 90", "stable_wieght", "stable_weight"),
        ("[rollout]\nmin_request = 5", "rollout.min_request", "min_requests"),
        ("[rollout.judge]\nalph = 0.1", "rollout.judge.alph", "alpha"),
        (
            "[rollout.judge.burst_guard]\nmin_hit = 5",
            "rollout.judge.burst_guard.min_hit",
            "min_hits",
        ),
        (
            "[rollout]\nsteps = [{weight = 5, min_requets = 3}]",
            "rollout.steps.0.min_requets",
            "min_requests",
        ),
        ('[aws]\nregoin = "eu-west-1"', "aws.regoin", "region"),
    ],
)
def test_a_typo_gets_the_nearest_known_key(
    tmp_path: Path, text: str, typo: str, known: str
) -> None:
    message = _load(tmp_path, text)
    assert f"{typo}: unknown setting; did you mean {known}?" in message, message


def test_an_unknown_key_far_from_any_lists_the_known_ones(tmp_path: Path) -> None:
    message = _load(tmp_path, "[rollout]\nzzzz = 1")
    assert "rollout.zzzz: unknown setting (known here: " in message
    assert "min_requests" in message


def test_every_problem_is_reported_once_with_where_it_came_from(tmp_path: Path) -> None:
    message = _load(tmp_path, '[rollout]\nmin_requests = "lots"', env={"STABLE_WEIGHT": "x"})
    lines = message.splitlines()
    assert lines[0] == "invalid configuration:"
    assert any(line.startswith("  - stable_weight (env STABLE_WEIGHT):") for line in lines)
    cfg = tmp_path / "canary.toml"
    assert any(line.startswith(f"  - {cfg}: rollout.min_requests:") for line in lines)
    assert len(lines) == 3


def test_a_valid_rollout_table_reaches_the_plan(tmp_path: Path) -> None:
    cfg = tmp_path / "canary.toml"
    cfg.write_text(
        "[rollout]\n"
        'steps = [5, {weight = 50, min_duration = "2m"}, 100]\n'
        'min_duration = "20s"\nmax_duration = "1m"\nmin_requests = 10\nbaseline = false\n'
        "[rollout.judge]\nalpha = 0.01\nlatency_quantiles = [0.9]\n"
        "[rollout.judge.burst_guard]\nmax_task_share = 0.5\n"  # retired: still loads
    )
    settings = load_settings({}, env={}, config_file=cfg)
    plan = build_plan("local", settings.rollout)
    assert [s.canary_weight for s in plan.steps] == [5, 50, 100]
    assert [s.min_duration_s for s in plan.steps] == [20.0, 120.0, 20.0]
    # A step's own minimum beyond the table's maximum stretches that step's maximum.
    assert [s.max_duration_s for s in plan.steps] == [60.0, 120.0, 60.0]
    assert [s.min_requests for s in plan.steps] == [10, 10, 10]
    assert plan.baseline is False
    assert plan.judge.alpha == 0.01 and plan.judge.latency_quantiles == (0.9,)


def test_flags_on_top_of_the_file_are_checked_and_named_as_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "canary.toml"
    cfg.write_text('[rollout]\nmin_duration = "2m"\n')
    settings = load_settings({}, env={}, config_file=cfg)
    plan = build_plan("local", settings.rollout, steps=[10, 100], overrides={"interval": "5s"})
    assert plan.interval_s == 5.0 and [s.canary_weight for s in plan.steps] == [10, 100]
    with pytest.raises(UsageError) as exc:
        build_plan("local", settings.rollout, overrides={"max_duration": "1m"})
    assert "max_duration (60s) must not be shorter than min_duration (120s)" in exc.value.message
    with pytest.raises(UsageError) as exc:
        build_plan("local", settings.rollout, overrides={"min_duration": "abc"})
    assert exc.value.message.startswith("invalid rollout settings: --min-duration: ")
    with pytest.raises(UsageError) as exc:
        build_plan("local", settings.rollout, steps=[5, 0])
    assert "--steps" in exc.value.message


def test_saved_settings_load_back_the_same(tmp_path: Path) -> None:
    """The daemon's controller reads the rollout settings from controller.json."""
    cfg = tmp_path / "canary.toml"
    cfg.write_text(
        '[rollout]\nsteps = [5, {weight = 50, min_requests = 7}]\nwarmup = "1s"\n'
        "[rollout.judge]\nalpha = 0.02\n"
    )
    settings = load_settings({"local.state_dir": tmp_path / "state"}, env={}, config_file=cfg)
    save_settings(settings)
    again = load_saved(tmp_path / "state")
    assert again is not None
    # The hooks' commands run where `canary rollout` was started, not in the daemon's dir.
    assert again.rollout.hooks.workdir == Path.cwd().resolve()
    assert again.rollout.model_copy(update={"hooks": settings.rollout.hooks}) == settings.rollout
    assert build_plan("local", again.rollout) == build_plan("local", settings.rollout)


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(UsageError) as exc:
        load_settings({}, env={}, config_file=missing, config_required=True)
    assert f"config file {missing} does not exist" in exc.value.message
    with pytest.raises(UsageError) as exc:
        load_settings({}, env={"CANARY_CONFIG": str(missing)})
    assert "does not exist" in exc.value.message and "CANARY_CONFIG" in (exc.value.hint or "")
    with pytest.raises(UsageError) as exc:
        load_settings({}, env={"CANARY_CONFIG": str(tmp_path)})
    assert "is a directory" in exc.value.message
    # Nothing named: ./canary.toml is optional.
    assert load_settings({}, env={}, config_file=missing).stack_name


@pytest.mark.parametrize(
    "args,env,needle",
    [
        (["--config", "nope.toml", "status"], {}, "config file nope.toml does not exist"),
        (["status"], {"CANARY_CONFIG": "missing.toml"}, "config file missing.toml does not exist"),
    ],
)
def test_the_cli_refuses_a_missing_named_config(
    tmp_path: Path, args: list[str], env: dict[str, str], needle: str
) -> None:
    done = canary(tmp_path, *args, **env)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / ".canary").exists()


def test_the_cli_reports_a_bad_rollout_table_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "canary.toml").write_text('[rollout.judge]\nalpha = "x"\n[rollout]\nsteps = "5"\n')
    done = canary(tmp_path, "rollout", "--detach", "-o", "json")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "this is a bug" not in done.stderr
    assert "canary.toml: rollout.judge.alpha" in done.stderr
    assert "canary.toml: rollout.steps" in done.stderr
    assert done.stdout == ""
