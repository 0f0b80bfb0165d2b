"""Memory per client connection stays bounded however much a client or target sends.

What is measured is `buffered_bytes` (see harness): the bytes the balancer holds for a
connection in its own buffers, sampled after every write and read of the client and
after every event-loop turn while the client waits. The rig fails any example whose
largest sample exceeds MEMORY_BOUND.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.balancer.fuzz.harness import MEMORY_BOUND, Client, Rig, Script, echo_of
from tests.balancer.fuzz.profile import fuzz_settings
from tests.balancer.fuzz.wire import new_token

pytestmark = pytest.mark.integration

BLOCK = bytes(range(256)) * 1024  # 256 KiB, sliced for every body
# Event-loop turns without progress after which a writer counts as blocked: the
# balancer has stopped reading it (a count of turns, not a time).
STALLED_TURNS = 200


def _body(size: int) -> bytes:
    return (BLOCK * (size // len(BLOCK) + 1))[:size]


def _reading(rig: Rig) -> bool:
    ctx = rig.balancer_()._ctx
    assert ctx is not None
    return any(c.transport.is_reading() for c in ctx.clients)


async def _send_until_blocked(rig: Rig, client: Client, data: bytes, piece: int) -> int:
    """Write `data` in pieces until all is sent or the balancer stops reading us and
    nothing moves any more; returns how many bytes were handed to the socket."""
    transport = client.protocol.transport
    at = 0
    stalled = 0
    while at < len(data):
        if transport.get_write_buffer_size() < piece:
            transport.write(data[at : at + piece])
            at += piece
            stalled = 0
        else:
            before = transport.get_write_buffer_size()
            await asyncio.sleep(0)
            rig.sample()
            if rig.peak > MEMORY_BOUND:
                break  # the bound is already broken: no need to send the rest
            if transport.get_write_buffer_size() == before and not _reading(rig):
                stalled += 1
                if stalled >= STALLED_TURNS:
                    break
            else:
                stalled = 0
        await asyncio.sleep(0)
        rig.sample()
    return min(at, len(data))


async def _send_rest(client: Client, data: bytes, piece: int) -> None:
    transport = client.protocol.transport
    at = 0
    while at < len(data):
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() < piece:
            transport.write(data[at : at + piece])
            at += piece
        await asyncio.sleep(0)


@fuzz_settings(4, long_factor=10)
@given(
    size=st.integers(6 * 2**20, 12 * 2**20),
    piece=st.sampled_from([4096, 65536, 262144]),
    chunked=st.booleans(),
)
@example(size=8 * 2**20, piece=65536, chunked=False)  # issue 12 item 2, found before
def test_a_pipelined_body_behind_a_slow_exchange_is_not_buffered_whole(
    rig: Rig, size: int, piece: int, chunked: bool
) -> None:
    body = _body(size)

    async def scenario(r: Rig) -> None:
        slow, big = new_token(), new_token()
        r.scripts[slow] = Script(hold=True)
        client = await Client(r).connect()
        try:
            if chunked:
                framing = b"Transfer-Encoding: chunked"
                wire = b"".join(
                    b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
                    for i in range(0, len(body), 65536)
                )
                wire += b"0\r\n\r\n"
            else:
                framing, wire = b"Content-Length: %d" % len(body), body
            head = b"GET /f/%s HTTP/1.1\r\nHost: fuzz\r\n\r\n" % slow
            head += b"POST /f/%s HTTP/1.1\r\nHost: fuzz\r\n%s\r\n\r\n" % (big, framing)
            client.send(head)
            sent = await _send_until_blocked(r, client, wire, piece)
            assert r.peak <= MEMORY_BOUND, (
                f"the balancer held {r.peak:,} bytes of a pipelined body while an earlier "
                f"exchange was pending (bound {MEMORY_BOUND:,})"
            )
            r.gate.set()  # the slow target answers; the body may now flow
            await _send_rest(client, wire[sent:], piece)
            first = await client.response()
            assert first is not None and first.echo == echo_of(slow, b"GET", b"")
            second = await client.response()
            assert second is not None and second.echo == echo_of(big, b"POST", body)
        finally:
            await client.close()

    rig.example(scenario)


@fuzz_settings(4, long_factor=10)
@given(size=st.integers(4 * 2**20, 16 * 2**20), chunked=st.booleans())
def test_a_client_that_does_not_read_holds_no_more_than_the_bound(
    rig: Rig, size: int, chunked: bool
) -> None:
    async def scenario(r: Rig) -> None:
        token = new_token()
        r.scripts[token] = Script(framing="chunked" if chunked else "length", padding=size)
        client = await Client(r).connect()
        try:
            client.protocol.transport.pause_reading()  # a client that does not read
            client.send(b"GET /f/%s HTTP/1.1\r\nHost: fuzz\r\n\r\n" % token)
            for _ in range(STALLED_TURNS * 5):
                await asyncio.sleep(0)
                r.sample()
            assert r.peak <= MEMORY_BOUND, (
                f"the balancer held {r.peak:,} bytes of a response its client did not read "
                f"(bound {MEMORY_BOUND:,})"
            )
            client.protocol.transport.resume_reading()
            response = await client.response()
            assert response is not None and response.echo == echo_of(token, b"GET", b"")
            assert len(response.body) == len(response.echo or b"") + size
        finally:
            await client.close()

    rig.example(scenario)
