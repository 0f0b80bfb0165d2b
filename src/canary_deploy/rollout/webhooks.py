"""One HTTP POST of a JSON document, with a timeout, answered as a value (never raised):
what hooks and notifications send. Standard library only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# The most of a response (or a hook's output) kept in the history, in characters.
TAIL_CHARS = 2000


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    """The end of `text`, at most `limit` characters, marked when cut.

    >>> tail("abcdef", 3)
    '...def'
    """
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def host_of(url: str) -> str:
    """The host (and port) of `url`, what the history shows: a webhook's path and query
    often carry its secret (Slack's do).

    >>> host_of("https://hooks.slack.com/services/T0/B0/XXXX")
    'hooks.slack.com'
    """
    return urlsplit(url).netloc.rsplit("@", 1)[-1] or url


@dataclass(frozen=True)
class Response:
    """What a POST got: an HTTP status and the body's tail, or why there was none."""

    status: int | None
    body: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else str(self.error)


def post_json(
    url: str, doc: Mapping[str, Any], *, headers: Mapping[str, str], timeout: float
) -> Response:
    """POST `doc` as JSON to `url`; any failure (refused, timed out, bad URL) is a Response."""
    data = json.dumps(doc).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", "canary-deploy")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Response(answer.status, tail(answer.read(65536).decode(errors="replace")))
    except urllib.error.HTTPError as exc:
        body = exc.read(65536).decode(errors="replace") if exc.fp else ""
        return Response(exc.code, tail(body))
    except urllib.error.URLError as exc:
        return Response(None, error=f"cannot reach {host_of(url)}: {exc.reason}")
    except TimeoutError:
        return Response(None, error=f"{host_of(url)} did not answer within {timeout:g}s")
    except (OSError, ValueError) as exc:
        return Response(None, error=f"cannot reach {host_of(url)}: {exc}")


def backoff_s(attempt: int) -> float:
    """The pause before retry `attempt` (1-based): 1, 2, 4, 8 s, then 10 s.

    >>> [backoff_s(n) for n in (1, 2, 3, 4, 5)]
    [1.0, 2.0, 4.0, 8.0, 10.0]
    """
    return min(10.0, 2.0 ** (attempt - 1))


def with_retries(
    attempt: Callable[[], Response],
    retries: int,
    *,
    sleep: Callable[[float], object] = time.sleep,
    backoff: Callable[[int], float] = backoff_s,
) -> tuple[Response, int]:
    """Call `attempt` until it is ok or `retries` retries are spent, pausing between
    tries; returns the last response and how many tries it took."""
    tries = 1
    response = attempt()
    while not response.ok and tries <= retries:
        sleep(backoff(tries))
        tries += 1
        response = attempt()
    return response, tries
