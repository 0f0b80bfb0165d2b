"""The invariants every fuzzed client connection is held to.

(a) No byte of one exchange reaches another client: every token a client receives is
    its own, nothing a target sent unasked (`LEAK`) reaches anyone, and each response
    a target made carries the echo of exactly the request it answers, in order.
(b) A framing-ambiguous or invalid request gets a 4xx from the balancer and a close,
    and nothing of it (nor what it smuggles) reaches a target.
(c) Memory per client connection stays under its bound (checked by the rig).
(d) The balancer keeps serving (checked by the rig after every example).
Plus what a client must be able to read: responses parse strictly, an HTTP/1.0 client
never gets a chunked body, headers a target's `Connection` names are stripped, and the
transfer codings other than chunked survive both ways.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tests.balancer.fuzz.harness import (
    GOOD,
    IDLE_TIMEOUT_S,
    Client,
    Rig,
    Script,
    assert_no_foreign_bytes,
    echo_of,
)
from tests.balancer.fuzz.strategies import Conn, Req
from tests.balancer.fuzz.wire import Response, fill, new_token


async def run_connections(
    rig: Rig, conns: Sequence[Conn], scripts: Sequence[Sequence[Script]] | None = None
) -> None:
    """Run connections at the same time, each checked on its own."""
    await asyncio.gather(
        *(run_connection(rig, conn, scripts[i] if scripts else ()) for i, conn in enumerate(conns))
    )


async def run_connection(rig: Rig, conn: Conn, scripts: Sequence[Script] = ()) -> None:
    """Send one connection's requests and hold every answer to the invariants."""
    reqs = conn.requests
    tokens = [new_token() for _ in reqs]
    smuggled = [new_token() for _ in reqs]
    plan = [scripts[i] if i < len(scripts) else GOOD for i in range(len(reqs))]
    for token, script in zip(tokens, plan, strict=True):
        rig.scripts[token] = script
    # A target that breaks the protocol may cost the next request on its connection a 502.
    misbehaving = bool(rig.early) or any(not s.valid for s in plan)
    datas = [fill(r.template, t, s) for r, t, s in zip(reqs, tokens, smuggled, strict=True)]
    whole = _arrives_whole(datas, conn)
    own = set(tokens)
    client = await Client(rig).connect()
    try:
        if conn.pipelined:
            blob = b"".join(datas)
            at = 0
            for cut in (*conn.splits, len(blob)):
                client.send(blob[at:cut])
                at = cut
                for _ in range(conn.turns):  # each write its own read at the balancer
                    await asyncio.sleep(0)
                rig.sample()
        ended = False
        for i, req in enumerate(reqs):
            if ended:
                if conn.pipelined and any(r.closes or r.verdict == "reject" for r in reqs[:i]):
                    for token in (tokens[i], smuggled[i]):
                        reached = rig.reached_targets(token)
                        assert not reached, (
                            f"request {i} ({req.kind}) came after the connection had to end "
                            f"but reached {reached}"
                        )
                continue
            if not conn.pipelined:
                client.send(datas[i])
                await asyncio.sleep(0)
                rig.sample()
            response = await client.response(req.is_head)
            # A balancer may give up on a whole pipeline at the first bad request it
            # parses: the earlier ones it has not sent yet get its 4xx instead.
            refusable = conn.pipelined and any(r.verdict != "ok" for r in reqs[i + 1 :])
            ended = await _judge(
                rig,
                client,
                req,
                (tokens[i], smuggled[i]),
                plan[i],
                response,
                whole[i],
                misbehaving,
                refusable,
            )
        if not ended:
            # Anything stray left on the connection would come before this answer.
            token = new_token()
            own.add(token)
            client.send(b"GET /f/%s HTTP/1.1\r\nHost: fuzz\r\n\r\n" % token)
            response = await client.response()
            if response is not None or not misbehaving:
                assert response is not None, "the connection ended without a reason"
                if not (misbehaving and response.from_balancer):
                    assert response.echo == echo_of(token, b"GET", b""), (
                        f"a follow-up request on the same connection got {response}"
                    )
        assert_no_foreign_bytes(client, own)
    finally:
        await client.close()


def _arrives_whole(datas: list[bytes], conn: Conn) -> list[bool]:
    """Whether each request reaches the balancer in one write (no cut inside it)."""
    if not conn.pipelined:
        return [True] * len(datas)
    out = []
    at = 0
    for data in datas:
        out.append(not any(at < cut < at + len(data) for cut in conn.splits))
        at += len(data)
    return out


async def _judge(
    rig: Rig,
    client: Client,
    req: Req,
    tokens: tuple[bytes, bytes],
    script: Script,
    response: Response | None,
    whole: bool,
    misbehaving: bool,
    refusable: bool,
) -> bool:
    """Check one request's outcome; True when the connection is over."""
    token, smuggled = tokens
    label = f"{req.kind} request {req.template[:120]!r}"
    rejected = (
        response is not None
        and response.from_balancer
        and 400 <= response.status < 500
        and response.complete
    )
    if req.verdict == "reject" or rejected:
        assert rejected, f"{label}: expected a 4xx from the balancer, got {response}"
        assert req.verdict != "ok" or refusable, f"{label}: a valid request was refused: {response}"
        rest = await client.rest()
        if req.is_head and response.values(b"content-length") == [b"%d" % len(rest)]:
            # The balancer's error page after a HEAD: a body a HEAD response must not
            # have, harmless only because the connection closes (see the 5xx case).
            rest = b""
        assert rest == b"", f"{label}: bytes after the 4xx: {rest[:300]!r}"
        if req.where == "head" or whole:
            reached = rig.reached_targets(token)
            assert not reached, f"{label}: rejected, yet its bytes reached {reached}"
        else:  # a bad chunk in a later read: the head may have gone, never a whole request
            assert not rig.received_by_targets(token), f"{label}: rejected, yet forwarded whole"
        assert not rig.reached_targets(smuggled), f"{label}: the smuggled request reached a target"
        return True
    if response is None:
        assert misbehaving, f"{label}: the connection ended without a response"
        return True
    if response.from_balancer:
        # 502 for a target that broke the protocol, or that closed a kept-alive
        # connection just as this request went out on it; never 504: no script stalls.
        assert response.status == 502 and (
            misbehaving or _lost_to_a_silent_close(rig, req, token)
        ), (
            f"{label}: got {response}; the targets got its bytes: "
            f"{rig.reached_targets(token)}, whole: {rig.received_by_targets(token)}; "
            f"the rig's loop stalled up to {rig.max_lag:.2f} s this example (a stall of "
            f"{IDLE_TIMEOUT_S} s after a request went out gives a 504 by itself: HEARTBEAT_S)"
        )
        return not response.complete or _closes(response)
    assert response.echo == echo_of(token, req.method, req.body), (
        f"{label}: the response is not the answer to this request (want echo "
        f"{echo_of(token, req.method, req.body)!r}): {response}"
    )
    if not response.complete:
        assert not script.valid, f"{label}: a valid response was cut short: {response}"
        return True
    if response.framing in ("length", "chunked", "eof") and script.status not in (204, 304):
        assert response.body.startswith(response.echo or b"-"), f"{label}: body {response}"
    names = {n.lower() for n, _ in response.headers}
    assert b"x-hop-secret" not in names, (
        f"{label}: a header the target's Connection named reached the client: {response}"
    )
    if req.http10:
        assert response.framing != "chunked", (
            f"{label}: an HTTP/1.0 client got a chunked body: {response}"
        )
    if "gzip-coding" in req.checks:
        for received in rig.received_by_targets(token):
            codings = b",".join(received.values(b"transfer-encoding")).lower()
            assert b"gzip" in codings, f"{label}: the target got codings {codings!r}"
    if script.framing == "gzip-chunked" and response.framing not in ("none",):
        codings = b",".join(response.values(b"transfer-encoding")).lower()
        assert b"gzip" in codings, (
            f"{label}: the target's gzip coding was lost, the client got {response}"
        )
    if req.closes or response.framing == "eof" or _closes(response):
        if response.framing != "eof":
            rest = await client.rest()
            assert rest == b"", f"{label}: bytes after the last response: {rest[:300]!r}"
        return True
    return False


# The methods the balancer resends on a new connection when a pooled one fails before
# any byte of a response (canary_deploy.balancer.parser._IDEMPOTENT), if bodiless.
RESENDABLE = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


def _lost_to_a_silent_close(rig: Rig, req: Req, token: bytes) -> bool:
    """A 502 no balancer can avoid: in this example a target closed a connection after a
    response that did not say `Connection: close` (so it was pooled), and this request
    went out on it just before the close reached the balancer. A request the balancer
    may not send twice (a body, or a method that is not idempotent: RFC 9112 9.3.1 and
    9.6) gets the 502 then, as on ALB; a bodiless idempotent one must have been resent.
    Only if no target answered it: none received it whole, or the one that did closed
    without answering."""
    if not rig.silent_closes or (req.method in RESENDABLE and not req.body):
        return False
    return not rig.received_by_targets(token) or token in rig.cut_off


def _closes(response: Response) -> bool:
    tokens = b",".join(response.values(b"connection")).lower().split(b",")
    return b"close" in {t.strip() for t in tokens}
