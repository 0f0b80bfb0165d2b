"""`canary config`: the effective settings with their origins and the rollout plan, as
text and as one JSON document; a dry run that changes nothing (issue 13, item 2)."""

import json
from pathlib import Path

from canary_deploy.config import explain_settings
from tests.unit.cli import canary

TOML = (
    'stack_name = "from-file"\n'
    "[rollout]\n"
    'steps = [5, {weight = 50, min_duration = "2m"}, 100]\n'
    "min_requests = 20\n"
    "[rollout.judge]\nalpha = 0.01\n"
)


def test_each_setting_says_where_it_came_from(tmp_path: Path) -> None:
    cfg = tmp_path / "canary.toml"
    cfg.write_text(TOML + '[aws]\nregion = "eu-west-1"\n')
    env = {"STABLE_WEIGHT": "90", "CANARY_WEIGHT": "10", "AWS_DEFAULT_REGION": "us-west-2"}
    settings, origins = explain_settings({"target": "aws"}, env=env, config_file=cfg)
    assert origins["target"] == "flag"
    assert origins["stable_weight"] == "env STABLE_WEIGHT"
    assert origins["stack_name"] == f"file {cfg}"
    # boto3's AWS_DEFAULT_REGION ranks above the file, like every environment variable.
    assert settings.aws.region == "us-west-2"
    assert origins["aws.region"] == "env AWS_DEFAULT_REGION"
    assert origins["rollout.min_requests"] == f"file {cfg}"
    assert origins["rollout.judge.alpha"] == f"file {cfg}"
    assert origins["rollout.judge.promote_alpha"] == "default"
    assert origins["container_port"] == "default"


def test_config_prints_settings_and_the_plan(tmp_path: Path) -> None:
    (tmp_path / "canary.toml").write_text(TOML)
    done = canary(tmp_path, "--target", "local", "config", STABLE_WEIGHT="90", CANARY_WEIGHT="10")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["stack_name"].split()[1:] == ["from-file", "file", "canary.toml"]
    assert lines["stable_weight"].split()[1:] == ["90", "env", "STABLE_WEIGHT"]
    assert lines["target"].split()[1:] == ["local", "flag"]
    assert "5%, 50% (min_duration 2m), 100%" in lines["rollout.steps"]
    # Steps with the listener's weights (a baseline beside the canary) and their gates.
    assert "Rollout plan (local target)" in out
    assert [
        line.split()[:6] for line in out.splitlines() if line.split()[:1] in (["1"], ["2"])
    ] == [
        ["1", "5%", "90/5/5", "10s", "20", "60s"],
        ["2", "50%", "0/50/50", "2m", "20", "2m"],
    ]
    # alpha 0.01: 60% to errors (e >= 167), the rest split between p95 and p99 (e >= 500).
    assert "e >= 167 for the error rate" in out and "e >= 500" in out
    assert not (tmp_path / ".canary").exists()  # a dry run: nothing created


def test_config_json_is_one_document(tmp_path: Path) -> None:
    (tmp_path / "canary.toml").write_text(TOML)
    done = canary(tmp_path, "config", "-o", "json", "--steps", "10,100")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["settings"]["stack_name"] == "from-file"
    assert doc["origins"]["rollout.judge.alpha"] == "file canary.toml"
    assert [s["canary_weight"] for s in doc["plan"]["steps"]] == [10, 100]
    assert doc["plan"]["judge"]["alpha"] == 0.01


def test_config_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "canary.toml").write_text('[rollout]\nmin_requests = "lots"\nstepz = [5]\n')
    done = canary(tmp_path, "config")
    assert done.returncode == 2
    assert "canary.toml: rollout.min_requests" in done.stderr
    assert "rollout.stepz: unknown setting; did you mean steps?" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_config_never_shows_a_webhook_token(tmp_path: Path) -> None:
    """Slack's webhook URLs and a hook's Authorization header are secrets: `canary config`
    shows where they go (scheme and host), not what they carry."""
    (tmp_path / "canary.toml").write_text(
        "[rollout.hooks]\n"
        'pre_promote = { url = "https://ci.example.com/gate?token=s3cret", '
        'headers = { Authorization = "Bearer abc" } }\n'
        "[[notifications]]\n"
        'url = "https://user:pw@hooks.slack.com/services/T00/B00/XXXX"\n'
    )
    for argv in (("config",), ("config", "-o", "json")):
        done = canary(tmp_path, *argv)
        assert done.returncode == 0, done.stderr
        for secret in ("s3cret", "Bearer", "XXXX", "pw@"):
            assert secret not in done.stdout, (argv, secret)
        assert "https://hooks.slack.com/..." in done.stdout
        assert "https://ci.example.com/..." in done.stdout


def test_the_apps_environment_secrets_and_production_settings_are_shown_with_origins(
    tmp_path: Path,
) -> None:
    secret = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf"
    cfg = tmp_path / "canary.toml"
    cfg.write_text(
        f'[aws]\nenv = {{ LOG_LEVEL = "info" }}\nsecrets = {{ DB = "{secret}" }}\n'
        '[aws.autoscaling]\nmetric = "cpu"\n'
    )
    env = {"ASSIGN_PUBLIC_IP": "DISABLED"}
    settings, origins = explain_settings({"target": "aws"}, env=env, config_file=cfg)
    assert settings.aws.env == {"LOG_LEVEL": "info"}
    assert origins["aws.env.LOG_LEVEL"] == origins["aws.secrets.DB"] == f"file {cfg}"
    assert origins["aws.autoscaling.metric"] == f"file {cfg}"
    assert origins["aws.assign_public_ip"] == "env ASSIGN_PUBLIC_IP"
    assert origins["aws.certificate_arn"] == "default"
