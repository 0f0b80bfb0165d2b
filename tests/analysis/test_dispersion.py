"""Overdispersion: the control's ρ̂, the variance inflation φ, and the tempered judge."""

# ruff: noqa: RUF002, RUF003
from __future__ import annotations

import random

import pytest

from canary_deploy.analysis import Judge, JudgeConfig
from canary_deploy.analysis.dispersion import ControlDispersion, variance_inflation
from canary_deploy.analysis.eprocess import RateRatioEProcess

from .helpers import batch, binomial


def _beta_binomial(rng: random.Random, n: int, p: float, rho: float) -> int:
    a, b = p * (1 / rho - 1), (1 - p) * (1 / rho - 1)
    return binomial(rng, n, rng.betavariate(a, b))


def test_binomial_control_counts_give_no_inflation():
    rng = random.Random(1)
    d = ControlDispersion()
    for _ in range(500):
        d.add(190, binomial(rng, 190, 0.01))
    assert d.icc() < 0.002
    assert variance_inflation(d.icc_upper(), 10, 190) < 1.05


def test_overdispersed_control_counts_are_estimated():
    rng = random.Random(2)
    d = ControlDispersion()
    for _ in range(2000):
        d.add(190, _beta_binomial(rng, 190, 0.01, 0.05))
    assert d.icc() == pytest.approx(0.05, abs=0.015)
    assert d.icc_upper() >= d.icc()
    assert variance_inflation(d.icc_upper(), 10, 190) > 1.5


def test_inflation_is_one_for_a_one_sided_batch():
    assert variance_inflation(0.05, 0, 190) == 1.0
    assert variance_inflation(0.05, 10, 0) == 1.0


def test_a_batch_is_tempered_by_the_earlier_batches_only():
    # Two judges see the same first batches; the third batch differs only in stable's hits.
    # The third batch's own φ must not depend on its own counts (predictability).
    cfg = JudgeConfig(min_canary_requests=0, max_canary_requests=10**9)
    first = [((190, 0), (10, 0)), ((190, 9), (10, 1)), ((190, 0), (10, 0))]
    a, b = Judge(cfg), Judge(cfg)
    for s, c in first:
        a.update(batch(s, c))
        b.update(batch(s, c))
    before = a._metrics[0].control_dispersion.icc_upper()
    a.update(batch((190, 1), (10, 1)))
    b.update(batch((190, 20), (10, 1)))
    phi = variance_inflation(before, 10, 190)
    assert phi > 1.0
    assert a._metrics[0].inflation == b._metrics[0].inflation == phi


def test_tempering_divides_the_batch_log_likelihood_ratio():
    plain = RateRatioEProcess.new(1.0, (2.0, 4.0), (1.0, 1.0))
    tempered = RateRatioEProcess.new(1.0, (2.0, 4.0), (1.0, 1.0))
    raw = plain.update(3, 2, 0.05)
    assert tempered.update(3, 2, 0.05, inflation=2.0) == pytest.approx([v / 2 for v in raw])
    with pytest.raises(ValueError):
        tempered.update(1, 1, 0.05, inflation=0.5)


def test_state_round_trip_continues_exactly_with_the_estimate():
    rng = random.Random(3)
    cfg = JudgeConfig(min_canary_requests=0, max_canary_requests=10**9)
    judge = Judge(cfg)
    counts = [
        ((190, _beta_binomial(rng, 190, 0.01, 0.05)), (10, _beta_binomial(rng, 10, 0.01, 0.05)))
        for _ in range(120)
    ]
    for s, c in counts[:60]:
        judge.update(batch(s, c))
    resumed = Judge.from_dict(judge.to_dict())
    for s, c in counts[60:]:
        left = judge.update(batch(s, c))
        right = resumed.update(batch(s, c))
    assert right.metrics[0].e_harm == left.metrics[0].e_harm
    assert resumed._metrics[0].control_dispersion == judge._metrics[0].control_dispersion


def test_a_state_saved_before_the_estimate_existed_still_loads():
    judge = Judge(JudgeConfig(min_canary_requests=0))
    judge.update(batch((190, 2), (10, 0)))
    doc = judge.to_dict()
    for metric in doc["metrics"]:
        del metric["control_dispersion"]
        del metric["inflation"]
    del doc["config"]["temper_overdispersion"]
    resumed = Judge.from_dict(doc)
    assert resumed.update(batch((190, 1), (10, 0))).verdict.value == "continue"
    assert resumed._metrics[0].control_dispersion.batches == 1


def _null_run_crosses(rng: random.Random, rho: float, temper: bool) -> bool:
    """Errors-only harm e-process over 200 looks of an overdispersed A/A (6-s looks)."""
    harm = RateRatioEProcess.new(1.0, (1.75, 2.0, 2.5, 4.0, 10.0), (1.5, 5.0, 1.0, 2.0, 0.2))
    d = ControlDispersion()
    for _ in range(200):
        y = _beta_binomial(rng, 190, 0.01, rho)
        x = _beta_binomial(rng, 10, 0.01, rho)
        phi = variance_inflation(d.icc_upper(), 10, 190) if temper else 1.0
        harm.update(x, y, 10 / 200, phi)
        d.add(190, y)
        if harm.log_e_value >= 2.995732273553991:  # ln 20: α = 5%
            return True
    return False


def test_tempered_overdispersed_null_stays_below_the_threshold():
    # ρ = 0.05: the plain test crosses 1/α far more often than α; tempered it does not.
    reps = 300
    tempered = sum(_null_run_crosses(random.Random(i), 0.05, True) for i in range(reps))
    assert tempered <= 0.05 * reps
    plain = sum(_null_run_crosses(random.Random(i), 0.05, False) for i in range(100))
    assert plain / 100 > 2 * tempered / reps  # the plain test is clearly worse
