"""What the fuzz clients read: a strict HTTP/1.1 response parser and the exchange tokens.

Every fuzzed request carries a unique token; a correct target echoes it in `X-Fuzz-Echo`
and in its body, and every byte a target sends outside a response it was asked for
carries `LEAK`. So a client can tell, from its bytes alone, whether anything it received
belongs to someone else.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

TOKEN = re.compile(rb"tk[0-9a-f]{12}")
LEAK = b"LEAK"  # in every byte a target sends outside an asked-for response
ECHO_HEADER = b"x-fuzz-echo"
BALANCER_SERVER = b"canary-balancer"
_serial = itertools.count(1)


def new_token() -> bytes:
    """A token no other exchange of this process has: `tk` + 12 hex digits."""
    return b"tk%012x" % next(_serial)


def fill(template: bytes, token: bytes, smuggled: bytes) -> bytes:
    """A request or response template with its placeholders replaced."""
    return template.replace(b"%TOK%", token).replace(b"%SMG%", smuggled)


class Malformed(Exception):
    """The bytes a client received are not a valid HTTP/1.1 response."""


@dataclass
class Response:
    status: int
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    complete: bool = True  # False: the connection ended inside the message
    framing: str = "length"  # length | chunked | eof | none
    raw: bytes = field(default=b"", repr=False)

    def values(self, name: bytes) -> list[bytes]:
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    @property
    def from_balancer(self) -> bool:
        """A response the balancer made itself (its errors), not one from a target."""
        return self.values(b"server") == [BALANCER_SERVER] and not self.values(ECHO_HEADER)

    @property
    def echo(self) -> bytes | None:
        values = self.values(ECHO_HEADER)
        return values[0] if len(values) == 1 else None


_STATUS_LINE = re.compile(rb"(HTTP/1\.[01]) ([1-5][0-9][0-9]) [\t -~\x80-\xff]*")
_HEADER = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\t -~\x80-\xff]*?)[ \t]*")
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,15})(?:[ \t]*;[^\r\n]*)?\r\n")


def parse_response(buf: bytes, eof: bool, is_head: bool) -> tuple[Response | None, int]:
    """The first response in `buf` and the bytes it took; (None, 0): more bytes needed.

    Strict like a careful client: CRLF only, no obs-fold, one Content-Length, never with
    Transfer-Encoding, chunked framing exactly. Raises Malformed otherwise. At `eof`, a
    message cut short comes back with `complete=False`.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if b"\n" in buf.replace(b"\r\n", b"") or not b"HTTP/".startswith(buf[:5]):
            raise Malformed(f"not a response head: {buf[:80]!r}")
        if eof and buf:
            return Response(0, b"", [], complete=False, raw=buf), len(buf)
        return None, 0
    head = buf[:end]
    if b"\n" in head.replace(b"\r\n", b"") or b"\r" in head.replace(b"\r\n", b""):
        raise Malformed(f"bare CR or LF in a response head: {head[:200]!r}")
    lines = head.split(b"\r\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise Malformed(f"bad status line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        match = _HEADER.fullmatch(line)
        if match is None:
            raise Malformed(f"bad header line {line[:80]!r}")
        headers.append((match[1], match[2]))
    response = Response(int(status_line[2]), status_line[1], headers)
    start = end + 4
    lengths = response.values(b"content-length")
    codings = b",".join(response.values(b"transfer-encoding"))
    if lengths and codings:
        raise Malformed("Content-Length with Transfer-Encoding")
    if len(lengths) > 1:
        raise Malformed(f"{len(lengths)} Content-Length headers")
    if response.status < 200 or is_head or response.status in (204, 304):
        response.framing = "none"
        response.raw = buf[:start]
        return response, start
    if codings:
        last = codings.split(b",")[-1].strip().lower()
        if last != b"chunked":
            response.framing = "eof"
        else:
            response.framing = "chunked"
            return _chunked(response, buf, start, eof)
    elif lengths:
        if not lengths[0].isdigit():
            raise Malformed(f"Content-Length {lengths[0]!r}")
        length = int(lengths[0])
        if len(buf) - start < length:
            if not eof:
                return None, 0
            response.complete = False
            response.body = buf[start:]
            response.raw = buf
            return response, len(buf)
        response.body = buf[start : start + length]
        response.raw = buf[: start + length]
        return response, start + length
    else:
        response.framing = "eof"
    if not eof:
        return None, 0
    response.body = buf[start:]
    response.raw = buf
    return response, len(buf)


def _chunked(response: Response, buf: bytes, at: int, eof: bool) -> tuple[Response | None, int]:
    body = bytearray()
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return _cut(response, buf, body, eof)
        size_line = _CHUNK_SIZE.fullmatch(buf, at, line_end + 2)
        if size_line is None:
            raise Malformed(f"bad chunk size line {buf[at : line_end + 2][:80]!r}")
        size = int(size_line[1], 16)
        at = line_end + 2
        if size == 0:
            break
        if len(buf) < at + size + 2:
            return _cut(response, buf, body + buf[at : at + size], eof)
        if buf[at + size : at + size + 2] != b"\r\n":
            raise Malformed("chunk data not followed by CRLF")
        body += buf[at : at + size]
        at += size + 2
    while True:  # trailer section
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return _cut(response, buf, body, eof)
        if line_end == at:
            response.body = bytes(body)
            response.raw = buf[: at + 2]
            return response, at + 2
        if _HEADER.fullmatch(buf, at, line_end) is None:
            raise Malformed(f"bad trailer line {buf[at:line_end][:80]!r}")
        at = line_end + 2


def _cut(response: Response, buf: bytes, body: bytes, eof: bool) -> tuple[Response | None, int]:
    if not eof:
        return None, 0
    response.complete = False
    response.body = bytes(body)
    response.raw = buf
    return response, len(buf)
