"""One v5 refit over the daily series: what each estimator found and what the lever engine takes from it.

Pure: series in, :class:`MetaFit` out. The pipeline loads the series, persists the result with
the run's commit and turns it into artifacts.

* 5.2 half-lives set each lesson's ``decay_halflife_hours`` and its *persistence*: a pattern
  whose edge lasts earns a stronger nudge, ``persistence = clip(sqrt(h / h_default), 0.5, 1.5)``;
  one that fades fast earns a weaker one and decays sooner. Patterns without a usable fit keep
  the default half-life and persistence 1.
* 5.3 factors: members of a factor with more than one pattern share their evidence; the engine
  caps their combined capital exposure (``domain/exposure.py``).
* 5.1 regime weights: a new version of ``factor_weights`` for the next dbt build.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from leverloop.learning.factors import (
    FactorMember,
    FactorPolicy,
    daily_residuals,
    group_factors,
    participation,
)
from leverloop.learning.halflife import HalfLifeFit, HalfLifePolicy, fit_half_life
from leverloop.learning.regime_weights import (
    FACTORS,
    RegimeWeightPolicy,
    WeightFit,
    fit_regime_weights,
    week_pairs,
)
from leverloop.learning.series import DailySeries, PatternKey

PERSISTENCE_RANGE = (0.5, 1.5)


@dataclass(frozen=True)
class MetaPolicy:
    halflife: HalfLifePolicy = field(default_factory=HalfLifePolicy)
    factors: FactorPolicy = field(default_factory=FactorPolicy)
    weights: RegimeWeightPolicy = field(default_factory=RegimeWeightPolicy)
    default_halflife_hours: float = 720.0


@dataclass(frozen=True)
class HalfLife:
    key: PatternKey
    fit: HalfLifeFit
    applied_hours: float  # the lesson's decay_halflife_hours
    persistence: float  # multiplies the strength of the pattern's capital nudges


@dataclass(frozen=True)
class MetaFit:
    halflives: dict[PatternKey, HalfLife]
    factors: list[FactorMember]
    weights: list[WeightFit]
    prior_global: dict[str, float]  # the global weights the 5.1 fit started from

    def halflife_hours(self) -> dict[PatternKey, float]:
        return {k: h.applied_hours for k, h in self.halflives.items()}

    def persistence(self) -> dict[PatternKey, float]:
        return {k: h.persistence for k, h in self.halflives.items()}

    def factor_of(self) -> dict[PatternKey, str]:
        """Pattern -> factor id, for factors of more than one pattern (the ones that dedupe)."""
        return {m.key: m.factor_id for m in self.factors if m.factor_size > 1}

    def factor_groups(self) -> dict[str, list[FactorMember]]:
        groups: dict[str, list[FactorMember]] = {}
        for m in self.factors:
            if m.factor_size > 1:
                groups.setdefault(m.factor_id, []).append(m)
        return groups

    def effective_patterns(self, factor_id: str) -> float:
        return participation([m.loading for m in self.factor_groups().get(factor_id, [])])


def applied_halflife(fit: HalfLifeFit, default_hours: float) -> tuple[float, float]:
    """(decay half-life in hours, persistence) the engine uses for a fit."""
    if not fit.usable or fit.half_life_days is None:
        return default_hours, 1.0
    hours = fit.half_life_days * 24.0
    low, high = PERSISTENCE_RANGE
    return hours, min(high, max(low, math.sqrt(hours / default_hours)))


def _parts(
    series: Mapping[tuple[PatternKey, str], DailySeries],
) -> dict[PatternKey, list[DailySeries]]:
    """Each pattern's series to fit: its regime parts, or its root series when it has none (DM)."""
    parts: dict[PatternKey, list[DailySeries]] = {}
    roots: dict[PatternKey, DailySeries] = {}
    for (key, regime), s in series.items():
        if regime == "*":
            roots[key] = s
        else:
            parts.setdefault(key, []).append(s)
    return {
        key: sorted(parts.get(key, []), key=lambda s: s.regime) or [roots[key]]
        for key in sorted(roots)
    }


def quiet_deltas(
    parts: Mapping[PatternKey, list[DailySeries]], quiet: set[PatternKey]
) -> dict[tuple[PatternKey, str], np.ndarray]:
    """Each series' daily mean against a baseline of the *quiet* patterns of its segment.

    The segment mean the marts subtract includes every other pattern's edge; when some of
    those decay too, the difference decays at a blend of their rates and the fitted half-life
    is biased toward theirs. The baseline here is the daily mean R/R of the segment's patterns
    without an edge of their own (minus the pattern itself); days without one are dropped.
    """
    span = 1 + max((int(s.day.max()) for ss in parts.values() for s in ss), default=0)
    totals: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}
    for key, members in parts.items():
        if key not in quiet:
            continue
        for s in members:
            n, total = totals.setdefault(
                (key[0], key[2], s.regime), (np.zeros(span), np.zeros(span))
            )
            n[s.day] += s.n
            total[s.day] += s.mean * s.n
    out = {}
    for key, members in parts.items():
        for s in members:
            n, total = totals.get((key[0], key[2], s.regime), (np.zeros(span), np.zeros(span)))
            n, total = n[s.day].copy(), total[s.day].copy()
            if key in quiet:
                n -= s.n
                total -= s.mean * s.n
            with np.errstate(invalid="ignore", divide="ignore"):
                out[(key, s.regime)] = np.where(n > 0, s.mean - total / n, np.nan)
    return out


def fit_halflives(
    series: Mapping[tuple[PatternKey, str], DailySeries], policy: MetaPolicy
) -> dict[PatternKey, HalfLife]:
    """One half-life per pattern, shared by its regimes (each regime its own amplitude).

    Two passes: against the marts' segment means, to find which patterns have an edge at
    all; then against a baseline of the patterns without one (:func:`quiet_deltas`). A
    pattern whose segment has no quiet pattern keeps its first-pass fit.
    """
    parts = _parts(series)
    first = {
        key: fit_half_life([(s.day, s.delta, s.n, s.var) for s in members], policy.halflife)
        for key, members in parts.items()
    }
    quiet = {key for key, fit in first.items() if not fit.usable}
    deltas = quiet_deltas(parts, quiet)
    out = {}
    for key, members in parts.items():
        fit = fit_half_life(
            [(s.day, deltas[(key, s.regime)], s.n, s.var) for s in members], policy.halflife
        )
        if fit.status == "insufficient":
            fit = first[key]
        hours, persistence = applied_halflife(fit, policy.default_halflife_hours)
        out[key] = HalfLife(key, fit, hours, persistence)
    return out


def refit(
    series: Mapping[tuple[PatternKey, str], DailySeries],
    current_global: Mapping[str, float],
    policy: MetaPolicy | None = None,
) -> MetaFit:
    policy = policy or MetaPolicy()
    keys, residuals = daily_residuals(dict(series))
    members, _ = group_factors(keys, residuals, policy.factors)
    prior = np.array([current_global.get(f, 0.0) for f in FACTORS])
    weights = fit_regime_weights(week_pairs(series), prior, policy.weights)
    return MetaFit(
        halflives=fit_halflives(series, policy),
        factors=members,
        weights=weights,
        prior_global=dict(zip(FACTORS, prior.tolist(), strict=True)),
    )
