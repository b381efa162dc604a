"""5.1 Regime factor weights: which edge factors predict that an edge persists, per regime.

The edge model multiplies a cell's shrunk edge by ``exp(sum_f w_f z_f)`` over four factor
scores in [-1, 1]: coherence, time efficiency, recurrence and variance (``int_cell_edges``).
Here the weights are fitted to predict the *next* week's R/R delta from this week's::

    delta[k+1] ~ delta[k] * exp(b + sum_f w_f z_f[k])

per action category: the global weights from root cells, and each regime's from its
``{regime: r}`` cells, shrunk toward the global ones by a ridge penalty whose weight does not
grow with the data, so a thin regime stays near the global weights and a well-observed one
can move away. The intercept ``b`` absorbs the general regression to the mean and is not
stored (shrinkage already accounts for it).

Confidence is measured out of sample with expanding-window time-series cross-validation:
for every week from ``min_train_weeks`` on, fit on the pairs whose target week came before
it and score its pairs; the confidence is the share of those folds in which the fitted weights
beat the reference (the global weights for a regime, the current weights for the globals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from leverloop.learning.series import DailySeries

FACTORS: tuple[str, ...] = ("coherence", "time_efficiency", "recurrence", "variance")


@dataclass(frozen=True)
class RegimeWeightPolicy:
    ridge: float = 25.0  # prior strength, in pairs: a regime needs many more pairs to move away
    min_pairs: int = 30
    min_train_weeks: int = 4
    bound: float = 2.0  # |w| at most this


@dataclass(frozen=True)
class WeekPair:
    regime: str
    category: str
    target_week: int
    z: np.ndarray  # factor scores of week k
    delta_now: float
    delta_next: float
    weight: float


@dataclass(frozen=True)
class WeightFit:
    regime: str
    category: str
    weights: dict[str, float]
    confidence: float
    n_pairs: int
    folds: int


def _week_stats(s: DailySeries, week: int) -> dict[str, float] | None:
    mask = (s.day // 7) == week
    if not mask.any():
        return None
    n, sn = s.n[mask], s.segment_n[mask]
    sum_rr, seg_sum = (s.mean * s.n)[mask], (s.segment_mean * s.segment_n)[mask]
    total, seg_total = float(n.sum()), float(sn.sum())
    mean, seg_mean = float(sum_rr.sum() / total), float(seg_sum.sum() / seg_total)
    delta = mean - seg_mean
    day_delta = s.mean[mask] - s.segment_mean[mask]
    side = np.sign(delta) if delta != 0 else 0.0
    coherence = float(np.mean(np.sign(day_delta) == side)) if side else 0.5

    def pooled(var: np.ndarray, means: np.ndarray, counts: np.ndarray, grand: float) -> float:
        within = np.nan_to_num(var) * np.maximum(counts - 1, 0)
        between = counts * (means - grand) ** 2
        return float((within.sum() + between.sum()) / max(counts.sum() - 1, 1))

    sd = math.sqrt(max(pooled(s.var[mask], s.mean[mask], n, mean), 1e-12))
    seg_sd = math.sqrt(max(pooled(s.segment_var[mask], s.segment_mean[mask], sn, seg_mean), 1e-12))
    hold = float((s.hold * s.n)[mask].sum() / total)
    seg_hold = float((s.segment_hold * s.segment_n)[mask].sum() / seg_total)
    z = np.array(
        [
            2.0 * coherence - 1.0,
            math.tanh(math.log(max(seg_hold, 1e-6) / max(hold, 1e-6))),
            2.0 * min(1.0, float(mask.sum()) / 7.0) - 1.0,
            math.tanh(math.log(seg_sd / sd)),
        ]
    )
    return {"n": total, "delta": delta, "z": z, "se": sd / math.sqrt(total)}


def week_pairs(
    series: Mapping[tuple, DailySeries], min_n: int = 10, min_z: float = 1.5
) -> list[WeekPair]:
    """(week k -> week k+1) pairs of every series with enough outcomes in both weeks and a
    material edge in week k (|delta| >= min_z standard errors): whether an edge the loop would
    act on persists is what the weights are for; pure-noise weeks carry no information on it."""
    pairs: list[WeekPair] = []
    for s in series.values():
        weeks = sorted(set((s.day // 7).tolist()))
        stats = {w: _week_stats(s, w) for w in weeks}
        for w in weeks:
            now, nxt = stats.get(w), stats.get(w + 1)
            if not now or not nxt or now["n"] < min_n or nxt["n"] < min_n:
                continue
            if abs(now["delta"]) < min_z * now["se"]:
                continue
            pairs.append(
                WeekPair(
                    regime=s.regime,
                    category=s.key[2],
                    target_week=w + 1,
                    z=now["z"],
                    delta_now=now["delta"],
                    delta_next=nxt["delta"],
                    weight=1.0 / (1.0 / now["n"] + 1.0 / nxt["n"]),
                )
            )
    return pairs


def _fit(pairs: list[WeekPair], prior: np.ndarray, policy: RegimeWeightPolicy) -> np.ndarray:
    z = np.array([p.z for p in pairs])
    now = np.array([p.delta_now for p in pairs])
    nxt = np.array([p.delta_next for p in pairs])
    w = np.array([p.weight for p in pairs])
    scale = math.sqrt(float(np.sum(w * nxt * nxt)) / float(np.sum(w))) or 1.0
    root_w = np.sqrt(w / w.sum())
    penalty = math.sqrt(policy.ridge / len(pairs))

    def residuals(theta: np.ndarray) -> np.ndarray:
        b, weights = theta[0], theta[1:]
        predicted = now * np.exp(b + z @ weights)
        return np.concatenate([root_w * (nxt - predicted) / scale, penalty * (weights - prior)])

    start = np.concatenate([[0.0], prior])
    bounds = ([-5.0, *[-policy.bound] * len(FACTORS)], [5.0, *[policy.bound] * len(FACTORS)])
    return least_squares(residuals, start, bounds=bounds).x


def _mse(pairs: list[WeekPair], theta: np.ndarray) -> float:
    z = np.array([p.z for p in pairs])
    now = np.array([p.delta_now for p in pairs])
    nxt = np.array([p.delta_next for p in pairs])
    w = np.array([p.weight for p in pairs])
    return float(np.sum(w * (nxt - now * np.exp(theta[0] + z @ theta[1:])) ** 2) / np.sum(w))


def _cross_validate(
    pairs: list[WeekPair], prior: np.ndarray, policy: RegimeWeightPolicy
) -> dict[str, tuple[float, int]]:
    """Per category: (share of folds won by the fitted weights over ``prior``, folds)."""
    weeks = sorted({p.target_week for p in pairs})
    tally: dict[str, list[int]] = {}
    for week in weeks:
        train = [p for p in pairs if p.target_week < week]
        test = [p for p in pairs if p.target_week == week]
        if (
            len({p.target_week for p in train}) < policy.min_train_weeks
            or len(train) < policy.min_pairs
        ):
            continue
        fitted = _fit(train, prior, policy)
        reference = np.concatenate(
            [[fitted[0]], prior]
        )  # same intercept: only the weights compared
        for category in sorted({p.category for p in test}):
            part = [p for p in test if p.category == category]
            if len(part) < 3:
                continue
            won, total = tally.setdefault(category, [0, 0])
            tally[category] = [won + (_mse(part, fitted) < _mse(part, reference)), total + 1]
    return {c: (won / total, total) for c, (won, total) in tally.items()}


def fit_regime_weights(
    pairs: list[WeekPair], current_global: np.ndarray, policy: RegimeWeightPolicy | None = None
) -> list[WeightFit]:
    """Global weights (prior: the current ones), then each regime's (prior: the new global ones).

    Categories are pooled: a regime's weights are fitted on every category's cells of that
    regime (there is rarely enough data per category and regime), and the confidence is
    reported per category, from the cross-validation folds' pairs of that category.
    """
    policy = policy or RegimeWeightPolicy()
    # stored weights may lie outside a (since tightened) bound: start from the nearest allowed
    prior = np.clip(np.asarray(current_global, dtype=float), -policy.bound, policy.bound)
    fits: list[WeightFit] = []
    categories = sorted({p.category for p in pairs})
    root = [p for p in pairs if p.regime == "*"]
    global_w = _fit(root, prior, policy)[1:] if len(root) >= policy.min_pairs else prior
    if len(root) >= policy.min_pairs:
        fits.extend(_per_category("*", root, global_w, prior, categories, policy))
    for regime in sorted({p.regime for p in pairs if p.regime != "*"}):
        members = [p for p in pairs if p.regime == regime]
        if len(members) < policy.min_pairs:
            continue
        weights = _fit(members, global_w, policy)[1:]
        fits.extend(_per_category(regime, members, weights, global_w, categories, policy))
    return fits


def _per_category(
    regime: str,
    pairs: list[WeekPair],
    weights: np.ndarray,
    reference: np.ndarray,
    categories: list[str],
    policy: RegimeWeightPolicy,
) -> list[WeightFit]:
    scores = _cross_validate(pairs, reference, policy)
    named = dict(zip(FACTORS, weights.tolist(), strict=True))
    out = []
    for category in categories:
        n = sum(1 for p in pairs if p.category == category)
        if n:
            confidence, folds = scores.get(category, (0.0, 0))
            out.append(WeightFit(regime, category, named, confidence, n, folds))
    return out
