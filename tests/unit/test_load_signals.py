"""`canary load` shows progress where no bar can (a log, -o json: on stderr) and SIGTERM
ends it like Ctrl-C: the summary of what was sent (issue 13, item 7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.unit.cli import canary


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"version": "v1"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_sigterm_ends_load_with_its_summary_and_progress_came_before(
    tmp_path: Path, server: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "canary_deploy", "load", "--url", server),
            *("--rate", "20", "-d", "120", "-o", "json"),
        ],
        cwd=tmp_path,
        env={**env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        line = proc.stderr.readline()  # every 5 s on stderr: stdout stays one document
        assert line.startswith("load: ") and " requests, 0 errors, " in line, line
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        doc = json.loads(out)
        assert doc["total"]["requests"] > 0 and doc["elapsed_s"] < 100
        assert "interrupted: the summary covers the requests sent so far" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_keep_is_refused_with_the_emulated_aws_stack(tmp_path: Path) -> None:
    done = canary(tmp_path, "demo", "--emulated-aws", "--keep")
    assert done.returncode == 2
    assert "--keep cannot keep the --emulated-aws stack" in done.stderr
