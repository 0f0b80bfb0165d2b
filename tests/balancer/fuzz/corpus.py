"""Cases the fuzz harness found, shrunk, kept as regression tests (test_corpus.py).

Each entry names the issue-12 item it reproduces ("new" for ones the harness found
beyond the issue's list) and says what goes wrong. `repeat`: how many times the case
runs in a row; a few depend on what the previous exchange left in the target pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.balancer.fuzz.harness import GOOD, Script
from tests.balancer.fuzz.strategies import LEAK_RESPONSE, SMUGGLED, Conn, Req


@dataclass(frozen=True)
class Found:
    name: str
    item: str  # issue 12's item number, or "new"
    what: str
    conns: tuple[Conn, ...]
    scripts: tuple[tuple[Script, ...], ...] = ()
    early: bytes = b""
    repeat: int = 1


GET = Req(b"GET /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nX-Fuzz-Token: %TOK%\r\n\r\n")
HEAD = Req(b"HEAD /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nX-Fuzz-Token: %TOK%\r\n\r\n", method=b"HEAD")
GET_10 = Req(
    b"GET /f/%TOK% HTTP/1.0\r\nHost: fuzz\r\nX-Fuzz-Token: %TOK%\r\nConnection: keep-alive\r\n\r\n",
    http10=True,
)
POST_10 = Req(
    b"POST /f/%TOK% HTTP/1.0\r\nHost: fuzz\r\nX-Fuzz-Token: %TOK%\r\nConnection: keep-alive\r\n"
    b"Content-Length: 9\r\n\r\npayload-0",
    method=b"POST",
    body=b"payload-0",
    http10=True,
)
# Closes its connection 60 loop turns after a 204 that said nothing of closing.
SILENT = Script(framing="eof", status=204, yields=60)
EARLY = b"HTTP/1.1 200 OK\r\nX-Fuzz-Echo: LEAK\r\nContent-Length: 10\r\n\r\nLEAK-EARLY"

CORPUS = [
    Found(
        "missing-host",
        "11",
        "an HTTP/1.1 request without Host is forwarded (and what it smuggles after it)",
        (
            Conn(
                (
                    Req(
                        b"GET /f/%TOK% HTTP/1.1\r\nX-Fuzz-Token: %TOK%\r\n\r\n" + SMUGGLED,
                        "reject",
                        kind="missing-host",
                        closes=True,
                    ),
                ),
                pipelined=False,
            ),
        ),
    ),
    Found(
        "duplicate-host",
        "11",
        "a request with two Host headers is forwarded with both",
        (
            Conn(
                (
                    Req(
                        b"GET /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nHost: other\r\n\r\n" + SMUGGLED,
                        "reject",
                        kind="duplicate-host",
                        closes=True,
                    ),
                ),
                pipelined=False,
            ),
        ),
    ),
    Found(
        "absolute-form",
        "11",
        "an absolute-form request target reaches the target as it came (not origin form)",
        (
            Conn(
                (
                    Req(
                        b"GET http://fuzz/f/%TOK% HTTP/1.1\r\nHost: fuzz\r\n\r\n",
                        "either",
                        kind="absolute-form",
                    ),
                ),
                pipelined=False,
            ),
        ),
    ),
    Found(
        "http10-without-host",
        "11",
        "an HTTP/1.0 request without Host reaches the target as HTTP/1.1 without Host",
        (
            Conn(
                (
                    Req(
                        b"GET /f/%TOK% HTTP/1.0\r\nX-Fuzz-Token: %TOK%\r\n\r\n",
                        "either",
                        closes=True,
                        http10=True,
                        kind="http10-no-host",
                    ),
                ),
                pipelined=False,
            ),
        ),
    ),
    Found(
        "gzip-chunked-request",
        "12",
        "a request's Transfer-Encoding: gzip, chunked reaches the target as chunked only",
        (
            Conn(
                (
                    Req(
                        b"POST /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\n"
                        b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                        "either",
                        b"POST",
                        b"hello",
                        kind="gzip-chunked",
                        checks=("gzip-coding",),
                    ),
                ),
                pipelined=False,
            ),
        ),
    ),
    Found(
        "pipelined-after-close",
        "new",
        "a valid request with Connection: close followed in the same read by another "
        "request gets a 400 instead of its answer (llhttp: data after Connection: close)",
        (
            Conn(
                (
                    Req(
                        b"GET /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
                        closes=True,
                    ),
                    GET,
                )
            ),
        ),
    ),
    Found(
        "body-tail-before-a-bad-request",
        "new",
        "the last body bytes of a forwarded request, parsed in the same read as a "
        "following invalid request, are never sent: the target waits, the client gets a "
        "504 after the idle timeout (booked on the group) instead of the answer",
        (
            Conn(
                (
                    Req(
                        b"POST /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 10\r\n\r\n"
                        b"helloworld",
                        method=b"POST",
                        body=b"helloworld",
                    ),
                    Req(
                        b"GET /f/%TOK% HTTP/1.1 x\r\nHost: fuzz\r\n\r\n" + SMUGGLED,
                        "reject",
                        kind="bad-request-line",
                        closes=True,
                    ),
                ),
                splits=(67,),  # after "hello"
                turns=50,  # the POST reaches its target connection before the rest
            ),
        ),
    ),
    Found(
        "connection-listed-response-header",
        "13",
        "a header named by the target's Connection header reaches the client",
        (Conn((GET,), pipelined=False),),
        ((Script(headers=((b"Connection", b"X-Hop-Secret"), (b"X-Hop-Secret", b"hop"))),),),
    ),
    Found(
        "http10-client-gets-chunked",
        "6",
        "an HTTP/1.0 client gets a chunked body (the target's was chunked)",
        (Conn((GET_10,), pipelined=False),),
        ((Script(framing="chunked"),),),
    ),
    Found(
        "http10-client-gets-chunked-eof",
        "6",
        "an HTTP/1.0 client gets a chunked body (the target's was close-delimited)",
        (Conn((GET_10,), pipelined=False),),
        ((Script(framing="eof"),),),
    ),
    Found(
        "gzip-chunked-response",
        "12",
        "a response's Transfer-Encoding: gzip, chunked reaches the client as chunked only",
        (Conn((GET,), pipelined=False),),
        ((Script(framing="gzip-chunked", valid=False),),),
    ),
    Found(
        "http10-client-gets-a-transfer-coding",
        "12",
        "a target's Transfer-Encoding: gzip, chunked to an HTTP/1.0 client: its body went "
        "out close-delimited still gzip-coded, with nothing saying so (an HTTP/1.0 client "
        "cannot be sent a transfer coding; found by the generated response test)",
        (Conn((GET_10,), pipelined=False),),
        ((Script(framing="gzip-chunked", valid=False),),),
    ),
    Found(
        "stale-bytes-reach-the-next-request",
        "3",
        "bytes a target sends after a complete response, in a later read but before the "
        "balancer sent the next request on that connection, are taken as the answer to "
        "the client's next (pipelined) request",
        (Conn((GET, GET)),),
        ((Script(stale=LEAK_RESPONSE, yields=3), GOOD),),
        repeat=2,
    ),
    Found(
        "early-bytes-on-a-new-connection",
        "new",
        "a target that sends bytes on a new connection before the request: the balancer "
        "closes the connection but still attaches the request to it - a 504 after the "
        "idle timeout, or a RuntimeError in ClientConnection._connect and no answer",
        (Conn((GET,), pipelined=False),),
        early=EARLY,
    ),
    Found(
        "head-response-then-excess",
        "3",
        "bytes after a HEAD response's head (chunked framing declared) in the same read are "
        "parsed as its body: the client's connection is aborted without any response "
        "instead of getting the head (and the target connection closed)",
        (Conn((HEAD,), pipelined=False),),
        ((Script(framing="chunked", excess=LEAK_RESPONSE),),),
    ),
    Found(
        "head-error-page-has-a-body",
        "new",
        "the balancer's own error response to a HEAD (here a 502 for a NUL in a response "
        "header) carries a body: the client's keep-alive connection is out of sync and its "
        "next response is garbage",
        (Conn((HEAD, GET), pipelined=False),),
        ((Script(headers=((b"X-Ctl", b"a\x00b"),), valid=False), GOOD),),
    ),
    Found(
        "http10-close-delimited-body-broken-mid-way",
        "new",
        "a chunked response broken after its head (a chunk size past 64 bits) to an "
        "HTTP/1.0 client: its head had gone out close-delimited, and the balancer's abort "
        "closed the client connection with a FIN, which ends such a body as if whole (a "
        "200 with an empty body); it must end with a reset",
        (Conn((GET_10,), pipelined=False),),
        ((Script(framing="bad-chunk", interim=(100, 100), splits=(203,), yields=1, valid=False),),),
    ),
    Found(
        "post-on-a-pooled-connection-the-target-closed",
        "new",
        "a target closes a connection after a 204 that did not say Connection: close (so it "
        "was pooled), a little later (here 60 loop turns), just as the balancer sent the "
        "client's next request, an HTTP/1.0 POST, on it: the POST gets a 502 (it may not be "
        "sent twice: RFC 9112 9.3.1), which the oracle took for a 502 nothing explained "
        "(found by the long run; only this 502 is accepted, see oracle._lost_to_a_silent_close)",
        (Conn((GET, GET, POST_10), pipelined=False),),
        ((SILENT, SILENT, GOOD),),
    ),
    Found(
        "get-on-a-pooled-connection-the-target-closed",
        "new",
        "the same race for a bodiless GET: it must be resent on a new connection, no 502",
        (Conn((GET, GET, GET), pipelined=False),),
        ((SILENT, SILENT, GOOD),),
    ),
]
