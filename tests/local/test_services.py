"""The supervisor's logic with a fake launcher, a fake balancer and a fake clock."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from canary_deploy.backend import Role
from canary_deploy.errors import UsageError
from canary_deploy.local.commands import TaskCommand
from canary_deploy.local.services import CRASH_LOOP_AFTER, Supervisor, SupervisorConfig
from canary_deploy.local.tasks import HealthState, ServiceSpec


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


@dataclass
class FakeProcess:
    pid: int
    port: int
    command: TaskCommand
    exit_code: int | None = None
    listening: bool = False
    signals: list[int] = field(default_factory=list)

    exit_after_polls: int | None = None

    def poll(self) -> int | None:
        if self.exit_after_polls is not None:
            self.exit_after_polls -= 1
            if self.exit_after_polls <= 0 and self.exit_code is None:
                self.exit_code = 4
        return self.exit_code

    def signal_group(self, sig: int) -> None:
        self.signals.append(sig)
        if self.exit_code is None:
            self.exit_code = -sig

    def output_tail(self, max_chars: int = 600) -> str:
        return "Traceback...\nValueError: boom" if self.exit_code not in (None, -15, -9) else ""


class FakeLauncher:
    """Starts fake processes; `behaviour` decides if a new one listens or dies at once."""

    def __init__(self) -> None:
        self.processes: list[FakeProcess] = []
        self.behaviour: dict[str, str] = {}  # image -> "listen" | "exit"

    def free_port(self) -> int:
        return 20000 + len(self.processes)

    def start(self, task_id: str, command: TaskCommand, port: int) -> FakeProcess:
        p = FakeProcess(pid=1000 + len(self.processes), port=port, command=command)
        mode = self.behaviour.get(command.image, "listen")
        p.listening = mode == "listen"
        if mode == "exit":
            p.exit_code = 2
        elif mode == "exit-soon":
            p.exit_after_polls = 3
        self.processes.append(p)
        return p

    def alive(self, image: str | None = None) -> list[FakeProcess]:
        return [
            p
            for p in self.processes
            if p.exit_code is None and (image is None or p.command.image == image)
        ]


class FakeRegistry:
    """The balancer as the supervisor sees it; targets become healthy when told so."""

    def __init__(self) -> None:
        self.targets: dict[str, tuple[Role, int]] = {}
        self.states: dict[str, HealthState] = {}
        self.deregistered: list[tuple[str, float | None]] = []

    def register_target(self, group: Role, target_id: str, host: str, port: int) -> None:
        self.targets[target_id] = (group, port)
        self.states[target_id] = "initial"

    async def deregister_target(
        self, group: Role, target_id: str, *, delay_s: float | None = None
    ) -> None:
        self.deregistered.append((target_id, delay_s))
        self.targets.pop(target_id, None)
        self.states.pop(target_id, None)

    def target_states(self) -> dict[str, HealthState]:
        return dict(self.states)

    def all_healthy(self) -> None:
        for target_id in self.states:
            self.states[target_id] = "healthy"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world() -> tuple[Supervisor, FakeLauncher, FakeRegistry, Clock]:
    launcher, registry, clock = FakeLauncher(), FakeRegistry(), Clock()
    processes_by_port = {}

    async def probe(host: str, port: int) -> bool:
        processes_by_port.update({p.port: p for p in launcher.processes})
        p = processes_by_port.get(port)
        return p is not None and p.listening and p.exit_code is None

    supervisor = Supervisor(
        launcher,
        registry,
        SupervisorConfig(deregistration_delay_s=3.0, stop_timeout_s=0.0),
        probe=probe,
        clock=clock,
    )
    return supervisor, launcher, registry, clock


async def settle(supervisor: Supervisor, rounds: int = 3) -> None:
    """Reconcile, then let background drains/stops finish."""
    for _ in range(rounds):
        await supervisor.reconcile()
        await asyncio.sleep(0)
        await asyncio.sleep(0)


CMD_V1 = "python -m app --port $PORT --v 1"
CMD_V2 = "python -m app --port $PORT --v 2"


def test_starts_desired_tasks_and_registers_them_once_listening(world: Any) -> None:
    supervisor, launcher, registry, _ = world

    async def scenario() -> None:
        await supervisor.apply({"stable": ServiceSpec(CMD_V1, 2), "canary": ServiceSpec(CMD_V2, 1)})
        await settle(supervisor)

    run(scenario())
    assert len(launcher.alive(CMD_V1)) == 2
    assert len(launcher.alive(CMD_V2)) == 1
    assert sorted(g for g, _ in registry.targets.values()) == ["canary", "stable", "stable"]
    # Health decides when a task serves: until the balancer says healthy, not COMPLETED.
    assert supervisor.describe()["stable"].deployment_state == "IN_PROGRESS"
    registry.all_healthy()
    described = supervisor.describe()
    assert described["stable"].deployment_state == "COMPLETED"
    assert (described["stable"].running, described["stable"].desired) == (2, 2)


def test_command_that_exits_at_once_is_rejected_and_changes_nothing(world: Any) -> None:
    supervisor, launcher, _, _ = world
    launcher.behaviour["broken $PORT"] = "exit"

    async def scenario() -> None:
        await supervisor.apply({"stable": ServiceSpec(CMD_V1, 1), "canary": ServiceSpec(CMD_V2, 1)})
        await settle(supervisor)
        with pytest.raises(UsageError, match=r"exited at once with code 2.*ValueError: boom"):
            await supervisor.apply({"canary": ServiceSpec("broken $PORT", 1)})
        await settle(supervisor)

    run(scenario())
    assert supervisor.specs()["canary"].image == CMD_V2
    assert [p.command.image for p in launcher.alive()] == [CMD_V1, CMD_V2]


def test_trial_is_not_confused_by_the_control_loop_reaping_first(world: Any) -> None:
    """Regression: the loop used to reap the dying trial task and the trial took that
    for success, adopting a broken image."""
    supervisor, launcher, _, _ = world
    launcher.behaviour["slow-broken $PORT"] = "exit-soon"

    async def scenario() -> None:
        await supervisor.apply({"canary": ServiceSpec(CMD_V2, 1)})
        loop = asyncio.ensure_future(supervisor.run(interval_s=0.001))
        try:
            with pytest.raises(UsageError, match="exited at once with code 4"):
                await supervisor.apply({"canary": ServiceSpec("slow-broken $PORT", 1)})
        finally:
            loop.cancel()

    run(scenario())
    assert supervisor.specs()["canary"].image == CMD_V2


def test_template_without_port_is_rejected_before_starting_anything(world: Any) -> None:
    supervisor, launcher, _, _ = world
    with pytest.raises(UsageError, match=r"does not contain \$PORT"):
        run(supervisor.apply({"stable": ServiceSpec("python -m http.server 9000", 1)}))
    assert launcher.processes == []


def test_exited_task_is_replaced_after_backoff(world: Any) -> None:
    supervisor, launcher, registry, clock = world

    async def scenario() -> None:
        await supervisor.apply({"stable": ServiceSpec(CMD_V1, 1)})
        await settle(supervisor)
        clock.now += 60  # it ran long enough to count as a healthy life
        launcher.alive()[0].exit_code = 137
        await settle(supervisor)
        assert launcher.alive() == [], "no restart before the backoff"
        assert registry.deregistered, "the dead task left its target group"
        clock.now += 1
        await settle(supervisor)

    run(scenario())
    assert len(launcher.alive(CMD_V1)) == 1
    assert len(launcher.processes) == 2


def test_crash_loop_is_reported_with_growing_backoff(world: Any) -> None:
    supervisor, launcher, _, clock = world

    async def scenario() -> list[float]:
        await supervisor.apply({"stable": ServiceSpec(CMD_V1, 1)}, trial=False)
        launcher.behaviour[CMD_V1] = "exit"
        waits = []
        for _ in range(CRASH_LOOP_AFTER + 1):
            started = len(launcher.processes)
            await settle(supervisor)
            # advance until the next task starts, measuring the backoff
            t0 = clock.now
            while len(launcher.processes) == started:
                clock.now += 0.25
                await settle(supervisor, 1)
            waits.append(clock.now - t0)
        await settle(supervisor)
        return waits

    waits = run(scenario())
    status = supervisor.describe()["stable"]
    assert status.deployment_state == "crash-looping"
    assert status.message is not None and "exited with code 2" in status.message
    assert waits[-1] > waits[1], f"backoff should grow: {waits}"

    async def recover() -> None:
        launcher.behaviour[CMD_V1] = "listen"
        while not launcher.alive():
            clock.now += 1
            await settle(supervisor, 1)
        await settle(supervisor)
        clock.now += 30  # the new task stays up
        await settle(supervisor)

    run(recover())
    assert supervisor.describe()["stable"].deployment_state != "crash-looping"


def test_image_change_rolls_without_dropping_below_desired(world: Any) -> None:
    supervisor, launcher, registry, _ = world

    async def scenario() -> None:
        await supervisor.apply({"stable": ServiceSpec(CMD_V1, 2)})
        await settle(supervisor)
        registry.all_healthy()
        await supervisor.apply({"stable": ServiceSpec(CMD_V2, 2)})
        await settle(supervisor)
        # New tasks are running but not healthy yet: every old task keeps serving.
        assert len(launcher.alive(CMD_V1)) == 2
        assert len(launcher.alive(CMD_V2)) == 2
        registry.all_healthy()
        await settle(supervisor)

    run(scenario())
    assert launcher.alive(CMD_V1) == []
    assert len(launcher.alive(CMD_V2)) == 2
    # Old tasks were drained with the configured deregistration delay, then stopped.
    assert all(delay == 3.0 for _, delay in registry.deregistered)
    assert supervisor.describe()["stable"].deployment_state == "COMPLETED"


def test_scale_in_and_stop_all_stop_whole_process_groups(world: Any) -> None:
    supervisor, launcher, _, _ = world

    async def scenario() -> None:
        await supervisor.apply({"canary": ServiceSpec(CMD_V2, 3)})
        await settle(supervisor)
        await supervisor.apply({"canary": ServiceSpec(CMD_V2, 1)})
        await settle(supervisor)
        assert len(launcher.alive()) == 1
        await supervisor.stop_all()

    run(scenario())
    assert launcher.alive() == []
    assert all(
        signal.SIGTERM in p.signals and signal.SIGKILL in p.signals for p in launcher.processes
    )
    assert supervisor.tasks() == []


def test_baseline_starts_with_fresh_canary_tasks_in_one_step_and_old_ones_stop_once_replaced(
    world: Any,
) -> None:
    supervisor, launcher, registry, clock = world

    async def scenario() -> None:
        await supervisor.apply(
            {
                "stable": ServiceSpec(CMD_V1, 2),
                "canary": ServiceSpec(CMD_V2, 1),
                "baseline": ServiceSpec(CMD_V1, 0),
            }
        )
        await settle(supervisor)
        registry.all_healthy()
        old_canary = [t.task_id for t in supervisor.tasks() if t.version == "canary"]
        started_before = len(launcher.processes)
        clock.now += 60
        replaced = await supervisor.apply(
            {
                "stable": ServiceSpec(CMD_V1, 2),
                "canary": ServiceSpec(CMD_V2, 1),
                "baseline": ServiceSpec(CMD_V1, 1),
            },
            restart=("canary",),
        )
        assert replaced == old_canary
        await supervisor.reconcile()
        fresh = [t for t in supervisor.tasks() if t.task_id not in old_canary]
        # One reconcile step started the baseline and the new canary: same age.
        assert sorted(t.version for t in fresh if t.version != "stable") == ["baseline", "canary"]
        assert len(launcher.processes) == started_before + 2
        assert {t.image for t in fresh if t.version == "baseline"} == {CMD_V1}
        await settle(supervisor)
        # The old canary task serves until a healthy new one stands in for it.
        assert any(t.task_id in old_canary for t in supervisor.tasks())
        assert supervisor.describe()["canary"].deployment_state == "IN_PROGRESS"
        registry.all_healthy()
        await settle(supervisor)
        assert not any(t.task_id in old_canary for t in supervisor.tasks())
        assert supervisor.describe()["canary"].deployment_state == "COMPLETED"
        assert supervisor.describe()["baseline"].running == 1

        await supervisor.apply(
            {
                "stable": ServiceSpec(CMD_V1, 2),
                "canary": ServiceSpec(CMD_V2, 1),
                "baseline": ServiceSpec(CMD_V1, 0),
            }
        )
        await settle(supervisor)
        assert [t for t in supervisor.tasks() if t.version == "baseline"] == []
        assert supervisor.describe()["baseline"].deployment_state == "COMPLETED"

    run(scenario())
    assert len(launcher.alive(CMD_V1)) == 2 and len(launcher.alive(CMD_V2)) == 1
