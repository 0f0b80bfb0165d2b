"""A decision and its evidence survive JSON (the store, the audit log) as they were."""

from __future__ import annotations

import json

from canary_deploy.analysis import Decision, MetricEvidence, Verdict
from canary_deploy.rollout.model import Event, RecordedDecision
from tests.analysis.helpers import decision, evidence


def _through_json(doc: dict[str, object]) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(json.dumps(doc))
    return loaded


def test_a_decision_survives_json_infinite_e_values_and_missing_rates_included() -> None:
    d = decision(
        Verdict.ROLLBACK,
        evidence("errors", float("inf")),
        evidence("slower than 250 ms", 0.5, canary_rate=None, stable_rate=None, burst="t-1"),
        explanation="ünïcode: errors doubled",
    )
    again = Decision.from_dict(_through_json(d.to_dict()))
    assert again == d
    assert again.harmful == ("errors",)


def test_a_recorded_decision_is_the_document_the_audit_log_and_the_store_keep() -> None:
    recorded = RecordedDecision(
        decision(Verdict.CONTINUE, evidence("errors", 2.0)), (60.0, 62.0), 1, reread_from=58.0
    )
    doc = recorded.to_dict()
    assert doc["window"] == [60.0, 62.0] and doc["step"] == 1 and doc["reread_from"] == 58.0
    assert doc["verdict"] == "continue"
    assert doc["controls"] == {"errors": "stable+baseline", "latency": "baseline"}
    assert RecordedDecision.from_dict(_through_json(doc)) == recorded
    assert "reread_from" not in RecordedDecision(recorded.decision, (0.0, 2.0), 0).to_dict()


def test_a_decision_recorded_before_controls_and_warnings_existed_reads_back() -> None:
    doc = decision(Verdict.CONTINUE, evidence("errors", 1.0)).to_dict()
    for key in ("controls", "warnings", "canary_requests"):
        del doc[key]
    old = Decision.from_dict(doc)
    assert old.controls == ("stable", "stable") and old.warnings == () and old.canary_requests == 0
    assert old.metrics == (MetricEvidence.from_dict(doc["metrics"][0]),)


def test_an_event_gives_the_decision_it_records_and_a_soak_batch_none() -> None:
    recorded = RecordedDecision(decision(Verdict.ROLLBACK, evidence("errors", 40.0)), (0, 2), 1)
    judged = Event(1, 1, 2.0, "decision", "judge", "roll back", recorded.to_dict())
    assert judged.judged() == recorded.decision
    soak = {"window": [0, 2], "step": 3, "canary": {"requests": 10, "errors": 0}}
    assert Event(2, 1, 4.0, "batch", "controller", "soak", soak).judged() is None
    assert Event(3, 1, 5.0, "step", "controller", "step 2", {"step": 2}).judged() is None
