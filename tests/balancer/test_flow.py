"""Back-pressure: one FlowControl per connection owns whether it is read, and why not."""

from __future__ import annotations

from dataclasses import dataclass, field

from canary_deploy.balancer.flow import FlowControl, Paused


@dataclass
class CountingTransport:
    calls: list[str] = field(default_factory=list)

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def test_reading_resumes_only_when_the_last_reason_is_gone() -> None:
    transport = CountingTransport()
    flow = FlowControl(transport)
    flow.pause(Paused.HELD)
    flow.pause(Paused.SLOW_TARGET)  # a slow target while bytes are held
    flow.resume(Paused.HELD)  # the held bytes went out: the target is still slow
    assert transport.calls == ["pause"]
    flow.resume(Paused.SLOW_TARGET)
    assert transport.calls == ["pause", "resume"]


def test_the_transport_is_touched_only_when_the_state_changes() -> None:
    transport = CountingTransport()
    flow = FlowControl(transport)
    flow.resume(Paused.SLOW_CLIENT)  # never paused: nothing to undo
    flow.pause(Paused.SLOW_CLIENT)
    flow.pause(Paused.SLOW_CLIENT)
    flow.resume(Paused.SLOW_CLIENT)
    flow.resume(Paused.SLOW_CLIENT)
    assert transport.calls == ["pause", "resume"]


def test_a_stopped_client_is_never_read_again() -> None:
    transport = CountingTransport()
    flow = FlowControl(transport)
    flow.pause(Paused.HELD)
    flow.pause(Paused.STOPPED)  # its request was refused
    flow.resume(Paused.HELD)
    flow.resume(Paused.SLOW_TARGET)
    assert transport.calls == ["pause"]


def test_a_connection_gone_is_not_touched() -> None:
    transport = CountingTransport()
    flow = FlowControl(transport)
    flow.pause(Paused.HELD)
    flow.transport = None  # connection_lost
    flow.resume(Paused.HELD)
    flow.pause(Paused.SLOW_TARGET)
    assert transport.calls == ["pause"]
