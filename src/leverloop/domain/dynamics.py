"""How any lever moves through time: one cadence-invariant step, bounded and rate-limited.

Each lever lives in a space where "neutral" is 0 and moves are additive:

* multipliers in log space (``u = ln m``), so nudges compose multiplicatively as the lever
  map's ``mult * (1 + k ...)`` does;
* bar counts and thresholds in their own units.

In that space every lever follows ``du/dt = lambda * (target - u)`` with
``lambda = ln 2 / half_life``: it approaches its evidence's target and, when the evidence
goes away (target 0 for multipliers and bars), decays back to neutral with the lesson's
half-life. A run covering ``dt`` hours applies the exact solution with the target averaged
over the interval (trapezoid of the previous and the current target), so hourly and daily
runs over the same outcomes agree up to how the evidence was sampled. Clamping to the bounds
at the end of the step is exact: the path between ``u`` and the target is monotone.

On top, a rate limit: a lever never moves more than its registry ``max_step`` per day of
elapsed time (a rate, so it does not depend on the cadence either).
"""

from __future__ import annotations

import math

from leverloop.domain.levers import Lever, LeverKind

LN2 = math.log(2.0)
MIN_STEP_DAYS = 1.0 / 24.0  # a run always may move at least one hour's worth


def to_space(lever: Lever, value: float) -> float:
    if lever.kind is LeverKind.MULTIPLIER:
        return math.log(lever.bound(value))
    return lever.bound(value)


def from_space(lever: Lever, u: float) -> float:
    if lever.kind is LeverKind.MULTIPLIER:
        return lever.bound(math.exp(max(min(u, 50.0), -50.0)))
    return lever.bound(u)


def step(
    lever: Lever,
    value: float,
    target_before: float,
    target_now: float,
    dt_hours: float,
    halflife_hours: float,
) -> float:
    """Move ``value`` toward the (space) target over ``dt_hours``; bounded and rate-limited.

    Non-finite inputs never propagate: a NaN target counts as no evidence (0), a NaN value as
    neutral. Bar levers are kept continuous here; they are rounded when published.
    """
    target_before = target_before if math.isfinite(target_before) else 0.0
    target_now = target_now if math.isfinite(target_now) else 0.0
    u = to_space(lever, value)
    if not (dt_hours > 0.0 and math.isfinite(dt_hours)):
        return from_space(lever, u)  # no time passed: nothing moves (idempotent)
    lam = LN2 / max(halflife_hours, 1e-6) if math.isfinite(halflife_hours) else LN2 / 1e-6
    decay = math.exp(-lam * dt_hours)
    target = 0.5 * (target_before + target_now)
    moved = from_space(lever, u * decay + target * (1.0 - decay))
    limit = lever.max_step * max(dt_hours / 24.0, MIN_STEP_DAYS)
    start = from_space(lever, u)
    return min(start + limit, max(start - limit, moved))


def is_neutral(lever: Lever, value: float, epsilon: float) -> bool:
    if lever.neutral is None:
        return False
    return abs(value - lever.neutral) < epsilon
