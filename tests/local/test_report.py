"""The daemon's `GET /status` document: one typed shape, read back as it was written."""

from __future__ import annotations

import json

from canary_deploy.backend import ReleaseSpec, ServiceStatus, TargetGroupStatus, TrafficStatus
from canary_deploy.local.report import DaemonStatus
from canary_deploy.weights import Weights

SPEC = ReleaseSpec(
    image_stable="builtin:v1",
    image_canary="builtin:v2",
    desired_count_stable=2,
    desired_count_canary=1,
    container_port=8000,
    weights=Weights(95, 5),
    stickiness_seconds=60,
    desired_count_baseline=1,
    slow_start_seconds=30,
)


def _full() -> DaemonStatus:
    return DaemonStatus(
        url="http://127.0.0.1:8080",
        pid=4242,
        started=1700000000.5,
        weights=Weights(90, 5, 5),
        stored_weights=Weights(95, 5),
        stickiness_seconds=60,
        slow_start_seconds=30.0,
        health_check_path="/health",
        spec=SPEC,
        services={
            "stable": ServiceStatus("app-stable", 2, 0, 2, "COMPLETED"),
            "canary": ServiceStatus("app-canary", 0, 1, 1, "crash-looping", "exit 3"),
            "baseline": ServiceStatus("app-baseline", 1, 0, 1, "IN_PROGRESS"),
        },
        target_groups={
            "stable": TargetGroupStatus("tg-stable", healthy=2, draining=1),
            "canary": TargetGroupStatus("tg-canary", unhealthy=1, initial=1),
        },
        traffic={
            "stable": TrafficStatus(60, 1200, 3, 0.01, 0.05, 0.09),
            "canary": TrafficStatus(60, 0, 0),
        },
    )


def test_a_full_status_survives_the_socket() -> None:
    status = _full()
    assert DaemonStatus.from_dict(json.loads(json.dumps(status.to_dict()))) == status


def test_the_wire_carries_each_group_s_tally_not_its_name() -> None:
    doc = _full().to_dict()
    assert doc["target_groups"]["stable"] == {
        "healthy": 2,
        "unhealthy": 0,
        "initial": 0,
        "draining": 1,
    }
    assert doc["weights"] == {"stable": 90, "canary": 5, "baseline": 5}
    assert doc["slow_start_seconds"] == 30


def test_a_daemon_from_before_the_baseline_reports_two_groups() -> None:
    doc = _full().to_dict()
    for by_group in (doc["services"], doc["target_groups"], doc["traffic"]):
        by_group.pop("baseline", None)
    del doc["stored_weights"]
    doc["weights"] = {"stable": 95, "canary": 5}
    status = DaemonStatus.from_dict(doc)
    assert list(status.services) == ["stable", "canary"]
    assert status.weights == Weights(95, 5) and status.stored_weights is None
