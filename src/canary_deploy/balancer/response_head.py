"""What target response heads become for the client, and which may skip the parser.

A response head qualifies when it arrives whole, is HTTP/1.1 with a final status other
than 204/304, has well-formed header lines (token names right before the colon,
visible-ASCII values), exactly one Content-Length and no hop-by-hop header but
Connection. Everything else (chunked, close-delimited, 1xx, duplicate or conflicting
framing, malformed heads) goes through httptools, which is strict; what it accepts is
filtered by `parsed_response_head`. Either way, the hop-by-hop headers and those a
Connection header names never reach the client.

The verdict takes one regex pass, and it is a pure function of the head's bytes, so it
is memoized: a target sends the same few heads over and over (only `Date` changes, once
a second, and `Content-Length` with the body), and a head seen before costs one
dictionary lookup. Heads that differ every time (a per-response request id) miss the
cache and pay the pass plus the lookup.
"""

from __future__ import annotations

import functools
import re

from canary_deploy.balancer.http11 import HOP_BY_HOP, TOKEN_CHAR, first_letter_alternatives

# Distinct heads remembered; a busy target repeats a handful per second.
HEAD_CACHE_SIZE = 1024
# Longer heads always go through the parser, so the cache holds at most a few MiB even
# when every head is new (a target echoing a long request path, say).
MAX_SIMPLE_HEAD_BYTES = 4096

# One strict pass over the whole head, final CRLFs included: the status line, then each
# header line (a token name right before the colon, a visible-ASCII value), where
# Content-Length and Connection may appear at most once each, in either order, and no
# other hop-by-hop header may appear. Each line is matched with the CRLF before it, so
# the Connection group spans exactly the bytes to cut out. A header name's first letter
# is tested as a character class, which lets the regex engine skip the other names at
# once (see first_letter_alternatives). Possessive repeats (`*+`, `++`): nothing here
# can match two ways, so the engine keeps no backtrack points.
_VALUE = rb"[\t -~]*+"
_OTHER = (
    rb"\r\n(?!(?:"
    + first_letter_alternatives(sorted(HOP_BY_HOP | {b"content-length"}))
    + rb"):)"
    + TOKEN_CHAR
    + rb"++:"
    + _VALUE
)
_LENGTH = rb"\r\n[Cc](?i:ontent-length):(?P<length%d>" + _VALUE + rb")"
_CONNECTION = rb"(?P<connection%d>\r\n[Cc](?i:onnection):" + _VALUE + rb")"
_SIMPLE_RESPONSE = re.compile(
    rb"HTTP/1\.1 [2-5][0-9][0-9] "
    + _VALUE
    + rb"(?:%b)*+(?:" % _OTHER
    + rb"%b(?:%b)*+(?:%b(?:%b)*+)?" % (_LENGTH % 1, _OTHER, _CONNECTION % 1, _OTHER)
    + rb"|%b(?:%b)*+(?:%b(?:%b)*+)?" % (_CONNECTION % 2, _OTHER, _LENGTH % 2, _OTHER)
    + rb")?\r\n\r\n"
)
# Connection tokens that name no header to strip: options, headers already stripped as
# hop-by-hop, and the framing (the balancer frames the body for the client itself).
_NOT_NAMES = HOP_BY_HOP | {b"", b"close", b"keep-alive", b"content-length"}
_NAME = re.compile(TOKEN_CHAR + rb"++")
_CONNECTION_VALUE = re.compile(rb"\r\n[Cc](?i:onnection)[ \t]*:([^\r]*)")
# Parsed response heads are filtered as raw bytes, not one Python callback per header.
_HOP_NAMES = b"|".join(sorted(HOP_BY_HOP))
_FRAMING_OR_HOP = re.compile(rb"\r\n(" + _HOP_NAMES + rb"|content-length)[ \t]*:", re.I)
_HOP_LINE = re.compile(rb"\r\n(?:" + _HOP_NAMES + rb")[ \t]*:[^\r]*", re.I)
_STATUS_CODES = {b"%d" % code: code for code in range(200, 600) if code not in (204, 304)}
_MAX_LENGTH_DIGITS = 15


# A response head the balancer can pass on without the parser: (the status line and
# headers minus Connection, each line CRLF-ended; status; Content-Length; keep-alive,
# False when the target said Connection: close). A plain tuple: made once per distinct
# head, unpacked once per response.
SimpleHead = tuple[bytes, int, int, bool]


@functools.lru_cache(maxsize=HEAD_CACHE_SIZE)
def simple_response_head(head: bytes) -> SimpleHead | None:
    """The verdict for a whole head (final CRLF included); None: use the parser.

    Callers pass heads of at most MAX_SIMPLE_HEAD_BYTES.

    >>> verdict = simple_response_head(
    ...     b"HTTP/1.1 200 OK\\r\\nConnection: close\\r\\nContent-Length: 2\\r\\n\\r\\n"
    ... )
    >>> verdict
    (b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n', 200, 2, False)
    """
    match = _SIMPLE_RESPONSE.fullmatch(head)
    if match is None:
        return None
    status = _STATUS_CODES.get(head[9:12], 0)
    if not status:
        return None  # 204/304 have no body: the parser knows that
    value = match["length1"]
    if value is None:
        value = match["length2"]
        if value is None:
            return None  # chunked or close-delimited: the parser streams it
    value = value.strip(b" \t")
    if not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
        return None  # an odd length: the parser copes
    length = int(value)
    keep_alive = True
    out = head[:-2]
    connection_at = match.span("connection1")
    if connection_at[0] < 0:
        connection_at = match.span("connection2")
    if connection_at[0] >= 0:
        start, end = connection_at
        out = head[:start] + head[end:-2]
        value = head[start:end].partition(b":")[2].strip(b" \t").lower()
        if value == b"close":
            keep_alive = False
        elif value != b"keep-alive":  # the usual values skip the token split
            # Its comma-separated tokens, as llhttp reads them: "closed" is not "close".
            tokens = connection_tokens(value)
            keep_alive = b"close" not in tokens
            out = drop_named_headers(out, tokens)
    return out, status, length, keep_alive


def parsed_response_head(head: bytes) -> tuple[bytes, bool, bool]:
    """A head httptools accepted (status line and headers, no final CRLF), as the client
    gets it: without hop-by-hop headers and those its Connection names, labelled
    HTTP/1.1; and whether it had a Content-Length, and a Transfer-Encoding.

    >>> parsed_response_head(b"HTTP/1.0 200 OK\\r\\nKeep-Alive: 5\\r\\nContent-Length: 2")
    (b'HTTP/1.1 200 OK\\r\\nContent-Length: 2', True, False)
    """
    has_length = chunked = False
    names = _FRAMING_OR_HOP.findall(head)
    if names:
        found = b" ".join(names).lower()
        has_length = b"content-length" in found
        chunked = b"transfer-encoding" in found
        if b"connection" in found:
            head = drop_named_headers(head, named_by_connection(head))
        if len(names) > has_length:
            head = _HOP_LINE.sub(b"", head)
    if not head.startswith(b"HTTP/1.1 "):
        head = b"HTTP/1.1" + head[8:]  # we speak HTTP/1.1 to clients whatever the target
    return head, has_length, chunked


def connection_tokens(value: bytes) -> set[bytes]:
    """The lowercased comma-separated tokens of a Connection header value."""
    return {token.strip(b" \t") for token in value.lower().split(b",")}


def named_by_connection(head: bytes) -> set[bytes]:
    """The tokens of every Connection header line in a head (lines start with CRLF)."""
    tokens: set[bytes] = set()
    for value in _CONNECTION_VALUE.findall(head):
        tokens |= connection_tokens(value)
    return tokens


def drop_named_headers(head: bytes, tokens: set[bytes]) -> bytes:
    """The head without the header lines its Connection tokens name (RFC 9110 7.6.1: they
    are hop-by-hop too). Lines are matched with the CRLF before them, as in the head."""
    names = [re.escape(token) for token in tokens - _NOT_NAMES if _NAME.fullmatch(token)]
    if not names:
        return head
    named = re.compile(rb"\r\n(?i:" + b"|".join(names) + rb")[ \t]*:[^\r]*")
    return named.sub(b"", head)
