"""The sample app: endpoints, validation, v1 vs v2 model, injected faults."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from canary_deploy.local.processes import free_port
from canary_deploy.sample_app import Faults, create_app

APPLICANT = {"age": 40, "income": 30, "debt_ratio": 1.0, "late_payments": 3}


def test_whoami_health_and_predict() -> None:
    client = TestClient(create_app("v1", task_id="t-1"))
    assert client.get("/").status_code == 200
    who = client.get("/whoami").json()
    assert who["version"] == "v1" and who["task_id"] == "t-1" and who["pid"] == os.getpid()
    body = client.post("/predict", json=APPLICANT).json()
    assert body["version"] == "v1" and 0 < body["probability"] < 1 and body["label"] in (0, 1)


def test_predict_rejects_bad_input_with_422() -> None:
    client = TestClient(create_app("v1"))
    assert (
        client.post("/predict", json={"age": -5, "income": 1, "debt_ratio": 0}).status_code == 422
    )
    assert client.post("/predict", json={"income": 1}).status_code == 422


def test_v2_model_scores_differently_from_v1() -> None:
    p1 = TestClient(create_app("v1")).post("/predict", json=APPLICANT).json()["probability"]
    p2 = TestClient(create_app("v2")).post("/predict", json=APPLICANT).json()["probability"]
    assert p1 != p2


def test_injected_errors_and_failing_health(tmp_path: Path) -> None:
    client = TestClient(create_app("v2", Faults(error_rate=1.0, fail_health=True)))
    assert client.get("/").status_code == 503
    assert client.get("/whoami").status_code == 500
    assert client.post("/predict", json=APPLICANT).status_code == 500

    sick = tmp_path / "sick"
    toggled = TestClient(create_app("v1", Faults(fail_health_file=str(sick))))
    assert toggled.get("/").status_code == 200
    sick.touch()
    assert toggled.get("/").status_code == 503


def test_faults_are_read_from_the_environment() -> None:
    env = {
        "CANARY_FAULT_ERROR_RATE": "0.25",
        "CANARY_FAULT_LATENCY_MS": "40",
        "CANARY_FAULT_LATENCY_JITTER_MS": "10",
        "CANARY_FAULT_CRASH_AFTER": "7",
    }
    faults = Faults.from_env(env)
    assert (faults.error_rate, faults.latency_ms, faults.crash_after) == (0.25, 40, 7)


def test_crash_after_n_requests_ends_the_process() -> None:
    port = free_port()
    env = dict(os.environ, CANARY_FAULT_CRASH_AFTER="2")
    cmd = [sys.executable, "-m", "canary_deploy.sample_app", "--version", "v1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "sample app did not start"
                time.sleep(0.1)
        for _ in range(2):
            assert httpx.get(f"http://127.0.0.1:{port}/whoami", timeout=2).status_code == 200
        assert proc.wait(timeout=10) == 3
    finally:
        proc.kill()
        proc.wait()
