"""The e-process itself: hand-worked values, batching invariance, weight changes."""

from __future__ import annotations

import math

import pytest

from canary_deploy.analysis import Judge, JudgeConfig
from canary_deploy.analysis.eprocess import RateRatioEProcess, batch_llr, theta

from .helpers import batch


def test_one_batch_e_value_matches_hand_computation():
    # θ0 = 1/2. Under R = 2 a hit is the canary's with p = 2/3, under R = 3 with p = 3/4.
    # 3 canary hits, 1 stable hit: LR(2) = (4/3)^3 (2/3) = 128/81, LR(3) = (3/2)^3 (1/2) = 27/16.
    judge = Judge(
        JudgeConfig(harm_ratios=(2.0, 3.0), harm_weights=(1.0, 1.0), min_canary_requests=0)
    )
    decision = judge.update(batch((500, 1), (500, 3)))
    errors = decision.metrics[0]
    assert errors.e_harm == pytest.approx((128 / 81 + 27 / 16) / 2, rel=1e-12)
    assert errors.harm_threshold == pytest.approx(20.0)


def test_non_inferiority_e_value_matches_hand_computation():
    # Against margin M = 1.5 with θ0 = 1/2: θM = 3/5, alternative R = 1 gives 1/2.
    # 1 canary hit, 3 stable hits: LR = (1/2 / 3/5) * ((1/2) / (2/5))^3 = (5/6)(5/4)^3.
    e = RateRatioEProcess.new(1.5, (1.0,), (1.0,))
    e.update(canary_hits=1, stable_hits=3, theta0=0.5)
    assert e.e_value == pytest.approx((5 / 6) * (5 / 4) ** 3, rel=1e-12)


def test_same_totals_batched_differently_give_the_same_e_value():
    # Stable's errors spread evenly (no overdispersion seen, so no batch is tempered).
    cfg = JudgeConfig(min_canary_requests=0, max_canary_requests=10**9)
    e_one = Judge(cfg).update(batch((9_500, 100), (500, 12)))
    many = Judge(cfg)
    for stable_errors, canary_errors in [(25, 0), (25, 5), (25, 3), (25, 4)]:
        e_many = many.update(batch((2_375, stable_errors), (125, canary_errors)))
    assert e_many.metrics[0].e_harm == pytest.approx(e_one.metrics[0].e_harm, rel=1e-9)
    assert e_many.metrics[0].e_non_inferiority == pytest.approx(
        e_one.metrics[0].e_non_inferiority, rel=1e-9
    )


def test_weight_change_mid_stream_uses_each_batch_own_share():
    # 5% canary, then 50% canary. Each batch's θ0 enters its own likelihood ratio.
    cfg = JudgeConfig(harm_ratios=(2.0,), harm_weights=(1.0,), min_canary_requests=0)
    judge = Judge(cfg)
    judge.update(batch((950, 10), (50, 2)))
    decision = judge.update(batch((500, 5), (500, 9)))
    expected = math.exp(batch_llr(2, 10, 0.05, 2.0, 1.0) + batch_llr(9, 5, 0.5, 2.0, 1.0))
    assert decision.metrics[0].e_harm == pytest.approx(expected, rel=1e-12)
    # Pooling the two batches into one θ0 (= 552/1500) would give a different answer.
    pooled = math.exp(batch_llr(11, 15, 550 / 1500, 2.0, 1.0))
    assert decision.metrics[0].e_harm != pytest.approx(pooled, rel=1e-3)


def test_theta_moves_the_canary_share_by_the_rate_ratio():
    assert theta(0.05, 1.0) == pytest.approx(0.05)
    assert theta(0.05, 2.0) == pytest.approx(0.1 / 1.05)


def test_batch_where_one_version_had_no_traffic_carries_no_evidence():
    assert batch_llr(0, 7, 0.0, 2.0, 1.0) == 0.0
    assert batch_llr(4, 0, 1.0, 2.0, 1.0) == 0.0


def test_state_round_trip_keeps_the_exact_log_likelihoods():
    e = RateRatioEProcess.new(1.0, (1.5, 2.0), (1.0, 3.0))
    e.update(3, 40, 0.05)
    again = RateRatioEProcess.from_dict(e.to_dict())
    assert again == e
