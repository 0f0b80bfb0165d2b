from pathlib import Path

import pytest

from canary_deploy.config import load_settings
from canary_deploy.errors import UsageError


def test_defaults_are_the_seeds(tmp_path: Path) -> None:
    s = load_settings({}, env={}, config_file=tmp_path / "none.toml")
    assert s.stack_name == "ecs-canary-demo-stack"
    # No region named: the AWS session takes the profile's, else the seed's us-east-1
    # (tests/aws/test_region.py).
    assert s.aws.region is None
    assert (s.container_port, s.desired_count_stable, s.desired_count_canary) == (8000, 2, 1)
    assert (s.aws.task_cpu, s.aws.task_memory) == (256, 512)
    assert (s.stable_weight, s.canary_weight) == (95, 5)
    assert s.target == "local"


def test_precedence_flags_over_env_over_file(tmp_path: Path) -> None:
    cfg = tmp_path / "canary.toml"
    cfg.write_text('stack_name = "from-file"\ncontainer_port = 7000\n[aws]\nregion = "eu-west-1"\n')
    env = {"STACK_NAME": "from-env", "AWS_REGION": "eu-central-1"}
    s = load_settings({"stack_name": "from-flag"}, env=env, config_file=cfg)
    assert s.stack_name == "from-flag"
    assert s.aws.region == "eu-central-1"
    assert s.container_port == 7000


def test_seed_environment_variables_are_honoured(tmp_path: Path) -> None:
    env = {
        "IMAGE_URI_STABLE": "repo:v1",
        "IMAGE_URI_CANARY": "repo:v2",
        "DESIRED_COUNT_STABLE": "3",
        "TASK_CPU": "512",
        "TASK_MEMORY": "1024",
        "STABLE_WEIGHT": "90",
        "CANARY_WEIGHT": "10",
        "SUBNET_IDS": "subnet-a, subnet-b",
    }
    s = load_settings({}, env=env, config_file=tmp_path / "x.toml")
    assert (s.image_uri_stable, s.image_uri_canary) == ("repo:v1", "repo:v2")
    assert s.desired_count_stable == 3
    assert (s.aws.task_cpu, s.aws.task_memory) == (512, 1024)
    assert (s.stable_weight, s.canary_weight) == (90, 10)
    assert s.aws.subnet_ids == ("subnet-a", "subnet-b")


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"CONTAINER_PORT": "70000"}, "container_port (env CONTAINER_PORT)"),
        ({"TASK_CPU": "300"}, "task_cpu must be one of 256"),
        ({"CANARY_TARGET": "gcp"}, "target (env CANARY_TARGET)"),
        ({"STABLE_WEIGHT": "90"}, "90 + 5 = 95"),
        ({"STICKINESS_DURATION_SECONDS": "0"}, "stickiness_duration_seconds"),
    ],
)
def test_invalid_values_name_the_field(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    with pytest.raises(UsageError) as exc:
        load_settings({}, env=env, config_file=tmp_path / "x.toml")
    assert needle in exc.value.message
    assert exc.value.exit_code == 2
