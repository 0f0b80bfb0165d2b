"""Which target response heads may skip the parser, and what they become for the client.

A response head qualifies when it arrives whole, is HTTP/1.1 with a final status other
than 204/304, has well-formed header lines (token names right before the colon,
visible-ASCII values), exactly one Content-Length and no hop-by-hop header but
Connection. Everything else (chunked, close-delimited, 1xx, duplicate or conflicting
framing, malformed heads) goes through httptools, which is strict.

The verdict is a pure function of the head's bytes, so it is memoized: a target sends
the same few heads over and over (only `Date` changes, once a second, and
`Content-Length` with the body), and a head seen before costs one dictionary lookup
instead of two regex passes over it. Heads that differ every time (a per-response
request id) miss the cache and cost what they did without it, plus the lookup.
"""

from __future__ import annotations

import functools
import re

from canary_deploy.balancer.parser import HOP_BY_HOP

# Distinct heads remembered; a busy target repeats a handful per second.
HEAD_CACHE_SIZE = 1024

_TOKEN_CHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
# The whole head, final CRLF included. Possessive repeats (`*+`, `++`): nothing here
# can match two ways, so the regex engine keeps no backtrack points.
_SIMPLE_RESPONSE = re.compile(
    rb"HTTP/1\.1 [2-5][0-9][0-9] [\t -~]*+\r\n(?:" + _TOKEN_CHAR + rb"++:[\t -~]*+\r\n)*+\r\n"
)
# (whole line, "…length" or b"", "…connection" or b"", value), in any letter case; in a
# simple head every value ends at a CR.
_HOP_OR_FRAMING = re.compile(
    rb"(\r\n(?:(content-length)|(connection)|"
    + b"|".join(sorted(HOP_BY_HOP - {b"connection"}))
    + rb"):([^\r]*+))",
    re.I,
)
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

    >>> verdict = simple_response_head(
    ...     b"HTTP/1.1 200 OK\\r\\nConnection: close\\r\\nContent-Length: 2\\r\\n\\r\\n"
    ... )
    >>> verdict
    (b'HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n', 200, 2, False)
    """
    if _SIMPLE_RESPONSE.fullmatch(head) is None:
        return None
    status = _STATUS_CODES.get(head[9:12], 0)
    if not status:
        return None  # 204/304 have no body: the parser knows that
    length = -1
    connection = b""
    for line, is_length, is_connection, value in _HOP_OR_FRAMING.findall(head):
        if is_length:
            value = value.strip(b" \t")
            if length >= 0 or not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
                return None  # twice framed or odd: the parser copes
            length = int(value)
        elif connection or not is_connection:
            return None  # two Connection headers, or another hop-by-hop one
        else:
            connection = line
    if length < 0:
        return None  # chunked or close-delimited: the parser streams it
    keep_alive = True
    out = head[:-2]
    if connection:
        # find, not `in`: bytes.__contains__ first tries its argument as an int, and
        # raising and clearing that TypeError costs more than the search.
        keep_alive = connection.lower().find(b"close") < 0
        # The line is unique in the head: values hold no CR, names are tokens.
        out = out.replace(connection, b"", 1)
    return out, status, length, keep_alive
