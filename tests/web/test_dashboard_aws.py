"""The dashboard on the AWS target, against the moto server: the chain read from the
listener, target groups and ECS, CloudWatch read at its own pace (and the page says so),
and set-weights from the page as one listener call. moto runs no tasks and records no
traffic, so the charts are empty here; the local browser tests draw real ones."""

from __future__ import annotations

from canary_deploy.config import load_settings
from canary_deploy.rollout import service
from canary_deploy.targets import open_target
from canary_deploy.web import actions, fragments, layout
from canary_deploy.web.snapshot import PACES, Reader
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner, aws_env, cli, moto_server  # noqa: F401

NOW = 1_800_000_000.0


def test_the_aws_chain_is_read_at_cloudwatchs_pace_and_the_page_says_so(
    aws_env: AwsEnv,  # noqa: F811
    cli: CliRunner,  # noqa: F811
) -> None:
    assert cli("deploy").exit_code == 0
    settings = load_settings()
    clock = [NOW]
    pace = PACES["aws"]
    reader = Reader(
        open_target(settings),
        lambda: service.existing_store(settings),
        pace,
        clock=lambda: clock[0],
    )
    try:
        assert reader.refresh() == {"status", "traffic", "rollout"}
        snap = reader.snapshot
        assert snap.errors == {}
        chain = fragments.chain(snap.status, None)
        assert 'class="weights">95/5<' in chain and "repo/app:v2" in chain
        assert "No traffic" in fragments.traffic(snap.series, clock[0], pace, None)
        clock[0] += 4
        assert reader.refresh() == set()  # nothing is due yet: no API call
        clock[0] += 60
        assert reader.refresh() == {"status", "traffic", "rollout"}
    finally:
        reader.close()
    page = layout.overview("s", "aws", pace.note, {}, session_token=None)
    assert "CloudWatch" in page and "every 60 s" in page
    done = actions.carry_out(settings, {"action": "set_weights", "stable": 80, "canary": 20})
    assert "80/20" in done.message
    assert aws_env.live_weights() == Weights(80, 20)
