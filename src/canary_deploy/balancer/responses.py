"""The complete responses the balancer answers by itself (ALB's wording)."""

from __future__ import annotations

from http import HTTPStatus

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _response(status: int, keep_alive: bool) -> bytes:
    reason = HTTPStatus(status).phrase
    body = f"<html><body><h1>{status} {reason}</h1></body></html>\n".encode()
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 %d %s\r\nServer: canary-balancer\r\nContent-Type: text/html\r\n"
        b"Content-Length: %d\r\nConnection: %s\r\n\r\n%s"
        % (status, reason.encode(), len(body), connection, body)
    )


_CACHE = {
    (status, keep): _response(status, keep)
    for status in (400, 405, 417, 501, 502, 503, 504)
    for keep in (True, False)
}
# The same for a HEAD request: the head alone (its Content-Length says what a GET would
# get), else the body would be read as the start of the client's next response.
_HEAD_CACHE = {key: page[: page.index(b"\r\n\r\n") + 4] for key, page in _CACHE.items()}


def error_response(status: int, keep_alive: bool, is_head: bool = False) -> bytes:
    """A whole response for a balancer-generated status (prebuilt: no per-request work);
    `is_head`: it answers a HEAD request, so it has no body."""
    if is_head:
        page = _HEAD_CACHE.get((status, keep_alive)) or _response(status, keep_alive)
        return page[: page.index(b"\r\n\r\n") + 4]
    return _CACHE.get((status, keep_alive)) or _response(status, keep_alive)
