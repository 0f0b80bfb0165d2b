"""Command templates (the local "images") and the SQLite state store."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from canary_deploy.backend import ReleaseSpec
from canary_deploy.errors import UsageError
from canary_deploy.local.commands import parse_image
from canary_deploy.local.store import StateStore
from canary_deploy.weights import Weights


def test_builtin_image_runs_the_sample_app_on_the_given_port() -> None:
    argv, env = parse_image("builtin:v2").render(4321)
    assert argv[:3] == [sys.executable, "-m", "canary_deploy.sample_app"]
    assert argv[3:] == ["--version", "v2", "--port", "4321"]
    assert env["PORT"] == "4321"


def test_template_substitutes_port_in_arguments_and_leading_assignments() -> None:
    cmd = parse_image("FAULT_FILE=/tmp/sick-$PORT uvicorn app:app --port ${PORT}")
    argv, env = cmd.render(8123)
    assert argv == ["uvicorn", "app:app", "--port", "8123"]
    assert env["FAULT_FILE"] == "/tmp/sick-8123"


def test_builtin_image_takes_leading_assignments_for_fault_injection() -> None:
    argv, env = parse_image("CANARY_FAULT_LATENCY_MS=50 builtin:v2").render(4000)
    assert argv[3:] == ["--version", "v2", "--port", "4000"]
    assert env["CANARY_FAULT_LATENCY_MS"] == "50"


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("python -m http.server 9000", r"does not contain \$PORT"),
        ("FOO=1", "has no command"),
        ("python 'unbalanced $PORT", "not a valid command"),
        ("builtin:", "the sample app's versions are builtin:v1 and builtin:v2"),
    ],
)
def test_bad_templates_are_usage_errors_naming_the_role(image: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as err:
        parse_image(image, role="canary image")
    assert err.value.message.startswith("canary image")


def test_store_round_trips_spec_weights_events_and_buckets(tmp_path: Path) -> None:
    spec = ReleaseSpec("builtin:v1", "cmd --port $PORT", 2, 1, 8000, Weights(90, 10), "/h", 60)
    store = StateStore(tmp_path)
    store.save_spec(spec)
    store.save_weights(Weights(75, 25))
    store.save_listener("127.0.0.1", 9123)
    store.add_event("weights", None, "set to 75/25")
    store.save_buckets([{"t": 100, "version": "stable", "requests": 3}])
    store.save_buckets([{"t": 100, "version": "stable", "requests": 5}])  # the second refills
    store.close()

    reopened = StateStore(tmp_path)  # as after a daemon restart
    assert reopened.load_spec() == spec
    assert reopened.load_weights() == Weights(75, 25)
    assert reopened.load_listener() == ("127.0.0.1", 9123)
    assert [e.message for e in reopened.events()] == ["set to 75/25"]
    assert reopened.load_buckets(0) == [{"t": 100, "version": "stable", "requests": 5}]
    reopened.clear_spec()
    assert reopened.load_spec() is None and reopened.load_weights() is None
    assert reopened.load_listener() is None
    assert len(reopened.events()) == 1, "delete keeps the history"
    reopened.close()


def test_store_keeps_the_baseline_and_slow_start_and_reads_older_state(tmp_path: Path) -> None:
    spec = ReleaseSpec(
        "builtin:v1",
        "builtin:v2",
        2,
        1,
        8000,
        Weights(90, 5, 5),
        desired_count_baseline=1,
        slow_start_seconds=30,
    )
    store = StateStore(tmp_path)
    store.save_spec(spec)
    store.save_weights(Weights(90, 5, 5))
    assert store.load_spec() == spec
    assert store.load_weights() == Weights(90, 5, 5)
    # State written before the baseline existed: no baseline keys anywhere.
    old_spec = {
        "image_stable": "builtin:v1",
        "image_canary": "builtin:v2",
        "desired_count_stable": 2,
        "desired_count_canary": 1,
        "container_port": 8000,
        "weights": {"stable": 95, "canary": 5},
        "health_check_path": "/",
        "stickiness_seconds": None,
    }
    store._put("spec", old_spec)
    store._put("weights", {"stable": 80, "canary": 20})
    loaded = store.load_spec()
    assert loaded is not None
    assert (loaded.desired_count_baseline, loaded.slow_start_seconds) == (0, 0)
    assert loaded.weights == Weights(95, 5)
    assert store.load_weights() == Weights(80, 20, 0)
    store.close()
