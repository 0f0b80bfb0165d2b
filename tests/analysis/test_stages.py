"""Judge.next_stage: harm evidence carries over between rollout steps, promotion restarts."""

from canary_deploy.analysis import Batch, Judge, JudgeConfig, Verdict


def test_next_stage_restarts_promotion_but_keeps_harm_evidence() -> None:
    judge = Judge(JudgeConfig(min_canary_requests=0, max_canary_requests=100_000))
    verdict = Verdict.CONTINUE
    for _ in range(400):
        verdict = judge.update(Batch.of((9_500, 95), (500, 5))).verdict
        if verdict is Verdict.PROMOTE:
            break
    assert verdict is Verdict.PROMOTE
    harm_before = judge.update(Batch.of((0, 0), (0, 0))).metrics[0].e_harm
    judge.next_stage()
    decision = judge.update(Batch.of((0, 0), (0, 0)))
    assert decision.verdict is Verdict.CONTINUE
    assert decision.metrics[0].e_non_inferiority == 1.0
    assert decision.metrics[0].e_harm == harm_before


def test_next_stage_never_clears_a_rollback_and_survives_serialization() -> None:
    judge = Judge(JudgeConfig(min_canary_requests=0))
    for _ in range(5):
        judge.update(Batch.of((950, 0), (50, 5)))
    assert judge.verdict is Verdict.ROLLBACK
    judge.next_stage()
    assert judge.verdict is Verdict.ROLLBACK
    again = Judge.from_dict(judge.to_dict())
    assert again.to_dict() == judge.to_dict()


def test_the_cap_counts_per_stage() -> None:
    judge = Judge(JudgeConfig(min_canary_requests=0, max_canary_requests=1_000))
    for _ in range(20):
        judge.update(Batch.of((950, 0), (50, 0)))
    assert judge.verdict is Verdict.INCONCLUSIVE
    judge.next_stage()
    assert judge.update(Batch.of((950, 0), (50, 0))).verdict is Verdict.CONTINUE


def test_the_cap_counts_only_batches_where_stable_served_too() -> None:
    # A step at 100% canary cannot compare the versions: it must not run into the cap.
    judge = Judge(JudgeConfig(min_canary_requests=0, max_canary_requests=1_000))
    for _ in range(50):
        decision = judge.update(Batch.of((0, 0), (1_000, 10)))
    assert decision.verdict is Verdict.CONTINUE
    assert decision.canary_requests == 50_000
    again = Judge.from_dict(judge.to_dict())
    assert again.update(Batch.of((950, 0), (50, 0))).verdict is Verdict.CONTINUE
