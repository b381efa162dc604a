"""Monitoring: does each published override still earn its place? Pure statistics, no I/O.

Each override (one lesson) is measured causally against the runtime's holdout: the *applied*
arm is the outcomes of decisions it was applied to, the *holdout* arm the outcomes of
decisions it matched but withheld because their position was held out (a hashed, random
fraction). Their difference in mean R/R is the override's effect, with a Welch confidence
interval (unequal variances, Welch-Satterthwaite degrees of freedom, exact Student-t
quantile).

One monitoring run assesses many overrides at once, so the interval of each is widened to a
simultaneous level (Bonferroni over the overrides with enough data): at 95% the chance that
*any* helpful or neutral override of the run is disabled by noise stays below 5%.

Verdicts, in order:

* ``disable``: it was disabled before (sticky: a disabled override gets no new applied
  outcomes, so re-enabling it is an operator decision), or the whole interval is below 0
  (it measurably hurts R/R);
* ``keep``: too little data in either arm to say anything (``min_n``);
* ``decay_faster``: the effect is at or below ``min_effect`` (it does not add value);
* ``keep``: otherwise (it helps, or leans positive without significance yet).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist
from typing import Any, Literal

Verdict = Literal["keep", "decay_faster", "disable"]
VERDICTS: tuple[str, ...] = ("keep", "decay_faster", "disable")


@dataclass(frozen=True)
class ArmStats:
    n: int
    mean: float
    var: float  # sample variance (n - 1 in the denominator); 0 when n < 2


@dataclass(frozen=True)
class LessonSample:
    """The outcomes attributed to one override over a window, split by arm."""

    lesson_id: str
    module: str
    pattern_key: str
    action_category: str
    scope: dict[str, str]
    applied: ArmStats
    holdout: ArmStats


@dataclass(frozen=True)
class MonitoringPolicy:
    confidence: float = 0.95
    min_n: int = 30  # outcomes needed in each arm before a verdict other than keep
    simultaneous: bool = True  # Bonferroni across the overrides assessed in one run
    min_effect: float = 0.0  # effects at or below this (in R) do not add value

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if self.min_n < 2:
            raise ValueError("min_n must be at least 2")


@dataclass(frozen=True)
class Interval:
    effect: float
    se: float
    df: float
    low: float
    high: float
    level: float


@dataclass(frozen=True)
class OverrideEffect:
    lesson_id: str
    module: str
    pattern_key: str
    action_category: str
    scope: dict[str, str]
    n_applied: int
    n_holdout: int
    mean_applied: float | None
    mean_holdout: float | None
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    ci_level: float | None
    verdict: str
    reason: str


# ------------------------------------------------------------------------- Student t


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz evaluation)."""
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return result


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(df):
        return 1.0 - NormalDist().cdf(t)
    t2 = t * t
    if t2 > df:  # small tail: I_x(df/2, 1/2) at x = df / (df + t^2) directly
        tail = 0.5 * regularized_beta(df / 2.0, 0.5, df / (df + t2))
    else:  # near the centre: through the complement, without forming 1 - x
        tail = 0.5 - 0.5 * regularized_beta(0.5, df / 2.0, t2 / (df + t2))
    return tail if t >= 0 else 1.0 - tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on the exact tail; ~1e-10 accurate)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if math.isinf(df):
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    target = 1.0 - p
    low, high = 0.0, 1.0
    while t_sf(high, df) > target:
        low, high = high, high * 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_sf(mid, df) > target:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


# ------------------------------------------------------------------------- effects


def welch_interval(applied: ArmStats, holdout: ArmStats, level: float) -> Interval | None:
    """Mean(applied) - mean(holdout) with a two-sided ``level`` Welch interval; None if n < 2."""
    if applied.n < 2 or holdout.n < 2:
        return None
    ua, uh = max(applied.var, 0.0) / applied.n, max(holdout.var, 0.0) / holdout.n
    effect = applied.mean - holdout.mean
    se = math.sqrt(ua + uh)
    if se == 0.0:
        return Interval(effect, 0.0, math.inf, effect, effect, level)
    df = (ua + uh) ** 2 / (ua * ua / (applied.n - 1) + uh * uh / (holdout.n - 1))
    half = t_quantile(0.5 + level / 2.0, df) * se
    return Interval(effect, se, df, effect - half, effect + half, level)


def _fmt(interval: Interval) -> str:
    return (
        f"ΔR/R {interval.effect:+.3f}, {interval.level:.2%} CI "
        f"[{interval.low:+.3f}, {interval.high:+.3f}]"
    )


def assess(
    samples: Iterable[LessonSample],
    policy: MonitoringPolicy,
    previous: Mapping[str, str] | None = None,
) -> list[OverrideEffect]:
    """One verdict per sampled override (see the module docstring for the rules)."""
    samples = sorted(samples, key=lambda s: s.lesson_id)
    previous = previous or {}
    enough = [s for s in samples if s.applied.n >= policy.min_n and s.holdout.n >= policy.min_n]
    alpha = 1.0 - policy.confidence
    if policy.simultaneous and enough:
        alpha /= len(enough)
    level = 1.0 - alpha
    out = []
    for s in samples:
        interval = welch_interval(s.applied, s.holdout, level)
        sufficient = s.applied.n >= policy.min_n and s.holdout.n >= policy.min_n
        if previous.get(s.lesson_id) == "disable":
            verdict, reason = "disable", "remains disabled (re-enabling is an operator decision)"
        elif not sufficient or interval is None:
            verdict = "keep"
            reason = (
                f"insufficient data: n_applied={s.applied.n}, n_holdout={s.holdout.n} "
                f"(need >= {policy.min_n} each)"
            )
        elif interval.high < 0.0:
            verdict, reason = "disable", f"harmful: {_fmt(interval)} entirely below 0"
        elif interval.effect <= policy.min_effect:
            verdict = "decay_faster"
            reason = f"no measurable benefit: {_fmt(interval)}, effect <= {policy.min_effect:g}"
        elif interval.low > 0.0:
            verdict, reason = "keep", f"helps: {_fmt(interval)} entirely above 0"
        else:
            verdict, reason = "keep", f"leans positive, not yet significant: {_fmt(interval)}"
        out.append(
            OverrideEffect(
                lesson_id=s.lesson_id,
                module=s.module,
                pattern_key=s.pattern_key,
                action_category=s.action_category,
                scope=dict(s.scope),
                n_applied=s.applied.n,
                n_holdout=s.holdout.n,
                mean_applied=s.applied.mean if s.applied.n else None,
                mean_holdout=s.holdout.mean if s.holdout.n else None,
                effect=interval.effect if interval else None,
                ci_low=interval.low if interval else None,
                ci_high=interval.high if interval else None,
                ci_level=interval.level if interval else None,
                verdict=verdict,
                reason=reason,
            )
        )
    return out


# ------------------------------------------------------------------------- for the engine


@dataclass(frozen=True)
class VerdictRow:
    lesson_id: str
    verdict: str
    as_of: datetime
    effect_id: int  # insertion order breaks ties between runs with the same as_of


def latest_verdicts(rows: Iterable[VerdictRow | Mapping[str, Any]]) -> dict[str, str]:
    """{lesson_id: its latest verdict} from verdict rows of any number of monitoring runs.

    The lever engine must not publish a lesson whose latest verdict is ``disable`` and uses a
    shorter half-life for ``decay_faster``.
    """
    best: dict[str, tuple[datetime, int, str]] = {}
    for row in rows:
        r = row if isinstance(row, VerdictRow) else VerdictRow(**dict(row))
        if r.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {r.verdict!r} for lesson {r.lesson_id}")
        held = best.get(r.lesson_id)
        if held is None or (r.as_of, r.effect_id) > held[:2]:
            best[r.lesson_id] = (r.as_of, r.effect_id, r.verdict)
    return {lesson: verdict for lesson, (_, _, verdict) in sorted(best.items())}
