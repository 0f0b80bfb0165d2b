"""What the judge compares the canary with: stable, or a baseline (errors against stable +
baseline, latency against the baseline), and the latency tolerance."""

from __future__ import annotations

import random

import pytest

from canary_deploy.analysis import Batch, Judge, JudgeConfig, RoleBatch, Verdict


def _judge(**config: object) -> Judge:
    judge = Judge(JudgeConfig(min_canary_requests=0, **config))  # type: ignore[arg-type]
    judge.freeze_thresholds([0.010])
    return judge


def test_errors_pool_stable_and_baseline_latency_uses_the_baseline_alone() -> None:
    judge = _judge()
    d = judge.update(
        Batch(
            stable=RoleBatch(900, 9, (90,)),
            canary=RoleBatch(50, 1, (3,)),
            baseline=RoleBatch(50, 2, (4,)),
        )
    )
    errors, latency = d.metrics
    assert (errors.stable_requests, errors.stable_hits) == (950, 11)
    assert (latency.stable_requests, latency.stable_hits) == (50, 4)
    assert d.controls == ("stable+baseline", "baseline")
    assert "vs stable+baseline 11/950" in errors.explanation
    assert "vs baseline 4/50" in latency.explanation


def test_without_a_baseline_both_metrics_compare_with_stable() -> None:
    judge = _judge()
    d = judge.update(Batch.of((950, 9, (95,)), (50, 1, (3,))))
    assert d.controls == ("stable", "stable")
    assert d.metrics[1].stable_requests == 950


def test_a_judge_does_not_switch_controls_mid_analysis() -> None:
    judge = _judge()
    judge.update(Batch.of((950, 9, (95,)), (50, 1, (3,))))
    with_baseline = Batch(RoleBatch(900, 9, (9,)), RoleBatch(50, 1, (1,)), RoleBatch(50, 1, (1,)))
    with pytest.raises(ValueError, match="baseline in every batch or in none"):
        judge.update(with_baseline)


def test_the_baseline_choice_survives_persistence() -> None:
    judge = _judge()
    judge.update(Batch(RoleBatch(900, 9, (9,)), RoleBatch(50, 1, (1,)), RoleBatch(50, 1, (1,))))
    again = Judge.from_dict(judge.to_dict())
    assert again.controls == ("stable+baseline", "baseline")


def test_a_baseline_with_no_traffic_gives_no_latency_evidence() -> None:
    # A soak step above 50%: the baseline has weight 0; errors still compare with stable.
    judge = _judge()
    for _ in range(20):
        d = judge.update(
            Batch(
                stable=RoleBatch(250, 2, (25,)),
                canary=RoleBatch(750, 30, (750,)),
                baseline=RoleBatch(0, 0, (0,)),
            )
        )
    assert d.metrics[1].e_harm == pytest.approx(1.0)
    assert d.verdict is Verdict.ROLLBACK and "on errors" in d.explanation


def test_canary_thresholds_are_widened_by_the_tolerance() -> None:
    judge = _judge(latency_tolerance=0.2, latency_tolerance_ms=5.0)
    assert judge.thresholds_s == (0.010,)
    assert judge.canary_thresholds_s == pytest.approx((0.017,))  # 10 ms * 1.2 + 5 ms
    strict = _judge(latency_tolerance=0.0, latency_tolerance_ms=0.0)
    assert strict.canary_thresholds_s == strict.thresholds_s


@pytest.mark.parametrize("bad", [{"latency_tolerance": -0.1}, {"latency_tolerance_ms": -1}])
def test_a_negative_tolerance_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="latency_tolerance"):
        JudgeConfig(**bad)  # type: ignore[arg-type]


def _lognormal_run(seed: int, canary_scale: float, tolerance: float) -> Verdict:
    """Baseline and canary latencies lognormal; each arm counted against its threshold."""
    rng = random.Random(seed)
    judge = Judge(JudgeConfig(latency_tolerance=tolerance, latency_tolerance_ms=0.0))
    judge.freeze_thresholds([0.0246])  # ~p95 of lognormal(ln 0.0108, 0.5)
    (control_t,) = judge.thresholds_s
    (canary_t,) = judge.canary_thresholds_s
    verdict = Verdict.CONTINUE
    for _ in range(120):
        base = [rng.lognormvariate(-4.53, 0.5) for _ in range(40)]
        can = [canary_scale * rng.lognormvariate(-4.53, 0.5) for _ in range(40)]
        verdict = judge.update(
            Batch(
                stable=RoleBatch(400, 0, (sum(x > control_t for x in base),)),
                canary=RoleBatch(40, 0, (sum(x > canary_t for x in can),)),
                baseline=RoleBatch(40, 0, (sum(x > control_t for x in base),)),
            )
        ).verdict
        if verdict is Verdict.ROLLBACK:
            break
    return verdict


def test_within_tolerance_is_rarely_rolled_back_and_beyond_it_is_caught() -> None:
    # 8% slower with a 10% tolerance: inside it; with no tolerance, the strict test sees it.
    within = [_lognormal_run(s, 1.08, 0.10) for s in range(40)]
    assert sum(v is Verdict.ROLLBACK for v in within) <= 3  # alpha for latency is 2%
    beyond = [_lognormal_run(s, 1.5, 0.10) for s in range(20)]
    assert all(v is Verdict.ROLLBACK for v in beyond)
    strict = [_lognormal_run(s, 1.08, 0.0) for s in range(20)]
    assert sum(v is Verdict.ROLLBACK for v in strict) >= 10


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"latency_tolerance": "x"}, "latency_tolerance must be a number, got 'x'"),
        ({"alpha": "x"}, "alpha must be a number, got 'x'"),
        ({"latency_quantiles": "p99"}, "latency_quantiles must be a list of numbers"),
        ({"latency_quantiles": ["p99"]}, "latency_quantiles must be a list of numbers"),
        ({"temper_overdispersion": 1}, "temper_overdispersion must be true or false"),
    ],
)
def test_settings_of_the_wrong_type_are_named_in_the_users_words(
    doc: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        JudgeConfig.from_dict(doc)


def test_an_empty_quantile_list_switches_latency_off() -> None:
    config = JudgeConfig.from_dict({"latency_quantiles": []})
    assert config.latency_quantiles == ()
    assert JudgeConfig.from_dict(config.to_dict()) == config


def test_batches_skipped_for_latency_do_not_slow_later_latency_verdicts() -> None:
    skipped = Batch(
        RoleBatch(900, 9, (0,)), RoleBatch(50, 0, (0,)), RoleBatch(50, 0, (0,)),
        latency_judged=False,
    )  # fmt: skip
    judged = Batch(RoleBatch(900, 9, (45,)), RoleBatch(50, 0, (6,)), RoleBatch(50, 0, (2,)))
    warm, cold = _judge(), _judge()
    for _ in range(5):
        warm.update(skipped)
    for _ in range(10):
        a, b = warm.update(judged), cold.update(judged)
    assert a.metrics[1].e_harm == pytest.approx(b.metrics[1].e_harm)
    assert a.metrics[1].canary_requests == b.metrics[1].canary_requests == 500
    assert a.metrics[0].canary_requests == 750  # errors saw the skipped batches too


def test_a_state_saved_before_tolerance_and_tempering_resumes_as_it_was_judged() -> None:
    judge = _judge()
    judge.update(Batch.of((950, 9, (95,)), (50, 1, (3,))))
    old = judge.to_dict()
    for key in ("latency_tolerance", "latency_tolerance_ms", "temper_overdispersion"):
        del old["config"][key]
    again = Judge.from_dict(old)
    assert again.canary_thresholds_s == again.thresholds_s
    assert again.config.temper_overdispersion is False
