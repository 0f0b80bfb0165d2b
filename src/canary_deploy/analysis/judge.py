# ruff: noqa: RUF002
"""The judge: counts in, a verdict with its evidence out (pure: no I/O, no clock)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from canary_deploy.analysis.batch import Batch
from canary_deploy.analysis.config import JudgeConfig
from canary_deploy.analysis.eprocess import RateRatioEProcess
from canary_deploy.analysis.evidence import Decision, MetricEvidence, Verdict
from canary_deploy.analysis.guard import TaskGuard, interval_burst
from canary_deploy.analysis.intervals import wilson
from canary_deploy.analysis.metric import Metric

STATE_VERSION = 1
_SETTINGS_BEFORE_DEFAULTS = {
    "latency_tolerance": 0.0,
    "latency_tolerance_ms": 0.0,
    "temper_overdispersion": False,
}


class Judge:
    """Anytime-valid canary analysis over a stream of `Batch`es.

    >>> judge = Judge(JudgeConfig(min_canary_requests=0))
    >>> judge.update(Batch.of((950, 0), (50, 2))).verdict
    <Verdict.CONTINUE: 'continue'>
    >>> judge.update(Batch.of((950, 0), (50, 2))).verdict
    <Verdict.ROLLBACK: 'rollback'>
    """

    def __init__(self, config: JudgeConfig | None = None) -> None:
        self.config = config or JudgeConfig()
        self._thresholds: tuple[float, ...] | None = self.config.latency_thresholds_s
        self._metrics: list[Metric] = []
        self._task_guard = TaskGuard()  # leave-one-task-out evidence on errors
        self._batches = 0
        self._verdict = Verdict.CONTINUE
        # Canary requests in batches where stable served too (a comparison was possible):
        # the cap counts these, so a step at 100% canary never runs into it.
        self._compared = 0
        self._stage_start = 0  # compared canary requests before the current stage
        self._baseline = False  # batches carry a baseline group (set by the first batch)

    @property
    def thresholds_s(self) -> tuple[float, ...]:
        """The frozen latency thresholds in seconds; () when latency is not judged."""
        return self._thresholds or ()

    @property
    def verdict(self) -> Verdict:
        return self._verdict

    def freeze_thresholds(self, values_s: Sequence[float]) -> tuple[float, ...]:
        """Freeze latency thresholds (typically stable's `config.latency_quantiles`).

        Must happen before the first batch: the α split across metrics depends on it.
        """
        if self._batches:
            raise ValueError("latency thresholds must be frozen before the first batch")
        values = tuple(float(v) for v in values_s)
        if any(not math.isfinite(v) or v <= 0 for v in values):
            raise ValueError(f"latency thresholds must be positive seconds, got {values}")
        self._thresholds = values
        return values

    @property
    def canary_thresholds_s(self) -> tuple[float, ...]:
        """The thresholds the canary's requests are counted against: each frozen threshold
        widened by the practical tolerance, `T * (1 + rel) + abs`.

        Why this keeps α for a canary within tolerance: if the canary's latency is at most
        `(1 + rel) * L + abs` for a control latency L (the same distribution, scaled and
        shifted), then P(canary > T') <= P(control > T) for T' = T(1 + rel) + abs, so its
        exceedance-rate ratio is <= 1 and the e-process is valid for that whole one-sided
        null. Counting both arms against the same T would test "not slower at all".

        >>> j = Judge(JudgeConfig(latency_thresholds_s=(0.010,)))
        >>> [round(t, 6) for t in j.canary_thresholds_s]
        [0.012]
        """
        cfg = self.config
        extra = cfg.latency_tolerance_ms / 1000.0
        return tuple(t * (1.0 + cfg.latency_tolerance) + extra for t in self.thresholds_s)

    @property
    def controls(self) -> tuple[str, str]:
        """What the canary is compared with: (for errors, for latency)."""
        if self._baseline:
            return "stable+baseline", "baseline"
        return "stable", "stable"

    def update(self, batch: Batch) -> Decision:
        """Add one interval's counts and decide.

        With a baseline in the batch, errors are compared with everything that runs
        stable's version (stable and baseline together: more data, and errors do not
        depend on a task's load), latency with the baseline alone (same age, same size,
        same share as the canary: the like-for-like control).
        """
        # Checked before anything is counted, so a rejected batch leaves the state as it was.
        self._check(batch)
        s, c, b = batch.stable, batch.canary, batch.baseline
        self._baseline = b is not None
        if not self._metrics:
            self._metrics = self._new_metrics()
        guard = self.config.burst_guard
        temper = self.config.temper_overdispersion
        err_requests = s.requests + (b.requests if b else 0)
        err_hits = s.errors + (b.errors if b else 0)
        errors = self._metrics[0]
        if guard.enabled:
            # Before `errors` sees the batch: tempered with the same φ, and a task first
            # seen now starts from the evidence so far.
            self._task_guard.observe(
                c.tasks,
                err_requests,
                err_hits,
                c.requests,
                c.errors,
                errors.harm,
                icc=errors.control_dispersion.icc_upper() if temper else 0.0,
                threshold=1.0 / errors.harm_alpha,
            )
        errors.observe(err_requests, err_hits, c.requests, c.errors, guard, temper=temper)
        if batch.latency_judged:
            # A skipped batch is not shown to latency at all: as zeros it would still feed
            # the control's dispersion estimate and slow every later verdict.
            control = b if b is not None else s
            for i, metric in enumerate(self._metrics[1:]):
                slow_s = control.slower_than[i] if control.slower_than else 0
                slow_c = c.slower_than[i] if c.slower_than else 0
                metric.observe(control.requests, slow_s, c.requests, slow_c, guard, temper=temper)
        if err_requests and c.requests:
            self._compared += c.requests
        self._batches += 1
        return self._decide()

    def _check(self, batch: Batch) -> None:
        """ValueError for a batch this judge cannot take: latency counts for other
        thresholds than it froze, or a baseline in some batches and not in others."""
        s, c = batch.stable, batch.canary
        thresholds = self.thresholds_s
        no_latency = (s.requests == 0 and c.requests == 0) or not batch.latency_judged
        if len(c.slower_than) != len(thresholds) and not (no_latency and not c.slower_than):
            raise ValueError(
                f"batch has {len(c.slower_than)} slower_than counts but the judge has "
                f"{len(thresholds)} frozen latency thresholds"
            )
        if self._batches and (batch.baseline is not None) != self._baseline:
            raise ValueError("a judge compares against a baseline in every batch or in none")

    # ---- deciding

    def _new_metrics(self) -> list[Metric]:
        cfg = self.config
        thresholds = self.thresholds_s
        error_alpha, latency_alpha = cfg.metric_alphas(len(thresholds))
        names = ["errors"] + [self._latency_name(i, t) for i, t in enumerate(thresholds)]
        alphas = [error_alpha] + [latency_alpha] * len(thresholds)
        return [
            Metric(
                name=name,
                harm_alpha=alpha,
                harm=(
                    RateRatioEProcess.new(1.0, cfg.harm_ratios, cfg.harm_weights)
                    if name == "errors"
                    else RateRatioEProcess.new(
                        1.0, cfg.latency_harm_ratios, cfg.latency_harm_weights
                    )
                ),
                non_inferiority=RateRatioEProcess.new(
                    cfg.promote_margin, cfg.promote_ratios, cfg.promote_weights
                ),
            )
            for name, alpha in zip(names, alphas, strict=True)
        ]

    def _latency_name(self, index: int, threshold_s: float) -> str:
        cfg = self.config
        label = f"slower than {threshold_s * 1000:.3g} ms"
        if cfg.latency_thresholds_s is not None:
            label += " (fixed)"
        elif len(self.thresholds_s) == len(cfg.latency_quantiles):
            label += f" (stable p{cfg.latency_quantiles[index] * 100:g})"
        return label

    def _decide(self) -> Decision:
        """The verdict on the evidence so far: a terminal one sticks; harm rolls back
        (`_on_harm`); non-inferiority on every metric promotes (unless the canary fails
        too often, stable too); else continue, until the stage's cap: inconclusive."""
        cfg = self.config
        evidence = tuple(self._evidence(m) for m in self._metrics)
        canary_requests = self._metrics[0].canary_requests
        warnings: list[str] = []
        if self._thresholds is None and self.config.latency_quantiles:
            warnings.append("latency not judged: no thresholds were frozen before the analysis")
        if self._verdict is not Verdict.CONTINUE:
            # Terminal verdicts stick: Ville's bound covers the first crossing, not a retraction.
            return self._decision(self._verdict, evidence, canary_requests, warnings)
        if canary_requests < cfg.min_canary_requests:
            note = (
                f"collecting data: {canary_requests} of {cfg.min_canary_requests} canary requests"
            )
            return Decision(
                Verdict.CONTINUE, evidence, note, canary_requests, tuple(warnings), self.controls
            )

        if any(e.harmful for e in evidence):
            return self._on_harm(evidence, canary_requests, warnings)

        errors = evidence[0]
        error_rate = errors.canary_rate or 0.0
        if all(e.non_inferior for e in evidence):
            if error_rate < cfg.max_error_rate_to_promote:
                self._verdict = Verdict.PROMOTE
            else:
                warnings.append(
                    f"not promoting: canary fails {error_rate:.0%} of requests (stable as well)"
                )
        if (
            self._verdict is Verdict.CONTINUE
            and self._compared - self._stage_start >= cfg.max_canary_requests
        ):
            self._verdict = Verdict.INCONCLUSIVE
        return self._decision(self._verdict, evidence, canary_requests, warnings)

    def _on_harm(
        self, evidence: tuple[MetricEvidence, ...], canary_requests: int, warnings: list[str]
    ) -> Decision:
        """Evidence of harm: roll back, unless every harmful metric's evidence rests on a
        burst the guard suspects (then hold, until the stage's cap: inconclusive)."""
        cfg = self.config
        # A metric whose evidence rests on a burst does not roll back on its own; any
        # metric harmful without one does.
        suspects = {e.name: [e.burst] if e.burst else [] for e in evidence if e.harmful}
        task = (
            self._task_guard.suspect(evidence[0].canary_hits, evidence[0].harm_threshold)
            if evidence[0].harmful and cfg.burst_guard.enabled
            else None
        )
        if task:
            suspects[evidence[0].name].append(task)
        warnings.extend(
            f"burst suspected — {name}: {reason}"
            for name, reasons in suspects.items()
            for reason in reasons
        )
        clean = [name for name, reasons in suspects.items() if not reasons]
        if clean or cfg.burst_guard.action == "report":
            self._verdict = Verdict.ROLLBACK
        elif self._compared - self._stage_start >= cfg.max_canary_requests:
            self._verdict = Verdict.INCONCLUSIVE
        return self._decision(self._verdict, evidence, canary_requests, warnings)

    def _decision(
        self,
        verdict: Verdict,
        evidence: tuple[MetricEvidence, ...],
        canary_requests: int,
        warnings: list[str],
    ) -> Decision:
        cfg = self.config
        if verdict is Verdict.ROLLBACK:
            worst = [e for e in evidence if e.harmful] or [evidence[0]]
            why = "roll back: canary is worse than " + "; ".join(
                f"{self._control_of(e.name)} on {e.name}" for e in worst
            )
        elif verdict is Verdict.PROMOTE:
            why = (
                f"promote: canary is not worse than {cfg.promote_margin:g}x "
                f"{self.controls[0]} on every metric"
            )
        elif verdict is Verdict.INCONCLUSIVE:
            why = (
                f"inconclusive after {canary_requests} canary requests (cap "
                f"{cfg.max_canary_requests}): a human should decide"
            )
        elif any(e.harmful for e in evidence):
            why = "holding: the evidence of harm rests on a burst; waiting for it to spread out"
        else:
            why = "continue: not enough evidence either way yet"
        return Decision(verdict, evidence, why, canary_requests, tuple(warnings), self.controls)

    def _control_of(self, metric_name: str) -> str:
        errors_control, latency_control = self.controls
        return errors_control if metric_name == "errors" else latency_control

    def _evidence(self, m: Metric) -> MetricEvidence:
        cfg = self.config
        harm_threshold = 1.0 / m.harm_alpha
        ni_threshold = 1.0 / cfg.promote_alpha
        c_rate = m.canary_hits / m.canary_requests if m.canary_requests else None
        s_rate = m.stable_hits / m.stable_requests if m.stable_requests else None
        e_harm = m.harm.e_value
        e_ni = m.non_inferiority.e_value
        burst = interval_burst(
            cfg.burst_guard, m.harm, m.max_burst_llr, harm_threshold, m.max_burst_hits
        )
        canary_side = "canary"
        if m is not self._metrics[0]:
            index = self._metrics.index(m) - 1
            widened = self.canary_thresholds_s[index]
            if widened != self.thresholds_s[index]:
                canary_side = f"canary (above {widened * 1000:.3g} ms, with tolerance)"
        explanation = (
            f"{m.name}: {canary_side} {m.canary_hits}/{m.canary_requests} ({_pct(c_rate)}) vs "
            f"{self._control_of(m.name)} {m.stable_hits}/{m.stable_requests} ({_pct(s_rate)}); "
            f"harm e={e_harm:.3g} (roll back at {harm_threshold:.3g}), "
            f"not worse than {cfg.promote_margin:g}x e={e_ni:.3g} (promote at {ni_threshold:.3g})"
        )
        return MetricEvidence(
            name=m.name,
            canary_requests=m.canary_requests,
            canary_hits=m.canary_hits,
            stable_requests=m.stable_requests,
            stable_hits=m.stable_hits,
            canary_rate=c_rate,
            canary_interval=wilson(m.canary_hits, m.canary_requests),
            stable_rate=s_rate,
            stable_interval=wilson(m.stable_hits, m.stable_requests),
            e_harm=e_harm,
            harm_threshold=harm_threshold,
            e_non_inferiority=e_ni,
            non_inferiority_threshold=ni_threshold,
            explanation=explanation,
            burst=burst,
        )

    def next_stage(self) -> None:
        """Start a new stage (a rollout step): the harm side goes on, the promotion side
        starts again.

        The harm e-processes keep running over the whole rollout, so one α bounds a false
        rollback however many steps there are (θ0 per batch absorbs the new weights). The
        non-inferiority e-processes restart, so every step has to show on its own data
        that the canary is not worse than the margin; a canary at the margin then passes
        each step with probability at most `promote_alpha`. A PROMOTE or INCONCLUSIVE
        verdict is cleared and the cap counts again from here; a ROLLBACK stays.
        """
        if self._verdict is Verdict.ROLLBACK:
            return
        cfg = self.config
        for metric in self._metrics:
            metric.non_inferiority = RateRatioEProcess.new(
                cfg.promote_margin, cfg.promote_ratios, cfg.promote_weights
            )
        self._stage_start = self._compared
        self._verdict = Verdict.CONTINUE

    # ---- persistence

    def to_dict(self) -> dict[str, Any]:
        """The whole state as JSON-able data; `from_dict` continues exactly."""
        return {
            "state_version": STATE_VERSION,
            "config": self.config.to_dict(),
            "thresholds_s": None if self._thresholds is None else list(self._thresholds),
            "metrics": [m.to_dict() for m in self._metrics],
            "tasks": self._task_guard.to_dict(),
            "batches": self._batches,
            "verdict": str(self._verdict),
            "stage_start": self._stage_start,
            "compared": self._compared,
            "baseline": self._baseline,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Judge:
        if doc.get("state_version") != STATE_VERSION:
            raise ValueError(f"unsupported judge state version {doc.get('state_version')!r}")
        config = dict(doc["config"])
        # A state saved before these settings existed continues as it was judged: no
        # latency tolerance, no tempering (new defaults must not change a running test).
        for key, before in _SETTINGS_BEFORE_DEFAULTS.items():
            config.setdefault(key, before)
        judge = cls(JudgeConfig.from_dict(config))
        thresholds = doc["thresholds_s"]
        judge._thresholds = None if thresholds is None else tuple(float(t) for t in thresholds)
        judge._metrics = [Metric.from_dict(m) for m in doc["metrics"]]
        judge._task_guard = TaskGuard.from_dict(doc.get("tasks", {}))
        judge._batches = int(doc["batches"])
        judge._verdict = Verdict(doc["verdict"])
        judge._stage_start = int(doc.get("stage_start", 0))
        seen = judge._metrics[0].canary_requests if judge._metrics else 0
        judge._compared = int(doc.get("compared", seen))
        judge._baseline = bool(doc.get("baseline", False))
        return judge


def _pct(rate: float | None) -> str:
    return "no data" if rate is None else f"{rate:.2%}"
