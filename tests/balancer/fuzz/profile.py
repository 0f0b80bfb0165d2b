"""How long the fuzz harness runs: a short profile in `make test`, a long one for `make fuzz`.

`CANARY_FUZZ=long` selects the long profile (`make fuzz` sets it); `CANARY_FUZZ_EXAMPLES=N`
overrides the number of examples of every fuzz test in either profile. The short profile
is derandomized, so `make test` runs the same examples every time (what it finds, it
finds every run), and does not shrink a failing example (shrinking an example that
waits for the balancer's idle timeout can take minutes): it reports it as found, with
the blob to reproduce it. The long one is random, shrinks, and keeps failing examples
in a database that the next long run replays first.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

LONG = os.environ.get("CANARY_FUZZ", "") == "long"
# Under .pytest_cache so the database is ignored by git like the rest of pytest's cache.
DATABASE = Path(__file__).resolve().parents[3] / ".pytest_cache" / "hypothesis-fuzz"


def fuzz_settings(short_examples: int, long_factor: int = 50) -> settings:
    """Settings for one fuzz test: `short_examples` in `make test`, many more when long."""
    override = os.environ.get("CANARY_FUZZ_EXAMPLES")
    if override:
        examples = int(override)
    elif LONG:
        examples = short_examples * long_factor
    else:
        examples = short_examples
    return settings(
        max_examples=examples,
        deadline=None,  # a shared 2-core machine: no per-example time limit
        derandomize=not LONG,
        phases=list(Phase) if LONG else [Phase.explicit, Phase.generate],
        database=DirectoryBasedExampleDatabase(str(DATABASE)) if LONG else None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
        report_multiple_bugs=True,
    )
