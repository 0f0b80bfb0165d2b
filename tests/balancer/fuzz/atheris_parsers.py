"""Coverage-guided fuzzing of the balancer's pure parsers with atheris (run by `make fuzz`).

The same properties as test_parsers.py (see parsers.py), driven by libFuzzer: the first
input byte picks the property, the rest is the head or byte stream. Python code and
regular expressions are instrumented (httptools' C parser is not: its branches give no
feedback). Usage: python tests/balancer/fuzz/atheris_parsers.py [libFuzzer options]
[corpus dirs], e.g. -max_total_time=300 .pytest_cache/atheris-corpus
tests/balancer/fuzz/seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
atheris.enabled_hooks.add("RegEx")
atheris.enabled_hooks.add("str")

with atheris.instrument_imports(include=["canary_deploy.balancer", "tests.balancer.fuzz"]):
    from tests.balancer.fuzz.parsers import (
        check_request_reader,
        check_response_head,
        check_simple_request,
    )


def one_input(data: bytes) -> None:
    if not data:
        return
    which, rest = data[0] % 3, data[1:]
    if which == 0:
        end = rest.find(b"\r\n\r\n")
        check_response_head(rest[: end + 4] if end >= 0 else rest + b"\r\n\r\n")
    elif which == 1:
        check_simple_request(rest)
    else:
        # The last two bytes choose where the stream is cut into reads.
        cuts = list(rest[-2:]) if len(rest) > 2 else []
        check_request_reader(rest, [c * 4 for c in cuts])


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
