"""`python -m canary_deploy.sample_app --version v1 --port N`: serve the sample app."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from canary_deploy.sample_app.app import create_app
from canary_deploy.sample_app.faults import Faults


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m canary_deploy.sample_app")
    parser.add_argument("--version", default="v1", help="version label and model (v1, v2)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        faults = Faults.from_env()
    except ValueError as exc:
        sys.exit(f"sample app: {exc}")
    # One line for `canary logs` (uvicorn itself only logs warnings here: requests are many).
    print(f"sample app {args.version} serving on {args.host}:{args.port}", flush=True)
    uvicorn.run(
        create_app(args.version, faults),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        # The balancer keeps connections open; outlive its 60 s idle timeout like ALB advises.
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
