"""Decision-quality benchmark: our judge against the usual canary checks, on simulated traffic.

Scenarios of DESIGN.md §7: stable error rate 1%, canary 1/1.5/2/5%, canary share 5%,
2,000 requests/min, looks every 6 s and every 60 s, cap 200,000 requests (10,000 on the
canary), 2,000 replications per scenario with fixed seeds; latency scenarios with
lognormal service times (σ 0.5 and 1.0), canary ×1.0/1.1/1.3, thresholds frozen at
stable's p95/p99 from a 10-minute window. Everything is vectorized with numpy across
replications; a handful of replications are replayed through the pure `Judge` to check
that the vectorized judge makes the same decisions at the same looks.

Run: .venv/bin/python bench/decisions.py [--reps 2000]
"""

# ruff: noqa: RUF001, RUF002, RUF003
from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import time
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from canary_deploy.analysis import (
    Batch,
    BurstGuardConfig,
    Judge,
    JudgeConfig,
    RoleBatch,
    TaskCounts,
    Verdict,
)
from canary_deploy.analysis.dispersion import UPPER_Z

P0 = 0.01
SHARE = 0.05
PER_6S = 200  # 2,000 requests/min
LOOKS_6S = 1000  # 200,000 requests in total
WALD_BOUND = {1.5: 1742, 2.0: 487, 5.0: 46}
ALPHA, BETA = 0.05, 0.2
Z_ALPHA, Z_BETA = 1.6448536269514722, 0.8416212335729143

Int = NDArray[np.int64]
Float = NDArray[np.float64]

ROLLBACK, PROMOTE, NONE = 1, 2, 0
SEED_OFFSET = 0


@dataclass
class Outcome:
    """Per replication: what was decided, at which look, after how many canary requests."""

    kind: Int
    canary_requests: Int
    minutes: Float


# ---- traffic


def traffic(rng: np.random.Generator, reps: int, looks: int) -> tuple[Int, Int]:
    canary = rng.binomial(PER_6S, SHARE, size=(reps, looks))
    return PER_6S - canary, canary


def per_minute(a: Int) -> Int:
    reps, looks = a.shape
    summed: Int = a.reshape(reps, looks // 10, 10).sum(axis=2)
    return summed


# ---- the judge, vectorized


def log_mixture(
    n_s: Int,
    n_c: Int,
    y: Int,
    x: Int,
    null: float,
    ratios: tuple[float, ...],
    weights: tuple[float, ...],
    burst: BurstGuardConfig | None = None,
    inflation: Float | None = None,
) -> tuple[Float, Float]:
    """Cumulative log e-value per (replication, look), same formula as eprocess.batch_llr
    (each look's increment divided by its variance inflation φ when given); and the burst
    guard's log e-value without the strongest burst interval per ratio."""
    total = n_s + n_c
    theta0 = np.divide(n_c, total, out=np.zeros(n_c.shape), where=total > 0)
    informative = (theta0 > 0) & (theta0 < 1)
    t0 = np.where(informative, theta0, 0.5)
    t_null = t0 * null / (t0 * null + 1 - t0)
    w = np.asarray(weights, dtype=float) / sum(weights)
    out = np.full(n_c.shape, -np.inf)
    robust = np.full(n_c.shape, -np.inf)
    bursty = None if burst is None else (x >= burst.min_hits) & (x >= burst.min_rate * n_c)
    for ratio, weight in zip(ratios, w, strict=True):
        t_alt = t0 * ratio / (t0 * ratio + 1 - t0)
        inc = np.where(
            informative, x * np.log(t_alt / t_null) + y * np.log((1 - t_alt) / (1 - t_null)), 0.0
        )
        if inflation is not None:
            inc = inc / inflation
        llr = math.log(weight) + np.cumsum(inc, 1)
        out = np.logaddexp(out, llr)
        if bursty is not None:
            strongest = np.maximum.accumulate(np.where(bursty, np.maximum(inc, 0.0), 0.0), axis=1)
            robust = np.logaddexp(robust, llr - strongest)
    return out, robust


@dataclass
class Metric:
    n_s: Int
    n_c: Int
    y: Int  # stable hits per look
    x: Int  # canary hits per look
    alpha: float
    latency: bool = False
    # Per canary task (replication, look, task): requests and errors, for the task guard.
    task_n: Int | None = None
    task_x: Int | None = None


def exclusive_cumsum(a: Int | Float) -> Int | Float:
    """Σ over the looks *before* each look (as the pure judge's running sums)."""
    out = np.zeros_like(a)
    out[:, 1:] = np.cumsum(a, 1)[:, :-1]
    return out


def control_inflation(n_s: Int, y: Int, n_c: Int) -> Float:
    """φ per (replication, look) from the control's earlier looks, as analysis.dispersion
    computes it (`icc_upper`; the same operations in the same order)."""
    has = n_s > 0
    yf = y.astype(float)
    nf = np.where(has, n_s, 1).astype(float)
    b = exclusive_cumsum(has.astype(np.int64))
    n = exclusive_cumsum(n_s)
    nsq = exclusive_cumsum(n_s * n_s)
    hits = exclusive_cumsum(y)
    s2n = exclusive_cumsum(np.where(has, yf * yf / nf, 0.0))
    s2 = exclusive_cumsum(y * y)
    s3n = exclusive_cumsum(np.where(has, yf * yf * yf / nf, 0.0))
    s4n = exclusive_cumsum(np.where(has, yf * yf * yf * yf / (nf * nf), 0.0))
    s1n = exclusive_cumsum(y * n_s)
    inv = exclusive_cumsum(np.where(has, 1 / nf, 0.0))
    ok = (b >= 2) & (hits > 0) & (hits < n)
    nn = np.where(ok, n, 1)
    bb = np.where(ok, b, 1)
    p = np.where(ok, hits / nn, 0.5)
    pq = p * (1.0 - p)
    chi2 = (s2n - p * hits) / pq
    scale = nn - bb + 1 - nsq / nn
    ok &= scale > 0
    sum_c2 = (s4n - 4 * p * s3n + 6 * p * p * s2 - 4 * p * p * p * s1n + p * p * p * p * nsq) / (
        pq * pq
    )
    variance = np.maximum(sum_c2 / bb - (chi2 / bb) ** 2, 0.0)
    excess = np.maximum(variance - (2 + inv / bb / p), 0.0)
    spread = UPPER_Z * np.sqrt(bb * excess)
    icc = np.where(ok, (chi2 + spread - (bb - 1)) / np.where(ok, scale, 1.0), 0.0)
    icc = np.minimum(1.0, np.maximum(0.0, icc))
    total = np.maximum(n_c + n_s, 1)
    phi = np.where((icc > 0) & (n_c > 0) & has, 1.0 + 2.0 * icc * n_c * n_s / total, 1.0)
    return np.asarray(phi, dtype=float)


def share_rule_suspect(m: Metric, guard: BurstGuardConfig) -> NDArray[np.bool_]:
    """The task rule the judge had before leave-one-task-out (removed; kept here only to
    print the "before" figures): one canary task made > 80% of the errors (at least
    `min_hits`) while another served too."""
    assert m.task_n is not None and m.task_x is not None
    cum_n, cum_x = np.cumsum(m.task_n, 1), np.cumsum(m.task_x, 1)
    serving = (cum_n > 0).sum(axis=2) >= 2
    worst = cum_x.max(axis=2)
    suspect: NDArray[np.bool_] = (
        serving & (worst >= guard.min_hits) & (worst > 0.8 * cum_x.sum(axis=2))
    )
    return suspect


def task_hold(m: Metric, cfg: JudgeConfig, log_threshold: float) -> NDArray[np.bool_]:
    """guard.TaskGuard per look: the error evidence has not yet reached the threshold
    without some canary task that served while another served too (leave-one-task-out,
    the same tempered test on the canary's counts minus that task's)."""
    assert m.task_n is not None and m.task_x is not None
    hold = np.zeros(m.n_c.shape, bool)
    for k in range(m.task_n.shape[2]):
        n_k, x_k = m.task_n[:, :, k], m.task_x[:, :, k]
        rest_n = m.n_c - n_k
        rest_x = np.minimum(m.x - x_k, rest_n)
        phi = control_inflation(m.n_s, m.y, rest_n) if cfg.temper_overdispersion else None
        without, _ = log_mixture(
            m.n_s, rest_n, m.y, rest_x, 1.0, cfg.harm_ratios, cfg.harm_weights, inflation=phi
        )
        stood = np.maximum.accumulate(without >= log_threshold, axis=1)
        served = (np.cumsum(n_k, 1) > 0) & (np.cumsum(rest_n, 1) > 0)
        hold |= served & ~stood
    return hold


def judge_vectorized(
    metrics: list[Metric], cfg: JudgeConfig, task_rule: str = "leave-one-out"
) -> Outcome:
    """`task_rule` "share" applies the removed 80%-share rule instead (for comparison)."""
    n_c = metrics[0].n_c
    cum_c = np.cumsum(n_c, 1)
    enough = cum_c >= cfg.min_canary_requests
    harmful = np.zeros(n_c.shape, bool)
    clean = np.zeros(n_c.shape, bool)  # harmful without resting on a burst
    non_inferior = np.ones(n_c.shape, bool)
    g = cfg.burst_guard
    for m in metrics:
        ratios, weights = (
            (cfg.latency_harm_ratios, cfg.latency_harm_weights)
            if m.latency
            else (cfg.harm_ratios, cfg.harm_weights)
        )
        phi = control_inflation(m.n_s, m.y, m.n_c) if cfg.temper_overdispersion else None
        log_harm, robust = log_mixture(
            m.n_s, m.n_c, m.y, m.x, 1.0, ratios, weights, burst=g, inflation=phi
        )
        log_ni, _ = log_mixture(
            m.n_s,
            m.n_c,
            m.y,
            m.x,
            cfg.promote_margin,
            cfg.promote_ratios,
            cfg.promote_weights,
            inflation=phi,
        )
        threshold = math.log(1 / m.alpha)
        crossed = log_harm >= threshold
        harmful |= crossed
        if g.enabled and g.action == "hold":
            held = robust < threshold
            if m.task_x is not None and not m.latency:
                if task_rule == "share":
                    held |= share_rule_suspect(m, g)
                else:
                    held |= task_hold(m, cfg, threshold)
            clean |= crossed & ~held
        else:
            clean |= crossed
        non_inferior &= log_ni >= math.log(1 / cfg.promote_alpha)
    rollback = enough & clean
    promote = enough & ~harmful & non_inferior
    errors_rate = np.cumsum(metrics[0].x, 1) / np.maximum(cum_c, 1)
    promote &= errors_rate < cfg.max_error_rate_to_promote
    inconclusive = cum_c >= cfg.max_canary_requests
    return first_event(rollback, promote | inconclusive, promote, cum_c)


def first_event(
    rollback: NDArray[np.bool_],
    stop: NDArray[np.bool_],
    promote: NDArray[np.bool_],
    cum_c: Int,
    minutes_per_look: float = 0.1,
) -> Outcome:
    """First look where we roll back, or else stop (promote / give up)."""
    reps, looks = rollback.shape
    any_event = rollback | stop
    has = any_event.any(1)
    idx = np.where(has, any_event.argmax(1), looks - 1)
    rows = np.arange(reps)
    kind = np.where(rollback[rows, idx], ROLLBACK, np.where(promote[rows, idx], PROMOTE, NONE))
    kind = np.where(has, kind, NONE)
    return Outcome(kind, cum_c[rows, idx], (idx + 1) * minutes_per_look)


# ---- the baselines


def flagger(n_c_min: Int, x_min: Int) -> Outcome:
    """Success rate >= 99% per 1-min check, roll back after 5 failed checks, 100 checks."""
    rate = np.divide(x_min, n_c_min, out=np.zeros(x_min.shape), where=n_c_min > 0)
    failed = np.cumsum(rate > 0.01, 1) >= 5
    done = np.zeros(failed.shape, bool)
    done[:, -1] = True
    return first_event(failed, done, done, np.cumsum(n_c_min, 1), 1.0)


def horizon_canary_requests(p0: float, ratio: float) -> int:
    """Canary requests for 80% power at `ratio`, one-sided α = 5%, stable 19× larger."""
    p1 = p0 * ratio
    k = (1 - SHARE) / SHARE
    p_bar = (p1 + k * p0) / (1 + k)
    se0 = math.sqrt(p_bar * (1 - p_bar) * (1 + 1 / k))
    se1 = math.sqrt(p1 * (1 - p1) + p0 * (1 - p0) / k)
    return math.ceil(((Z_ALPHA * se0 + Z_BETA * se1) / (p1 - p0)) ** 2)


def z_test(n_s: Int, n_c: Int, y: Int, x: Int) -> NDArray[np.bool_]:
    """One-sided pooled two-proportion z-test 'canary worse' at α = 5% on cumulative counts."""
    cs, cc, cy, cx = (np.cumsum(a, 1) for a in (n_s, n_c, y, x))
    pooled = (cx + cy) / np.maximum(cs + cc, 1)
    se = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(cc, 1) + 1 / np.maximum(cs, 1)))
    diff = cx / np.maximum(cc, 1) - cy / np.maximum(cs, 1)
    z: Float = np.divide(diff, se, out=np.zeros(se.shape), where=se > 0)
    return z > Z_ALPHA


def fixed_horizon(n_s: Int, n_c: Int, y: Int, x: Int, horizon: int, peek: bool) -> Outcome:
    cum_c = np.cumsum(n_c, 1)
    significant = z_test(n_s, n_c, y, x)
    at_horizon = cum_c >= horizon
    first_h = at_horizon & ~np.roll(at_horizon, 1, axis=1)
    first_h[:, 0] = at_horizon[:, 0]
    rollback = (significant & first_h) | (significant & ~at_horizon if peek else False)
    return first_event(rollback, first_h, first_h, cum_c, 1.0)


def wald_sprt(n_c: Int, x: Int, p1: float) -> Outcome:
    """Wald's SPRT on the canary alone, knowing p0 and p1 (a bound, not a usable test)."""
    llr = np.cumsum(x * math.log(p1 / P0) + (n_c - x) * math.log((1 - p1) / (1 - P0)), 1)
    reject = llr >= math.log((1 - BETA) / ALPHA)
    accept = llr <= math.log(BETA / (1 - ALPHA))
    return first_event(reject, accept, accept, np.cumsum(n_c, 1))


# ---- reporting


def wilson_upper(k: int, n: int, z: float = 1.959963984540054) -> float:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre + half


HEADER = (
    f"{'procedure':<34} {'rollback':>8} {'(Wilson up)':>11} {'median':>7} {'mean':>7} "
    f"{'p80':>7} {'half-all':>8} {'promote':>8} {'prom.min':>8} {'/Wald':>6}"
)


def row(name: str, out: Outcome, ratio: float | None) -> str:
    """One procedure's line; 'half-all' = canary requests by which half of *all*
    replications were rolled back (unlike the median over detections, it does not
    flatter a procedure that detects less often)."""
    reps = len(out.kind)
    rb = out.kind == ROLLBACK
    pr = out.kind == PROMOTE
    k = int(rb.sum())
    n = np.sort(out.canary_requests[rb])
    med = float(np.median(n)) if k else float("nan")
    mean = float(n.mean()) if k else float("nan")
    p80 = float(np.percentile(n, 80)) if k else float("nan")
    half_all = f"{n[(reps + 1) // 2 - 1]:.0f}" if 2 * k >= reps else "-"
    prom_min = float(np.median(out.minutes[pr])) if pr.any() else float("nan")
    wald = f"{med / WALD_BOUND[ratio]:.2f}" if ratio in WALD_BOUND and k else ""
    return (
        f"{name:<34} {k / reps:>8.1%} {wilson_upper(k, reps):>11.1%} {med:>7.0f} {mean:>7.0f} "
        f"{p80:>7.0f} {half_all:>8} {pr.mean():>8.1%} {prom_min:>8.1f} {wald:>6}"
    )


# ---- scenarios


def error_metrics(
    rng: np.random.Generator, reps: int, p1: float, minute_looks: bool, alpha: float
) -> list[Metric]:
    n_s, n_c = traffic(rng, reps, LOOKS_6S)
    y = rng.binomial(n_s, P0)
    x = rng.binomial(n_c, p1)
    if minute_looks:
        n_s, n_c, y, x = (per_minute(a) for a in (n_s, n_c, y, x))
    return [Metric(n_s, n_c, y, x, alpha)]


def beta_rates(rng: np.random.Generator, p: float, rho: float, shape: tuple[int, int]) -> Float:
    """Per-look hit rates around mean p with intra-class correlation rho (0 = constant)."""
    if rho <= 0:
        return np.full(shape, p)
    a, b = p * (1 / rho - 1), (1 - p) * (1 / rho - 1)
    rates: Float = rng.beta(a, b, size=shape)
    return rates


def overdispersed_metrics(
    rng: np.random.Generator, reps: int, p_stable: float, ratio: float, rho: float
) -> list[Metric]:
    """Every 6-s look draws each version's error rate from its own Beta (independently)."""
    n_s, n_c = traffic(rng, reps, LOOKS_6S)
    y = rng.binomial(n_s, beta_rates(rng, p_stable, rho, n_s.shape))
    x = rng.binomial(n_c, beta_rates(rng, p_stable * ratio, rho, n_c.shape))
    return [Metric(n_s, n_c, y, x, ALPHA)]


def error_scenarios(reps: int, errors_only: JudgeConfig, default: JudgeConfig) -> None:
    horizon = horizon_canary_requests(P0, 1.5)
    equal_grid = dataclasses.replace(
        errors_only, harm_ratios=(1.25, 1.5, 2.0, 3.0, 5.0, 10.0), harm_weights=(1.0,) * 6
    )
    print(
        f"\n== error rate: p0 = 1%, canary share 5%, 2,000 req/min, cap 200,000 requests, "
        f"{reps} replications =="
    )
    print(f"fixed-horizon z-test sized for 80% power at 1.5x: {horizon} canary requests")
    print(
        "'rollback' is the false-rollback rate at 1.0x and the detection probability "
        "otherwise;\n'promote' at 1.5x is the false-promote rate (canary exactly at the "
        "margin);\nmedian/mean/p80 are canary requests to roll back; '/Wald' = median ÷ "
        "Wald's bound (1,742 / 487 / 46)."
    )
    plain = dataclasses.replace(errors_only, temper_overdispersion=False)
    for ratio in (1.0, 1.5, 2.0, 5.0):
        p1 = P0 * ratio
        seed = int(ratio * 100) + SEED_OFFSET
        print(f"\n-- canary error rate {p1:.1%} ({ratio:g}x) --")
        print(HEADER)
        for minute in (False, True):
            look = "60 s" if minute else "6 s"
            m = error_metrics(np.random.default_rng(seed), reps, p1, minute, ALPHA)
            out = judge_vectorized(m, errors_only)
            print(row(f"judge, errors only, look {look}", out, ratio))
            out = judge_vectorized(m, plain)
            print(row(f"  same, not tempered, {look}", out, ratio))
            m[0].alpha = default.alpha * default.error_alpha_share
            out = judge_vectorized(m, default)
            print(row(f"judge, α_err=.03 (default), {look}", out, ratio))
            if not minute:
                m[0].alpha = ALPHA
                out = judge_vectorized(m, equal_grid)
                print(row("judge, equal grid (DESIGN §6), 6 s", out, ratio))
                if ratio > 1:
                    oracle = dataclasses.replace(
                        errors_only, harm_ratios=(ratio,), harm_weights=(1.0,)
                    )
                    print(
                        row("e-process knowing R (oracle), 6 s", judge_vectorized(m, oracle), ratio)
                    )
            m1 = m[0]
            out = wald_sprt(m1.n_c, m1.x, p1 if ratio > 1 else P0 * 1.5)
            print(row(f"Wald SPRT knowing p1, {look}", out, ratio))
        b = error_metrics(np.random.default_rng(seed), reps, p1, True, ALPHA)[0]
        print(row("Flagger-style (1 min, 5 fails)", flagger(b.n_c, b.x), ratio))
        print(
            row(
                "fixed-horizon z-test", fixed_horizon(b.n_s, b.n_c, b.y, b.x, horizon, False), ratio
            )
        )
        print(
            row(
                "same z-test peeked every min",
                fixed_horizon(b.n_s, b.n_c, b.y, b.x, horizon, True),
                ratio,
            )
        )


def burst_scenario(reps: int, cfg: JudgeConfig) -> None:
    """Canary as good as stable, but now and then one interval brings a burst of errors
    (one client retrying, one task restarting): independence is broken."""
    print(
        f"\n== bursts: canary as good as stable (1%), plus with probability 1% per minute "
        f"a 6-s interval where 8 extra canary requests fail; {reps} replications =="
    )
    rng = np.random.default_rng(99 + SEED_OFFSET)
    n_s, n_c = traffic(rng, reps, LOOKS_6S)
    y, x = rng.binomial(n_s, P0), rng.binomial(n_c, P0)
    burst = rng.random(n_c.shape) < 0.001
    x = np.minimum(x + 8 * burst, n_c)
    print(HEADER)
    for action in ("hold", "report"):
        guard = dataclasses.replace(cfg.burst_guard, action=action)
        judged = dataclasses.replace(cfg, burst_guard=guard)
        out = judge_vectorized([Metric(n_s, n_c, y, x, ALPHA)], judged)
        label = "burst guard holds" if action == "hold" else "guard only reports"
        print(row(f"judge, {label}", out, None))
    print(row("Wald SPRT knowing p1 (1.5x)", wald_sprt(n_c, x, P0 * 1.5), None))


def dispersion_scenarios(reps: int, cfg: JudgeConfig) -> None:
    """Overdispersed errors: false rollbacks of the plain and the tempered judge, and what
    tempering costs on stationary traffic (same seeds, same run)."""
    plain = dataclasses.replace(cfg, temper_overdispersion=False)
    print(
        f"\n== overdispersed errors: each version's rate per 6-s look ~ Beta(mean, ICC ρ), "
        f"independently; p0 = 1%, canary share 5%, errors only (α = 5%), {reps} replications =="
    )
    print(
        f"{'scenario':<30} {'plain judge':>12} {'(Wilson up)':>11} {'tempered':>9} "
        f"{'(Wilson up)':>11} {'med plain':>9} {'med temp':>8} {'ratio':>6} "
        f"{'prom plain':>10} {'prom temp':>9}"
    )
    cases = [(1.0, 0.0), (1.0, 0.01), (1.0, 0.02), (1.0, 0.05)]
    cases += [(r, rho) for r in (1.5, 2.0, 5.0) for rho in (0.0, 0.02)]
    for ratio, rho in cases:
        seed = 5000 + int(ratio * 100) + int(rho * 1000) + SEED_OFFSET
        m = overdispersed_metrics(np.random.default_rng(seed), reps, P0, ratio, rho)
        a, b = judge_vectorized(m, plain), judge_vectorized(m, cfg)
        ka, kb = int((a.kind == ROLLBACK).sum()), int((b.kind == ROLLBACK).sum())
        med_a = float(np.median(a.canary_requests[a.kind == ROLLBACK])) if ka else math.nan
        med_b = float(np.median(b.canary_requests[b.kind == ROLLBACK])) if kb else math.nan
        label = f"{ratio:g}x, " + (f"ρ = {rho:g}" if rho else "stationary (binomial)")
        print(
            f"{label:<30} {ka / reps:>12.1%} {wilson_upper(ka, reps):>11.1%} {kb / reps:>9.1%} "
            f"{wilson_upper(kb, reps):>11.1%} {med_a:>9.0f} {med_b:>8.0f} "
            f"{med_b / med_a if ka and kb else math.nan:>6.2f} "
            f"{(a.kind == PROMOTE).mean():>10.1%} {(b.kind == PROMOTE).mean():>9.1%}"
        )
    print(
        "at 1x the rollback columns are false rollbacks, otherwise detections; 'med' = median "
        "canary requests\nto a rollback; 'ratio' = tempered ÷ plain (the price of tempering)."
    )


def split_tasks(rng: np.random.Generator, n: Int, hits: Int, tasks: int) -> tuple[Int, Int]:
    """Per look, split a version's requests evenly at random over `tasks` tasks and its
    hits as equally-good tasks would (hypergeometric): the totals stay as they were drawn,
    so a scenario with per-task counts keeps the seeds of the one without."""
    task_n, task_x = [], []
    for k in range(tasks - 1):
        n_k = rng.binomial(n, 1.0 / (tasks - k))
        x_k = rng.hypergeometric(n_k, n - n_k, hits)
        task_n.append(n_k)
        task_x.append(x_k)
        n, hits = n - n_k, hits - x_k
    return np.stack([*task_n, n], axis=2), np.stack([*task_x, hits], axis=2)


def task_burst_metrics(
    rng: np.random.Generator,
    reps: int,
    bursting: str,
    factor: float = 10.0,
    duration_looks: int = 30,
) -> tuple[Metric, Metric]:
    """Canary as good as stable (1%); stable and canary run 2 tasks each (even split). Once
    per run, from a random look in the first 20 minutes, one task of `bursting`
    ("canary" or "stable") fails `factor` × 1% of its requests for `duration_looks` 6-s
    looks (default 10x for 3 minutes). Returns the aggregate counts and the same counts
    with per-canary-task counts."""
    n_s, n_c = traffic(rng, reps, LOOKS_6S)
    looks = np.arange(LOOKS_6S)[None, :]
    start = rng.integers(0, 200, size=(reps, 1))
    on = (looks >= start) & (looks < start + duration_looks)
    n_c1, n_s1 = rng.binomial(n_c, 0.5), rng.binomial(n_s, 0.5)
    canary_rate = np.where(on, factor * P0, P0) if bursting == "canary" else P0
    stable_rate = np.where(on, factor * P0, P0) if bursting == "stable" else P0
    x1 = rng.binomial(n_c1, canary_rate)
    x2 = rng.binomial(n_c - n_c1, P0)
    y = rng.binomial(n_s1, stable_rate) + rng.binomial(n_s - n_s1, P0)
    aggregate = Metric(n_s, n_c, y, x1 + x2, ALPHA)
    per_task = dataclasses.replace(
        aggregate, task_n=np.stack([n_c1, n_c - n_c1], axis=2), task_x=np.stack([x1, x2], axis=2)
    )
    return aggregate, per_task


def task_burst_scenario(reps: int, cfg: JudgeConfig) -> None:
    """One task of a version bursts (issue 10, item 4): false rollbacks without per-task
    counts, with the removed 80%-share rule and with leave-one-task-out; and what
    leave-one-task-out costs on a canary that is bad on every task (same seeds as the
    error table, 2 and 4 canary tasks)."""
    print(
        f"\n== one bursting task: canary as good as stable (1%), 2 canary and 2 stable "
        f"tasks (even split); once per run, from a random minute in the first 20, one task "
        f"fails 10% of its requests (10x) for 3 minutes; errors only (α = 5%), tempered, "
        f"{reps} replications =="
    )
    print(f"{'bursting task / procedure':<54} {'false rollback':>14} {'(Wilson up)':>11}")
    for bursting in ("canary", "stable"):
        rng = np.random.default_rng(77 + (bursting == "stable") + SEED_OFFSET)
        aggregate, per_task = task_burst_metrics(rng, reps, bursting)
        for name, metric, rule in (
            ("aggregate counts (no task guard)", aggregate, "leave-one-out"),
            ("per-task counts, 80%-share rule (before)", per_task, "share"),
            ("per-task counts, leave-one-task-out (now)", per_task, "leave-one-out"),
        ):
            k = int((judge_vectorized([metric], cfg, rule).kind == ROLLBACK).sum())
            print(
                f"{f'{bursting} task: {name}':<54} {k / reps:>14.1%} {wilson_upper(k, reps):>11.1%}"
            )
    print(
        f"\ndetection with per-task counts (canary bad on every task; same seeds as the "
        f"error table, looks 6 s, {reps} replications): median canary requests to a rollback"
    )
    print(
        f"{'ratio':<6} {'tasks':>5} {'aggregate':>10} {'share rule':>10} {'leave-out':>10} "
        f"{'slowdown':>8} {'detected agg/share/out':>24}"
    )
    for ratio in (1.5, 2.0, 5.0):
        seed = int(ratio * 100) + SEED_OFFSET
        m = error_metrics(np.random.default_rng(seed), reps, P0 * ratio, False, ALPHA)[0]
        for tasks in (2, 4):
            task_n, task_x = split_tasks(np.random.default_rng(seed + 1), m.n_c, m.x, tasks)
            per_task = dataclasses.replace(m, task_n=task_n, task_x=task_x)
            outs = [
                judge_vectorized([m], cfg),
                judge_vectorized([per_task], cfg, "share"),
                judge_vectorized([per_task], cfg),
            ]
            rb = [o.kind == ROLLBACK for o in outs]
            med = [
                float(np.median(o.canary_requests[r])) if r.any() else math.nan
                for o, r in zip(outs, rb, strict=True)
            ]
            detected = "/".join(f"{r.mean():.1%}" for r in rb)
            print(
                f"{ratio:<6g} {tasks:>5} {med[0]:>10.0f} {med[1]:>10.0f} {med[2]:>10.0f} "
                f"{med[2] / med[0]:>8.2f} {detected:>24}"
            )
    print(
        "'slowdown' = leave-one-task-out ÷ aggregate: the evidence must also stand on the "
        "other tasks' traffic alone."
    )


# (label, failure-rate factor of the bursting canary task, duration in 6-s looks)
TASK_BURST_SWEEP = (
    ("no burst (reference)", 1.0, 0),
    ("10x for 6 s (one look)", 10.0, 1),
    ("10x for 30 s", 10.0, 5),
    ("10x for 3 min", 10.0, 30),
    ("3x for 3 min", 3.0, 30),
)


def task_burst_sweep(reps: int, cfg: JudgeConfig) -> None:
    """Where the protection against one bursting canary task ends: false rollbacks of the
    judge as shipped (aggregate counts: interval guard and tempering only), of the same
    judge without those two (to show what they do), and with per-task counts
    (leave-one-task-out), over the burst's size and length. Same seed for every row."""
    bare = dataclasses.replace(
        cfg,
        temper_overdispersion=False,
        burst_guard=dataclasses.replace(cfg.burst_guard, enabled=False),
    )
    print(
        f"\n== one bursting canary task, sweep: canary as good as stable (1%), 2 canary and 2 "
        f"stable tasks; once per run, from a random minute in the first 20, one canary task "
        f"fails at the given multiple of 1%; errors only (α = 5%), looks 6 s, "
        f"{reps} replications; false rollbacks (Wilson upper) =="
    )
    columns = ("as shipped", "no guard, untempered", "per-task counts")
    print(f"{'burst of one canary task':<24}" + "".join(f" {c:>22}" for c in columns))
    for label, factor, duration in TASK_BURST_SWEEP:
        rng = np.random.default_rng(770 + SEED_OFFSET)
        aggregate, per_task = task_burst_metrics(rng, reps, "canary", factor, duration)
        cells = []
        for metric, judged in ((aggregate, cfg), (aggregate, bare), (per_task, cfg)):
            k = int((judge_vectorized([metric], judged).kind == ROLLBACK).sum())
            cells.append(f"{f'{k / reps:.1%} ({wilson_upper(k, reps):.1%})':>22}")
        print(f"{label:<24} " + " ".join(cells))
    print(
        "'as shipped' = no per-task counts (the controller passes none today): interval burst "
        "guard and tempering;\n'no guard, untempered' = the same without both; 'per-task "
        "counts' = as shipped plus the leave-one-task-out guard."
    )


def split_traffic(rng: np.random.Generator, reps: int) -> tuple[Int, Int, Int]:
    """Per look: stable, baseline, canary requests with baseline share = canary share."""
    n_c = rng.binomial(PER_6S, SHARE, size=(reps, LOOKS_6S))
    n_b = rng.binomial(PER_6S - n_c, SHARE / (1 - SHARE))
    return PER_6S - n_c - n_b, n_b, n_c


def latency_exceedance(
    thresholds: Float, sigma: float, factor: float, widen: float = 1.0
) -> tuple[Float, Float]:
    """P(control > T) and P(canary > widen·T) per replication and threshold."""
    z = np.log(thresholds) / sigma
    q_s = normal_sf(z)
    q_c = normal_sf(z + (math.log(widen) - math.log(factor)) / sigma)
    return q_s, q_c


def baseline_cost(reps: int, cfg: JudgeConfig) -> None:
    """What an equal-size baseline control costs (issue 10, item 1), and the tolerance."""
    print(
        f"\n== baseline cost: canary 5%, baseline 5% (stable's version), stable 90%; errors "
        f"judged against stable+baseline, latency against the baseline alone; default "
        f"judge, looks 6 s, {reps} replications =="
    )
    e_alpha = cfg.alpha * cfg.error_alpha_share
    l_alpha = cfg.alpha * (1 - cfg.error_alpha_share) / 2
    print(
        f"{'scenario':<34} {'control':<17} {'rollback':>8} {'(Wilson up)':>11} "
        f"{'median':>7} {'half-all':>8} {'promote':>8}"
    )

    def line(label: str, control: str, out: Outcome) -> None:
        rb = out.kind == ROLLBACK
        k = int(rb.sum())
        n = np.sort(out.canary_requests[rb])
        med = float(np.median(n)) if k else math.nan
        half = f"{n[(reps + 1) // 2 - 1]:.0f}" if 2 * k >= reps else "-"
        print(
            f"{label:<34} {control:<17} {k / reps:>8.1%} {wilson_upper(k, reps):>11.1%} "
            f"{med:>7.0f} {half:>8} {(out.kind == PROMOTE).mean():>8.1%}"
        )

    errors_only = dataclasses.replace(cfg, latency_thresholds_s=None)
    for ratio in (1.0, 1.5, 2.0, 5.0):
        rng = np.random.default_rng(8000 + int(ratio * 100) + SEED_OFFSET)
        n_s, n_b, n_c = split_traffic(rng, reps)
        y_s, y_b = rng.binomial(n_s, P0), rng.binomial(n_b, P0)
        x = rng.binomial(n_c, P0 * ratio)
        for control, n_k, y_k in (
            ("stable+baseline", n_s + n_b, y_s + y_b),
            ("baseline alone", n_b, y_b),
        ):
            out = judge_vectorized([Metric(n_k, n_c, y_k, x, ALPHA)], errors_only)
            line(f"errors {ratio:g}x (errors only)", control, out)
    for sigma in (0.5, 1.0):
        for factor in (1.0, 1.1, 1.3):
            rng = np.random.default_rng(9000 + int(sigma * 1000 + factor * 100) + SEED_OFFSET)
            thresholds = frozen_thresholds(rng, reps, sigma)
            n_s, n_b, n_c = split_traffic(rng, reps)
            errors = Metric(
                n_s + n_b,
                n_c,
                rng.binomial(n_s + n_b, P0),
                rng.binomial(n_c, P0),
                e_alpha,
            )
            q_s, q_c = latency_exceedance(thresholds, sigma, factor)
            x = [rng.binomial(n_c, q_c[:, j : j + 1]) for j in range(2)]
            for control, n_k in (("stable (95%)", n_s + n_b), ("baseline (5%)", n_b)):
                lat = [
                    Metric(n_k, n_c, rng.binomial(n_k, q_s[:, j : j + 1]), x[j], l_alpha, True)
                    for j in range(2)
                ]
                out = judge_vectorized([errors, *lat], cfg)
                line(f"latency σ={sigma} canary ×{factor}", control, out)
    rel = 0.10
    print(
        f"\nlatency tolerance: canary counted against T·(1 + {rel:g}) (no absolute part), "
        f"the baseline against T; T = stable's p95/p99"
    )
    for sigma in (0.5, 1.0):
        for factor in (1.0, 1.05, 1.1, 1.3):
            rng = np.random.default_rng(9500 + int(sigma * 1000 + factor * 100) + SEED_OFFSET)
            thresholds = frozen_thresholds(rng, reps, sigma)
            n_s, n_b, n_c = split_traffic(rng, reps)
            errors = Metric(
                n_s + n_b, n_c, rng.binomial(n_s + n_b, P0), rng.binomial(n_c, P0), e_alpha
            )
            q_s, q_c = latency_exceedance(thresholds, sigma, factor, widen=1 + rel)
            lat = [
                Metric(
                    n_b,
                    n_c,
                    rng.binomial(n_b, q_s[:, j : j + 1]),
                    rng.binomial(n_c, q_c[:, j : j + 1]),
                    l_alpha,
                    True,
                )
                for j in range(2)
            ]
            out = judge_vectorized([errors, *lat], cfg)
            line(f"tolerance 10%, σ={sigma} canary ×{factor}", "baseline (5%)", out)


def normal_sf(z: Float | float) -> Float:
    return 0.5 * np.asarray(np.vectorize(math.erfc)(np.asarray(z) / math.sqrt(2)), dtype=float)


def frozen_thresholds(rng: np.random.Generator, reps: int, sigma: float) -> Float:
    """Stable's empirical p95 and p99 over a 10-minute window (19,000 requests), per replication.

    Drawn as order statistics (uniform order statistics are Beta distributed, the p99
    one conditional on the p95 one), which is exact and avoids sampling the window.
    """
    n = 19_000
    k95, k99 = round(0.95 * n), round(0.99 * n)
    u95 = rng.beta(k95, n + 1 - k95, size=reps)
    u99 = u95 + (1 - u95) * rng.beta(k99 - k95, n + 1 - k99, size=reps)
    inv = np.vectorize(NormalDist().inv_cdf)
    thresholds: Float = np.exp(sigma * np.stack([inv(u95), inv(u99)], axis=1))
    return thresholds


def latency_scenarios(reps: int, cfg: JudgeConfig) -> None:
    print(
        f"\n== latency: lognormal service time, thresholds frozen at stable's p95/p99 "
        f"from a 10-minute window, errors 1% on both, {reps} replications, looks 6 s =="
    )
    print(
        f"metrics and α: errors {cfg.alpha * cfg.error_alpha_share:.3f}, each latency "
        f"threshold {cfg.alpha * (1 - cfg.error_alpha_share) / 2:.3f}"
    )
    print(
        f"{'scenario':<22} {'RR>p95':>7} {'RR>p99':>7} {'rollback':>8} {'(Wilson up)':>11} "
        f"{'by p95':>7} {'by p99':>7} {'median':>7} {'promote':>8} {'prom.min':>8}"
    )
    for sigma in (0.5, 1.0):
        for factor in (1.0, 1.1, 1.3):
            rng = np.random.default_rng(int(sigma * 1000 + factor * 100) + SEED_OFFSET)
            thresholds = frozen_thresholds(rng, reps, sigma)
            n_s, n_c = traffic(rng, reps, LOOKS_6S)
            metrics = [
                Metric(
                    n_s,
                    n_c,
                    rng.binomial(n_s, P0),
                    rng.binomial(n_c, P0),
                    cfg.alpha * cfg.error_alpha_share,
                )
            ]
            ratios = []
            for j in range(2):
                z = np.log(thresholds[:, j]) / sigma
                q_s = normal_sf(z)[:, None]
                q_c = normal_sf(z - math.log(factor) / sigma)[:, None]
                ratios.append(float(np.mean(q_c / q_s)))
                metrics.append(
                    Metric(
                        n_s,
                        n_c,
                        rng.binomial(n_s, q_s),
                        rng.binomial(n_c, q_c),
                        cfg.alpha * (1 - cfg.error_alpha_share) / 2,
                        latency=True,
                    )
                )
            out = judge_vectorized(metrics, cfg)
            by = [judge_vectorized([metrics[0], metrics[i]], cfg).kind == ROLLBACK for i in (1, 2)]
            rb = out.kind == ROLLBACK
            k = int(rb.sum())
            med = float(np.median(out.canary_requests[rb])) if k else float("nan")
            pr = out.kind == PROMOTE
            prom_min = float(np.median(out.minutes[pr])) if pr.any() else float("nan")
            print(
                f"{f'σ={sigma} canary ×{factor}':<22} {ratios[0]:>7.2f} {ratios[1]:>7.2f} "
                f"{k / reps:>8.1%} {wilson_upper(k, reps):>11.1%} {by[0].mean():>7.1%} "
                f"{by[1].mean():>7.1%} {med:>7.0f} {pr.mean():>8.1%} {prom_min:>8.1f}"
            )
    print("'by p95'/'by p99': rollback rate of a judge given errors and that threshold only.")


def agreement_check(reps: int = 24) -> None:
    """Replay some replications through the pure Judge; decisions and looks must match."""
    mismatches = total = 0
    default = JudgeConfig()
    for ratio, with_latency, rho in itertools.product((1.0, 2.0, 5.0), (False, True), (0, 0.02)):
        rng = np.random.default_rng(7)
        if rho:  # overdispersed: the tempering's φ varies from look to look
            metrics = overdispersed_metrics(rng, reps, P0, ratio, rho)
        else:
            metrics = error_metrics(rng, reps, P0 * ratio, False, ALPHA)
        cfg = JudgeConfig(latency_thresholds_s=(0.2, 0.5) if with_latency else None)
        if with_latency:
            m0 = metrics[0]
            m0.alpha = default.alpha * default.error_alpha_share
            for q in (0.05, 0.01):
                metrics.append(
                    Metric(
                        m0.n_s,
                        m0.n_c,
                        rng.binomial(m0.n_s, q),
                        rng.binomial(m0.n_c, q * ratio),
                        default.alpha * (1 - default.error_alpha_share) / 2,
                        latency=True,
                    )
                )
        vec = judge_vectorized(metrics, cfg)
        for r in range(reps):
            total += 1
            mismatches += not replay_agrees(cfg, metrics, r, vec)
    # Per-task canary counts (leave-one-task-out): a bursting canary task, and a canary
    # bad on both tasks.
    task_total = task_mismatches = 0
    for scenario in ("burst", "1.5x", "2x"):
        rng = np.random.default_rng(11)
        if scenario == "burst":
            per_task = task_burst_metrics(rng, reps, "canary")[1]
        else:
            m = error_metrics(rng, reps, P0 * float(scenario[:-1]), False, ALPHA)[0]
            task_n, task_x = split_tasks(rng, m.n_c, m.x, 2)
            per_task = dataclasses.replace(m, task_n=task_n, task_x=task_x)
        vec = judge_vectorized([per_task], default)
        for r in range(reps):
            task_total += 1
            task_mismatches += not replay_agrees(default, [per_task], r, vec)
    print(
        f"\npure Judge vs vectorized judge: {total} replications replayed (errors, and errors "
        f"+ 2 latency thresholds; binomial and overdispersed ρ = 0.02, tempered), "
        f"{mismatches} disagreements; {task_total} with per-task canary counts (a bursting "
        f"task, 1.5x and 2x on both tasks), {task_mismatches} disagreements"
    )


def replay_agrees(cfg: JudgeConfig, metrics: list[Metric], r: int, vec: Outcome) -> bool:
    judge = Judge(cfg)
    m = metrics[0]
    verdict, looks = Verdict.CONTINUE, 0
    for t in range(m.n_c.shape[1]):
        slow_s = tuple(int(k.y[r, t]) for k in metrics[1:])
        slow_c = tuple(int(k.x[r, t]) for k in metrics[1:])
        tasks = {}
        if m.task_n is not None and m.task_x is not None:
            tasks = {
                f"task-{k}": TaskCounts(int(m.task_n[r, t, k]), int(m.task_x[r, t, k]))
                for k in range(m.task_n.shape[2])
            }
        decision = judge.update(
            Batch(
                stable=RoleBatch(int(m.n_s[r, t]), int(m.y[r, t]), slower_than=slow_s),
                canary=RoleBatch(int(m.n_c[r, t]), int(m.x[r, t]), slower_than=slow_c, tasks=tasks),
            )
        )
        looks = t + 1
        if decision.verdict is not Verdict.CONTINUE:
            verdict = decision.verdict
            break
    expected = {ROLLBACK: Verdict.ROLLBACK, PROMOTE: Verdict.PROMOTE}.get(
        int(vec.kind[r]), verdict if verdict is Verdict.INCONCLUSIVE else Verdict.CONTINUE
    )
    same_look = verdict is Verdict.CONTINUE or math.isclose(looks * 0.1, vec.minutes[r])
    return verdict is expected and same_look


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0, help="offset added to every seed")
    parser.add_argument(
        "--sweep-reps",
        type=int,
        default=1000,
        help="replications per row of the bursting-canary-task sweep",
    )
    parser.add_argument(
        "--only",
        choices=["tasks"],
        help="run one section: 'tasks' = the replay check, the bursting-task scenarios "
        "and the bursting-canary-task sweep",
    )
    args = parser.parse_args()
    global SEED_OFFSET
    SEED_OFFSET = args.seed
    started = time.perf_counter()
    default = JudgeConfig()
    errors_only = JudgeConfig()  # no latency thresholds: the error rate gets all of α
    agreement_check()
    if args.only == "tasks":
        task_burst_scenario(args.reps, errors_only)
        swept = time.perf_counter()
        task_burst_sweep(args.sweep_reps, errors_only)
        now = time.perf_counter()
        print(f"sweep {now - swept:.0f} s, total {now - started:.0f} s")
        return
    error_scenarios(args.reps, errors_only, default)
    latency_scenarios(args.reps, default)
    burst_scenario(args.reps, errors_only)
    dispersion_scenarios(args.reps, errors_only)
    task_burst_scenario(args.reps, errors_only)
    task_burst_sweep(args.sweep_reps, errors_only)
    baseline_cost(args.reps, default)
    print(
        f"\nharm grid {list(default.harm_ratios)} weights {list(default.harm_weights)}; "
        f"latency harm grid {list(default.latency_harm_ratios)} weights "
        f"{list(default.latency_harm_weights)}; "
        f"promotion grid {list(default.promote_ratios)} weights "
        f"{list(default.promote_weights)} against margin {default.promote_margin}"
    )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
