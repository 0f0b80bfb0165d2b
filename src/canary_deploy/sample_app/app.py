"""The FastAPI app: health, /whoami, /predict, with optional injected faults."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from typing import Any

from fastapi import FastAPI, HTTPException, Response

from canary_deploy.sample_app.faults import Faults
from canary_deploy.sample_app.model import PredictRequest, PredictResponse, model_for


class _Counter:
    """Counts served requests so CRASH_AFTER can end the process like a real crash."""

    def __init__(self, crash_after: int | None) -> None:
        self.served = 0
        self.crash_after = crash_after

    def tick(self) -> None:
        self.served += 1
        if self.crash_after is not None and self.served >= self.crash_after:
            # os._exit: no graceful shutdown, like a segfault or OOM kill in a real task.
            loop = asyncio.get_running_loop()
            loop.call_soon(os._exit, 3)


def create_app(version: str, faults: Faults | None = None, task_id: str | None = None) -> FastAPI:
    """Build the app for `version` (v1, v2, ...), with `faults` applied."""
    faults = faults or Faults()
    task_id = task_id or os.environ.get("CANARY_TASK_ID") or uuid.uuid4().hex[:8]
    rng = random.Random()
    counter = _Counter(faults.crash_after)
    scorer = model_for(version)
    app = FastAPI(title="canary sample app", version=version)

    async def misbehave() -> None:
        counter.tick()
        delay = faults.delay_s(rng)
        if delay:
            await asyncio.sleep(delay)
        if faults.should_fail(rng):
            raise HTTPException(status_code=500, detail="injected fault")

    @app.get("/")
    async def health() -> Response:
        if not faults.healthy():
            return Response(status_code=503, content="unhealthy (injected)")
        return Response(status_code=200, content="ok")

    @app.get("/whoami")
    async def whoami() -> dict[str, Any]:
        await misbehave()
        return {
            "version": version,
            "task_id": task_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
        }

    @app.post("/predict")
    async def predict(req: PredictRequest) -> PredictResponse:
        await misbehave()
        return scorer.predict(version, req)

    return app
