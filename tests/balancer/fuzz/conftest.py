"""One fuzz rig (a real balancer and two fuzz targets) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.balancer.fuzz.harness import Rig


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    started = Rig().start()
    try:
        yield started
    finally:
        started.stop()
