"""Hypothesis strategies: client requests (valid, borderline, hostile) and target scripts.

A request is a byte template: `%TOK%` becomes the exchange's unique token and `%SMG%`
the token of a request smuggled inside it, which must never reach a target. Each
request says what a correct balancer must do with it (`verdict`):

- `ok`: forward it whole; the client gets the target's response.
- `reject`: a 4xx from the balancer and a close; no byte of it reaches a target (for a
  hostile body that arrives in several reads, at least no complete request does).
- `either`: borderline; a 4xx as for `reject`, or forwarded as for `ok` with the extra
  `checks` holding on what the target received.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from tests.balancer.fuzz.harness import Script

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
SMUGGLED = b"GET /f/%SMG% HTTP/1.1\r\nHost: fuzz\r\nX-Fuzz-Token: %SMG%\r\n\r\n"
# A body that looks like a request, with a token no exchange has (a literal: a body's
# length must not change when placeholders are filled in). Its answer reaching a client
# would show up as a foreign token.
REQUEST_LIKE = b"GET /f/tkffffffffffff HTTP/1.1\r\nHost: fuzz\r\n\r\n"


@dataclass(frozen=True)
class Req:
    """One request as a client sends it, and what the balancer must do with it."""

    template: bytes
    verdict: str = "ok"  # ok | reject | either
    method: bytes = b"GET"
    body: bytes = b""  # the body a target must receive (decoded)
    closes: bool = False  # the client asked for the connection to end after it
    http10: bool = False
    kind: str = "valid"
    where: str = "head"  # where a hostile request goes wrong: head | body
    checks: tuple[str, ...] = ()  # gzip-coding: a target sees the gzip coding

    @property
    def is_head(self) -> bool:
        return self.method == b"HEAD"


@dataclass(frozen=True)
class Conn:
    """One client connection: its requests, sent pipelined (cut into writes at `splits`)
    or one at a time, each after the previous response."""

    requests: tuple[Req, ...]
    pipelined: bool = True
    splits: tuple[int, ...] = ()
    turns: int = 1  # event-loop turns after each write (lets the balancer act in between)


def _head(
    method: bytes, target: bytes, version: bytes, headers: list[tuple[bytes, bytes]]
) -> bytes:
    lines = [b"%s %s %s" % (method, target, version)]
    lines += [n + b": " + v for n, v in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


header_names = st.text(TOKEN_CHARS, min_size=1, max_size=16).map(lambda s: b"X-" + s.encode())
header_values = st.text(VISIBLE + " \t", max_size=60).map(lambda s: s.strip(" \t").encode())
extra_headers = st.lists(
    st.one_of(
        st.tuples(header_names, header_values),
        st.sampled_from(
            [
                (b"Accept", b"*/*"),
                (b"User-Agent", b"fuzz/1.0"),
                (b"Cookie", b"a=b; AWSALBTG=garbage"),
                (b"X-Forwarded-For", b"198.51.100.7"),
                (b"X-Amzn-Trace-Id", b"Root=1-00000000-000000000000000000000000"),
                (b"Accept-Encoding", b"gzip"),
                (b"x-forwarded-proto", b"https"),
            ]
        ),
    ),
    max_size=6,
)
small_bodies = st.binary(max_size=300)
bodies = st.one_of(
    small_bodies,
    small_bodies,
    small_bodies,
    st.sampled_from([REQUEST_LIKE, b"0\r\n\r\n" + REQUEST_LIKE]),  # bodies that look like requests
    st.integers(1, 400_000).map(lambda n: bytes(range(256)) * (n // 256) + b"z" * (n % 256)),
)


def chunked(body: bytes, cuts: list[int], ext: bytes, trailer: bool) -> bytes:
    """`body` chunked at `cuts`, each size line with `ext`, and optionally a trailer."""
    out = bytearray()
    at = 0
    for cut in [*sorted({c for c in cuts if 0 < c < len(body)}), len(body)]:
        if cut > at:
            out += b"%x%s\r\n%s\r\n" % (cut - at, ext, body[at:cut])
            at = cut
    return bytes(out + b"0\r\n" + (b"X-Trailer: t\r\n" if trailer else b"") + b"\r\n")


@st.composite
def valid_requests(draw: st.DrawFn) -> Req:
    """Requests a correct balancer must forward whole."""
    method = draw(
        st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"])
    )
    http10 = draw(st.integers(0, 5)) == 0
    suffix = draw(st.sampled_from([b"", b"?a=1&b=%20x", b"/more;p=1", b"?q=" + b"q" * 3000]))
    headers: list[tuple[bytes, bytes]] = [(b"X-Fuzz-Token", b"%TOK%")]
    headers.append((b"Host", draw(st.sampled_from([b"fuzz", b"fuzz:8080", b"127.0.0.1"]))))
    headers += draw(extra_headers)
    connection = draw(st.sampled_from([None, b"close", b"keep-alive", b"close, X-Drop-Me"]))
    if connection is not None:
        headers.append((b"Connection", connection))
        if b"X-Drop-Me" in connection:
            headers.append((b"X-Drop-Me", b"hop"))
    body = b""
    encoded = b""
    if method != b"HEAD" and (method in (b"POST", b"PUT", b"PATCH") or draw(st.booleans())):
        body = draw(bodies)
        if not http10 and draw(st.booleans()):
            cuts = draw(st.lists(st.integers(0, len(body)), max_size=4))
            ext = draw(st.sampled_from([b"", b";a=b", b';name="quoted value"', b";x"]))
            encoded = chunked(body, cuts, ext, draw(st.booleans()))
            headers.append((b"Transfer-Encoding", b"chunked"))
        else:
            encoded = body
            headers.append((b"Content-Length", b"%d" % len(body)))
        if not http10 and draw(st.integers(0, 4)) == 0:
            headers.append((b"Expect", b"100-continue"))
    order = draw(st.permutations(range(len(headers))))
    headers = [headers[i] for i in order]
    version = b"HTTP/1.0" if http10 else b"HTTP/1.1"
    template = _head(method, b"/f/%TOK%" + suffix, version, headers) + encoded
    closes = connection is not None and b"close" in connection
    if http10 and connection != b"keep-alive":
        closes = True
    return Req(template, "ok", method, body, closes, http10, "valid")


@st.composite
def borderline_requests(draw: st.DrawFn) -> Req:
    """Odd but arguably valid requests: rejected, or forwarded faithfully."""
    host = (b"Host", b"fuzz")
    token = (b"X-Fuzz-Token", b"%TOK%")
    shape = draw(
        st.sampled_from(
            [
                "absolute-form",
                "http10-no-host",
                "obs-text",
                "leading-zeros",
                "gzip-chunked",
                "options-star",
                "long-header",
                "many-headers",
                "http10-chunked",
                "upper-chunked",
                "identical-lengths",
                "expect-no-body",
            ]
        )
    )
    get = b"GET /f/%TOK% HTTP/1.1"
    checks: tuple[str, ...] = ()
    body = b""
    method = b"GET"
    closes = False
    if shape == "absolute-form":
        raw = b"GET http://fuzz/f/%TOK% HTTP/1.1\r\nHost: fuzz\r\n\r\n"
    elif shape == "http10-no-host":
        raw = b"GET /f/%TOK% HTTP/1.0\r\nX-Fuzz-Token: %TOK%\r\n\r\n"
        closes = True
    elif shape == "obs-text":
        raw = get + b"\r\nHost: fuzz\r\nX-Text: caf\xe9 \xff\r\n\r\n"
    elif shape == "leading-zeros":
        method, body = b"POST", b"hello"
        raw = b"POST /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 0005\r\n\r\nhello"
    elif shape == "gzip-chunked":
        method, body, checks = b"POST", b"hello", ("gzip-coding",)
        raw = (
            b"POST /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
        )
    elif shape == "options-star":
        method = b"OPTIONS"
        raw = _head(b"OPTIONS", b"*", b"HTTP/1.1", [host, token])
    elif shape == "long-header":
        size = draw(st.integers(50_000, 64_000))
        raw = _head(b"GET", b"/f/%TOK%", b"HTTP/1.1", [host, (b"X-Long", b"l" * size)])
    elif shape == "many-headers":
        count = draw(st.integers(100, 1000))
        raw = _head(
            b"GET", b"/f/%TOK%", b"HTTP/1.1", [host] + [(b"X-M%d" % i, b"m") for i in range(count)]
        )
    elif shape == "http10-chunked":
        method, body, closes = b"POST", b"hello", True
        raw = (
            b"POST /f/%TOK% HTTP/1.0\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
        )
    elif shape == "upper-chunked":
        method, body = b"POST", b"hello"
        raw = (
            b"POST /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: Chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
        )
    elif shape == "identical-lengths":
        method, body = b"POST", b"hello"
        raw = b"POST /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 5, 5\r\n\r\nhello"
    else:  # expect-no-body
        raw = get + b"\r\nHost: fuzz\r\nExpect: 100-continue\r\n\r\n"
    return Req(raw, "either", method, body, closes, b"HTTP/1.0" in raw[:40], shape, "head", checks)


def _hostile(kind: str, raw: bytes, where: str = "head") -> Req:
    return Req(raw + SMUGGLED, "reject", b"POST", b"", True, False, kind, where)


_POST = b"POST /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\n"


@st.composite
def hostile_requests(draw: st.DrawFn) -> Req:
    """Framing-ambiguous or invalid requests: 4xx, close, and nothing reaches a target.
    Each is followed by a smuggled request (`%SMG%`), often also hidden in its body."""
    smuggle = b"0\r\n\r\n" + SMUGGLED
    shape = draw(
        st.sampled_from(
            [
                "cl-te",
                "te-cl",
                "duplicate-cl",
                "bad-cl",
                "te-not-chunked",
                "obs-fold",
                "space-before-colon",
                "bare-lf",
                "bare-cr",
                "ctl-in-value",
                "odd-name",
                "bad-request-line",
                "missing-host",
                "duplicate-host",
                "huge-head",
                "endless-head",
                "bad-chunk-size",
                "bad-chunk-ext",
                "odd-chunk-ext",
                "lenient-request-line",
                "bad-chunk-data",
                "connect",
                "unknown-expect",
            ]
        )
    )
    te = draw(
        st.sampled_from([b"chunked", b" chunked", b"Chunked", b"chunked ", b"identity, chunked"])
    )
    if shape == "cl-te":
        return _hostile(
            shape, _POST + b"Content-Length: 6\r\nTransfer-Encoding: " + te + b"\r\n\r\n" + smuggle
        )
    if shape == "te-cl":
        return _hostile(
            shape, _POST + b"Transfer-Encoding: " + te + b"\r\nContent-Length: 6\r\n\r\n" + smuggle
        )
    if shape == "duplicate-cl":
        first, second = draw(st.sampled_from([(b"0", b"47"), (b"47", b"0"), (b"5", b"5")]))
        raw = _POST + b"Content-Length: " + first + b"\r\nContent-Length: " + second + b"\r\n\r\n"
        return _hostile(shape, raw + SMUGGLED)
    if shape == "bad-cl":
        value = draw(
            st.sampled_from([b"-1", b"+5", b"5a", b"0x5", b"1 2", b"99999999999999999999", b""])
        )
        return _hostile(shape, _POST + b"Content-Length: " + value + b"\r\n\r\nhello")
    if shape == "te-not-chunked":
        value = draw(
            st.sampled_from(
                [b"gzip", b"chunked, gzip", b"identity", b"chunked, identity", b"xchunked"]
            )
        )
        return _hostile(shape, _POST + b"Transfer-Encoding: " + value + b"\r\n\r\n" + smuggle)
    if shape == "obs-fold":
        folded = draw(
            st.sampled_from(
                [
                    b"X-A: 1\r\n Transfer-Encoding: chunked\r\n",
                    b"Transfer-Encoding:\r\n chunked\r\n",
                    b"X-A: 1\r\n\tmore\r\n",
                    b"Content-Length: 6\r\n 0\r\n",
                ]
            )
        )
        return _hostile(shape, _POST + folded + b"\r\n" + smuggle)
    if shape == "space-before-colon":
        line = draw(
            st.sampled_from(
                [b"Transfer-Encoding : chunked", b"Content-Length\t: 6", b"Host : x", b"X-A : b"]
            )
        )
        return _hostile(shape, _POST + line + b"\r\n\r\n" + smuggle)
    if shape in ("bare-lf", "bare-cr"):
        head = _POST + b"X-A: 1\r\nX-B: 2\r\n\r\n"
        crlfs = [i for i in range(len(head) - 1) if head[i : i + 2] == b"\r\n"]
        at = draw(st.sampled_from(crlfs))
        replacement = b"\n" if shape == "bare-lf" else b"\r"
        return _hostile(shape, head[:at] + replacement + head[at + 2 :])
    if shape == "ctl-in-value":
        ctl = draw(st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\x1b", b"\x0b"]))
        return _hostile(shape, _POST + b"X-A: a" + ctl + b"b\r\nContent-Length: 0\r\n\r\n")
    if shape == "odd-name":
        name = draw(
            st.sampled_from([b"X A", b"X(A)", b"X@A", b"X\x80", b'X"A', b"X/A", b"", b"X\x00A"])
        )
        return _hostile(shape, _POST + name + b": v\r\nContent-Length: 0\r\n\r\n")
    if shape == "bad-request-line":
        line = draw(
            st.sampled_from(
                [
                    b"GET /f/%TOK% HTTP/1.1 extra",
                    b"GET /f/%TOK% HTTP/2.0",
                    b"GET /f/%TOK% HTTP/1.10",
                    b"get /f/%TOK% HTTP/1.1",
                    b"GET\t/f/%TOK% HTTP/1.1",
                    b"GET /f/%TOK% http/1.1",
                    b"GET /f/%TOK%",
                    b"GET /f/%TOK%\x00 HTTP/1.1",
                    b"GET /f/%TOK% HTTP/1.1\r\n",
                    b"GE\x7fT /f/%TOK% HTTP/1.1",
                ]
            )
        )
        if line.endswith(b"\r\n"):  # HTTP/0.9: a request line and nothing else
            return _hostile("http09", b"GET /f/%TOK%\r\n")
        return _hostile(shape, line + b"\r\nHost: fuzz\r\n\r\n")
    if shape == "lenient-request-line":
        # RFC 9112 3 lets a recipient split on any whitespace; the balancer writes its
        # own request line, so forwarding it is not ambiguous.
        line = draw(st.sampled_from([b"GET  /f/%TOK% HTTP/1.1", b"GET /f/%TOK%  HTTP/1.1"]))
        return Req(line + b"\r\nHost: fuzz\r\n\r\n", "either", b"GET", kind=shape)
    if shape == "missing-host":
        return _hostile(shape, b"GET /f/%TOK% HTTP/1.1\r\nX-Fuzz-Token: %TOK%\r\n\r\n")
    if shape == "duplicate-host":
        return _hostile(shape, b"GET /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nHost: other\r\n\r\n")
    if shape == "huge-head":
        size = draw(st.integers(66_000, 300_000))
        return _hostile(
            shape, b"GET /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\nX-Big: " + b"b" * size + b"\r\n\r\n"
        )
    if shape == "endless-head":
        size = draw(st.integers(66_000, 300_000))
        part = draw(st.sampled_from([b"X-Big: ", b"X-Big", b""]))
        raw = b"GET /f/%TOK% HTTP/1.1\r\nHost: fuzz\r\n" + part + b"b" * size
        return Req(raw, "reject", b"GET", b"", True, False, shape, "head")
    if shape == "bad-chunk-size":
        size = draw(st.sampled_from([b"0x5", b"-5", b"1ffffffffffffffff0", b"5 5", b"g", b""]))
        raw = _POST + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\nhello\r\n" + smuggle
        return _hostile(shape, raw, "body")
    if shape == "bad-chunk-ext":
        ext = draw(st.sampled_from([b";\x00", b';a="x', b"; a=\x01", b";a=\r", b";a\n"]))
        raw = _POST + b"Transfer-Encoding: chunked\r\n\r\n5" + ext + b"\r\nhello\r\n" + smuggle
        return _hostile(shape, raw, "body")
    if shape == "odd-chunk-ext":
        # Invalid extensions on a size that is still plain: the balancer drops extensions
        # when it re-chunks, so forwarding is not ambiguous.
        ext = draw(st.sampled_from([b";=v", b";a b", b';a="\x7f"', b";a=b;;"]))
        raw = _POST + b"Transfer-Encoding: chunked\r\n\r\n5" + ext + b"\r\nhello\r\n0\r\n\r\n"
        return Req(raw, "either", b"POST", b"hello", kind=shape, where="body")
    if shape == "bad-chunk-data":
        data = draw(
            st.sampled_from([b"5\r\nhelloXX\r\n", b"5\r\nhel\r\n", b"5\nhello\n", b"5\r\nhello\n"])
        )
        raw = _POST + b"Transfer-Encoding: chunked\r\n\r\n" + data + smuggle
        return _hostile(shape, raw, "body")
    if shape == "connect":
        return _hostile(
            shape, b"CONNECT fuzz:443 HTTP/1.1\r\nHost: fuzz:443\r\nX-Fuzz-Token: %TOK%\r\n\r\n"
        )
    return _hostile(shape, _POST + b"Expect: 200-ok\r\nContent-Length: 5\r\n\r\nhello")


any_request = st.one_of(valid_requests(), borderline_requests(), hostile_requests())


@st.composite
def connections(draw: st.DrawFn, requests: st.SearchStrategy[Req] = any_request) -> Conn:
    """A connection of 1-4 requests, pipelined (cut into writes anywhere) or one by one."""
    reqs = tuple(draw(st.lists(requests, min_size=1, max_size=4)))
    pipelined = draw(st.booleans())
    splits: tuple[int, ...] = ()
    if pipelined:
        total = sum(len(r.template) for r in reqs)
        splits = tuple(sorted(set(draw(st.lists(st.integers(1, max(1, total - 1)), max_size=3)))))
    return Conn(reqs, pipelined, splits)


# ---- what targets answer

# A whole response a target sends unasked (19 = len("LEAK-") + a token's 14 bytes).
LEAK_RESPONSE = b"HTTP/1.1 200 OK\r\nX-Fuzz-Echo: LEAK\r\nContent-Length: 19\r\n\r\nLEAK-%TOK%"


def _with_listed_header(headers: list[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    """A response whose Connection names X-Hop-Secret also sends that header."""
    if (b"Connection", b"X-Hop-Secret") in headers:
        return (*headers, (b"X-Hop-Secret", b"hop"))
    return tuple(headers)


_GOOD_HEADERS = st.lists(
    st.one_of(
        st.tuples(header_names, header_values),
        st.sampled_from(
            [
                (b"Connection", b"X-Hop-Secret"),
                (b"Keep-Alive", b"timeout=5"),
                (b"Content-Type", b"text/plain"),
                (b"Set-Cookie", b"s=1; Path=/"),
                (b"Date", b"Mon, 30 Nov 2026 10:00:00 GMT"),
                (b"Connection", b"keep-alive"),
            ]
        ),
    ),
    max_size=4,
).map(_with_listed_header)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    """How a target answers: well-formed in many shapes, or broken in one way."""
    framing = draw(
        st.sampled_from(
            ["length"] * 4
            + ["chunked"] * 2
            + ["eof", "short", "dup-length", "length-te", "bad-chunk", "gzip-chunked"]
        )
    )
    status = draw(st.sampled_from([200, 200, 201, 204, 304, 404, 500, 503]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    headers = draw(_GOOD_HEADERS)
    broken_header = draw(st.sampled_from([None] * 8 + ["fold", "space", "ctl"]))
    if broken_header == "fold":
        headers += ((b"X-Folded", b"a\r\n b"),)
    elif broken_header == "space":
        headers += ((b"X-Space ", b"a"),)
    elif broken_header == "ctl":
        headers += ((b"X-Ctl", b"a\x00b"),)
    huge_head = draw(st.integers(0, 30)) == 0
    valid = framing in ("length", "chunked", "eof") and broken_header is None and not huge_head
    if version == b"HTTP/1.0" and framing == "chunked":
        valid = False  # chunked is not HTTP/1.0: a balancer may refuse it
    excess = stale = b""
    if framing in ("length", "chunked") and status not in (204, 304):
        excess = draw(st.sampled_from([b""] * 4 + [LEAK_RESPONSE, b"LEAK-%TOK%", b"\r\nLEAK"]))
        stale = draw(st.sampled_from([b""] * 4 + [LEAK_RESPONSE, b"LEAK-%TOK%"]))
    return Script(
        framing=framing,
        version=version,
        status=status,
        interim=tuple(draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2))),
        headers=headers,
        padding=draw(st.sampled_from([0, 0, 10, 5000, 300_000])),
        chunks=draw(st.integers(1, 5)),
        splits=tuple(draw(st.lists(st.integers(1, 400), max_size=3))),
        yields=draw(st.integers(0, 3)),
        excess=excess,
        stale=stale,
        close_after=draw(st.integers(0, 6)) == 0,
        huge_head=huge_head,
        valid=valid,
    )


@st.composite
def simple_requests(draw: st.DrawFn) -> Req:
    """Plain valid requests for the target-side fuzz (the responses are what varies)."""
    method = draw(st.sampled_from([b"GET", b"GET", b"HEAD", b"POST"]))
    http10 = draw(st.integers(0, 4)) == 0
    headers = [(b"Host", b"fuzz"), (b"X-Fuzz-Token", b"%TOK%")]
    if http10:
        headers.append((b"Connection", b"keep-alive"))
    body = b"payload-%d" % draw(st.integers(0, 999)) if method == b"POST" else b""
    if body:
        headers.append((b"Content-Length", b"%d" % len(body)))
    version = b"HTTP/1.0" if http10 else b"HTTP/1.1"
    return Req(
        _head(method, b"/f/%TOK%", version, headers) + body, "ok", method, body, False, http10
    )
