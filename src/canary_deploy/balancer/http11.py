"""HTTP/1.1 grammar the balancer's parsers share: header classes and token patterns.

A leaf module (it imports nothing of the balancer, as h11's `_abnf.py`), so the request
parser and the response-head checks read one definition of each and the import graph
has no cycle. The limits live next door, in `limits.py`.
"""

from __future__ import annotations

import re

# Per RFC 9110 7.6.1, plus headers we set ourselves or re-frame.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# RFC 9110 5.6.2: the characters of a token (a header name, a transfer coding).
TOKEN_CHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
# A valid Host value (RFC 9110 7.2, RFC 3986 3.2.2): an IP literal or a non-empty reg-name
# (so no userinfo, no path), then an optional port. ALB answers an empty Host with 400.
HOST_VALUE = rb"(?:\[[0-9A-Fa-f:.]++\]|[!$&'()*+,\-.0-9;=A-Z_a-z~%]++)(?::[0-9]*+)?+"
# The end of a chunked body (no trailers: the balancer sends none).
LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked body (RFC 9112 7.1).

    >>> chunk(b"hello world!")
    b'c\\r\\nhello world!\\r\\n'
    """
    return b"%x\r\n%b\r\n" % (len(data), data)


def first_letter_alternatives(names: list[bytes]) -> bytes:
    """`[Cc](?i:onnection|ookie)|[Ee](?i:xpect)|…`: the regex engine skips a branch
    whose first item is a character class that does not match, so a header line
    costs one class test per first letter instead of one attempt per name.

    >>> first_letter_alternatives([b"te", b"trailer", b"cookie"])
    b'[Cc](?i:ookie)|[Tt](?i:e|railer)'
    """
    by_first: dict[bytes, list[bytes]] = {}
    for name in names:
        by_first.setdefault(name[:1].lower(), []).append(re.escape(name[1:]))
    return b"|".join(
        b"[%b%b](?i:%b)" % (re.escape(first.upper()), re.escape(first), b"|".join(rests))
        for first, rests in sorted(by_first.items())
    )
