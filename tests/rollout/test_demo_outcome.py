"""The demo's one-line outcome of an act reads the recorded decision's evidence."""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from pathlib import Path

from canary_deploy.analysis import Verdict
from canary_deploy.rollout.demo import Act, outcome_line
from canary_deploy.rollout.plan import RolloutPlan, Step
from canary_deploy.rollout.store import RecordedDecision, RolloutStatus, RolloutStore
from tests.analysis import helpers

ACT = Act("bad canary", "v1", "v2", RolloutStatus.ROLLED_BACK)


def test_a_rollback_names_the_harmful_metric_and_what_the_canary_served(tmp_path: Path) -> None:
    with closing(RolloutStore(tmp_path / "state.db", "demo")) as store:
        r = store.create(RolloutPlan((Step(10, 1, 2),)), {}, now=0.0, canary_image=None, actor="t")
    decided = helpers.decision(
        Verdict.ROLLBACK, helpers.evidence("errors", 40.0), helpers.evidence("p95", 1.0)
    )
    r = replace(
        r,
        status=RolloutStatus.ROLLED_BACK,
        last_decision=RecordedDecision(decided, (0.0, 2.0), 0),
    )
    assert outcome_line(ACT, r, 0.012) == (
        "bad canary: rolled back at step 1 on errors after 200 canary requests (9 failed), "
        "100% stable 12 ms after the verdict"
    )
    aborted = replace(r, last_decision=None)
    assert outcome_line(ACT, aborted, None) == (
        "bad canary: rolled back at step 1 on no metric (aborted) after 0 canary requests "
        "(? failed)"
    )
