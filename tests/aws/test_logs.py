"""`canary logs stable|canary` on AWS reads the services' CloudWatch Logs (the template's
log group, one stream prefix per service), with no call outside the operator's policy
(issue 13, item 9)."""

from __future__ import annotations

import time

import boto3

from tests.aws.conftest import AwsEnv


def test_logs_reads_each_service_s_streams(aws_env: AwsEnv) -> None:
    assert aws_env.run("deploy").exit_code == 0
    logs = boto3.client("logs")
    group = f"/ecs/{aws_env.stack_name}"
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)  # the template's; moto may not create it
    now = int(time.time() * 1000)
    for stream, lines in {
        "canary/web/task-c1": ["canary starting", "canary ready"],
        "stable/web/task-s1": ["stable ready"],
    }.items():
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(lines)],
        )

    canary = aws_env.run("logs", "canary", "-n", "5")
    assert canary.exit_code == 0, canary.stderr
    assert canary.stdout.splitlines() == [
        "canary/web/task-c1 canary starting",
        "canary/web/task-c1 canary ready",
    ]
    last = aws_env.run("logs", "stable", "-n", "1")
    assert last.stdout.splitlines() == ["stable/web/task-s1 stable ready"]
    refused = aws_env.run("logs")
    assert refused.exit_code == 2 and "name the service" in refused.stderr
