"""Start, find and stop a local stack (its data plane and daemon) from the CLI side, like
`docker compose up -d`."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_deploy.balancer.admin import AdminClient
from canary_deploy.errors import CanaryError, OperationFailed, UsageError
from canary_deploy.local.options import StackOptions
from canary_deploy.local.paths import StackPaths, private_dir, private_opener
from canary_deploy.local.processes import MARKER_ENV, kill_stack_processes

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """`host:port`, `:port` or `port`.

        >>> Listen.parse("127.0.0.1:0"), Listen.parse("9000").host
        (Listen(host='127.0.0.1', port=0), '127.0.0.1')
        """
        host, sep, port = text.strip().rpartition(":")
        host = host.strip("[]") if sep else ""
        try:
            number = int(port)
        except ValueError:
            number = -1
        if not 0 <= number <= 65535:
            raise UsageError(
                f"listen address {text!r} needs a port 0-65535",
                hint="e.g. --listen 127.0.0.1:8080 (or CANARY_LISTEN); port 0 picks a free one",
            )
        return cls(host or "127.0.0.1", number)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DaemonArgs:
    listen: Listen
    health_profile: str
    deregistration_delay_s: float | None = None
    health_check_path: str | None = None
    stickiness_s: int | None = None
    metrics_port: int | None = None

    def options(self, state_dir: Path) -> StackOptions:
        """The stack's process options for these arguments."""
        return StackOptions(
            state_dir,
            host=self.listen.host,
            port=self.listen.port,
            health_profile="alb" if self.health_profile == "alb" else "fast",
            deregistration_delay_s=self.deregistration_delay_s,
            health_check_path=self.health_check_path,
            stickiness_s=self.stickiness_s,
            metrics_port=self.metrics_port,
        )


class DaemonControl:
    """The stack of one state directory (its data plane and daemon), seen from a
    short-lived CLI process."""

    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths

    def client(self) -> AdminClient:
        # Long enough for PUT /spec, which waits for new images to listen.
        return AdminClient(str(self.paths.socket), timeout_s=90)

    def pid(self) -> int | None:
        return self.paths.daemon_pid()

    def running(self) -> bool:
        """The stack serves: a daemon answers, or a data plane does (and brings its
        daemon back at once if that one died)."""
        return self._daemon_up() or self.paths.dataplane_pid() is not None

    def _daemon_up(self) -> bool:
        return self.pid() is not None and self.paths.socket.exists()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One admin call; while the data plane restarts a daemon that died, wait for it."""
        if not self._daemon_up() and self.paths.dataplane_pid() is not None:
            self._wait_for_daemon()
        return self.client().request(method, path, body)

    def start(self, args: DaemonArgs) -> dict[str, Any]:
        """Start the stack (data plane, which starts the daemon) and wait until it
        listens, or raise why it could not."""
        if self.paths.dataplane_pid() is not None:
            return self._wait_for_daemon()  # it serves: its daemon is coming back
        private_dir(self.paths.state_dir)
        private_dir(self.paths.task_logs)
        process, doc = self._spawn_data_plane(args.options(self.paths.state_dir))
        if doc.get("ok"):
            return doc
        _wait_exit(process)
        if doc.get("error") == "already_running":
            return self._wait_for_daemon()
        if doc.get("error") == "port_in_use":
            raise UsageError(
                f"{doc['message']}: the local listener cannot start",
                hint=f"choose another with --listen {args.listen.host}:<port> or "
                f"CANARY_LISTEN={args.listen.host}:<port> (port 0 picks a free one)",
            )
        message = doc.get("message") or "the local stack daemon did not start"
        raise OperationFailed(message, hint=f"see {self.paths.daemon_log}")

    def _spawn_data_plane(
        self, options: StackOptions
    ) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
        """The data plane, detached in its own session and logging to the stack's log, and
        the readiness line it (or the daemon it starts) wrote on our pipe."""
        argv = [sys.executable, "-m", "canary_deploy.local.dataplane", *options.to_argv()]
        read_fd, write_fd = os.pipe()
        argv += ["--ready-fd", str(write_fd)]
        # Every process of the stack carries its marker: a sweep finds them all.
        env = {**os.environ, MARKER_ENV: self.paths.marker}
        with open(self.paths.daemon_log, "ab", opener=private_opener) as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                pass_fds=(write_fd,),
                # Its own session: Ctrl-C in the terminal that started it does not reach it.
                start_new_session=True,
            )
        os.close(write_fd)
        try:
            doc = _read_ready(read_fd, process)
        finally:
            os.close(read_fd)
        _DETACHED.append(process)
        return process, doc

    def _wait_for_daemon(self) -> dict[str, Any]:
        """Another command started the stack at the same moment, or the data plane
        restarts a daemon that died: wait until that daemon answers."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._daemon_up():
                with contextlib.suppress(CanaryError):
                    status = self.client().request("GET", "/status")
                    return {"ok": True, "url": status["url"], "pid": status["pid"]}
            time.sleep(0.1)
        raise OperationFailed(
            f"the local stack daemon for {self.paths.state_dir} is starting but does not answer",
            hint=f"see {self.paths.daemon_log}",
        )

    def stop(self, *, forget: bool) -> bool:
        """Stop the stack: the daemon stops every task, then the data plane exits; `forget`
        drops the desired spec and weights. Returns False when nothing was running."""
        pid, plane = self.pid(), self.paths.dataplane_pid()
        if plane is not None or pid is not None:
            with contextlib.suppress(CanaryError):
                self.request("POST", "/shutdown", {"forget": forget})
                pid = self.pid() or pid
        for process in (pid, plane):
            if process is not None and not _wait_pid(process, STOP_TIMEOUT_S):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process, signal.SIGKILL)
                _wait_pid(process, 5)
        # Whatever could not be stopped (or a crashed stack left) goes now.
        kill_stack_processes(self.paths.marker)
        for sock in (self.paths.socket, self.paths.dataplane_socket):
            sock.unlink(missing_ok=True)
        return pid is not None or plane is not None


# Daemons started by this process: kept referenced so no "still running" warning fires
# when a short-lived CLI exits before them (they are meant to outlive it).
_DETACHED: list[subprocess.Popen[bytes]] = []


def _read_ready(fd: int, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
            if b"\n" in data:
                break
        elif process.poll() is not None:
            break
    line = data.split(b"\n", 1)[0].strip()
    if not line:
        if process.poll() is None:
            process.kill()
        return {"error": "no_start", "message": "the local stack daemon exited during startup"}
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def _wait_exit(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _wait_pid(pid: int, timeout_s: float) -> bool:
    """Wait for a process (maybe not our child) to exit."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in _DETACHED:
            if process.pid == pid:
                process.poll()  # reap our own child so it does not linger as a zombie
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if _is_zombie(pid):
            return True
        time.sleep(0.05)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
