"""The sample app's smoke test (a hook): both kinds of request, through a stand-in
listener on 127.0.0.1 that routes the tester header to the canary as header routes do."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from canary_deploy.sample_app.smoke import main


@contextmanager
def listener(canary_status: int = 200) -> Iterator[str]:
    """v1 answers plain requests, v2 (answering `canary_status`) those with X-Canary."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            canary = self.headers.get("X-Canary") == "always"
            status = canary_status if canary else 200
            body = json.dumps({"version": "v2" if canary else "v1", "probability": 0.3,
                               "label": 0}).encode()  # fmt: skip
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_smoke_passes_when_both_versions_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with listener() as url:
        monkeypatch.setenv("CANARY_LISTENER_URL", url)
        monkeypatch.setenv("CANARY_TESTER_HEADER", "X-Canary: always")
        assert main(["-n", "3", "--expect-canary", "v2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "plain: 3/3 ok (versions: v1)",
        "X-Canary: always: 3/3 ok (versions: v2)",
        "smoke test passed",
    ]


def test_smoke_fails_when_the_canary_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with listener(canary_status=500) as url:
        assert main(["--url", url, "--header", "X-Canary=always", "-n", "2"]) == 1
    out = capsys.readouterr().out
    assert "X-Canary: always: 0/2 ok" in out and "HTTP 500" in out
    assert out.strip().endswith("smoke test FAILED")


def test_smoke_fails_when_the_header_does_not_reach_the_canary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with listener() as url:
        assert main(["--url", url, "--header", "X-Other: 1", "--expect-canary", "v2"]) == 1
    assert "answered by v1, not v2" in capsys.readouterr().out


def test_smoke_without_a_listener_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CANARY_LISTENER_URL", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert "pass --url or set CANARY_LISTENER_URL" in capsys.readouterr().err
