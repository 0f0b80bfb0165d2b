"""`usecases.wait_for_weights`: reads the weights back until they match; a listener that
never shows them is an error naming what it shows (issue 14, item 10)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from canary_deploy.errors import OperationFailed
from canary_deploy.usecases import wait_for_weights
from canary_deploy.weights import Weights


@dataclass
class _StuckRouter:
    live: Weights
    reads: int = 0

    def get_weights(self) -> Weights:
        return self.live

    def set_weights(self, weights: Weights) -> None:
        pass

    def verify_weights(self, weights: Weights) -> bool:
        self.reads += 1
        return weights == self.live


@dataclass
class _Target:
    router: _StuckRouter
    slept: list[float] = field(default_factory=list)


def test_a_listener_that_never_shows_the_weights_fails_after_the_timeout() -> None:
    target = _Target(_StuckRouter(Weights(90, 10)))
    now = [0.0]

    def sleep(seconds: float) -> None:
        target.slept.append(seconds)
        now[0] += seconds

    with pytest.raises(OperationFailed, match="the listener reports 90/10 after setting 75/25"):
        wait_for_weights(
            target,  # type: ignore[arg-type]
            Weights(75, 25),
            timeout_s=5.0,
            sleep=sleep,
            clock=lambda: now[0],
        )
    assert now[0] >= 5.0 and target.router.reads > 3
    # Backs off: 50 ms doubling up to 1 s between reads.
    assert target.slept[:4] == [0.05, 0.1, 0.2, 0.4] and max(target.slept) == 1.0


def test_weights_that_show_return_at_once() -> None:
    target = _Target(_StuckRouter(Weights(75, 25)))
    wait_for_weights(target, Weights(75, 25), sleep=target.slept.append)  # type: ignore[arg-type]
    assert target.slept == [] and target.router.reads == 1
