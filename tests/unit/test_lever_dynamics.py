"""Lever dynamics and the capital rule: bounded, NaN-proof, decaying toward neutral, cadence-invariant, idempotent."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from leverloop.domain import capital
from leverloop.domain.capital import CapitalPolicy
from leverloop.domain.dynamics import from_space, step, to_space
from leverloop.domain.levers import LEVERS, REGISTRY, LeverKind

POLICY = CapitalPolicy()
levers = st.sampled_from(LEVERS)
multipliers = st.sampled_from([lv for lv in LEVERS if lv.kind is LeverKind.MULTIPLIER])
anything = st.floats(allow_nan=True, allow_infinity=True)
hours = st.floats(min_value=0, max_value=24 * 120, allow_nan=False)
halflives = st.floats(min_value=24, max_value=24 * 120, allow_nan=False)


def _value_in(lever, fraction: float) -> float:
    return lever.low + (lever.high - lever.low) * fraction


@given(levers, st.floats(0, 1), anything, anything, anything, anything)
def test_a_step_never_leaves_bounds_whatever_the_inputs(lever, fraction, t1, t2, dt, hl):
    out = step(lever, _value_in(lever, fraction), t1, t2, dt, hl)
    assert math.isfinite(out)
    assert lever.low <= out <= lever.high


@given(levers, anything, anything, anything, anything)
def test_non_finite_values_never_propagate(lever, value, t, dt, hl):
    out = step(lever, value, t, t, dt, hl)
    assert math.isfinite(out) and lever.low <= out <= lever.high


@given(multipliers, st.floats(0, 1), hours, halflives)
def test_without_evidence_multipliers_decay_monotonically_toward_neutral(lever, fraction, dt, hl):
    start = _value_in(lever, fraction)
    once = step(lever, start, 0.0, 0.0, dt, hl)
    twice = step(lever, once, 0.0, 0.0, dt, hl)
    assert abs(math.log(twice)) <= abs(math.log(once)) + 1e-12
    assert abs(math.log(once)) <= abs(math.log(start)) + 1e-12
    assert (once - 1.0) * (start - 1.0) >= 0  # never overshoots neutral


@given(levers, st.floats(0, 1), st.floats(-2, 2), halflives)
def test_zero_elapsed_time_changes_nothing(lever, fraction, target, hl):
    value = _value_in(lever, fraction)
    assert step(lever, value, target, target, 0.0, hl) == lever.bound(value)


@given(
    multipliers,
    st.floats(0.2, 0.8),
    st.floats(-0.6, 0.6),
    st.floats(0.2, 1.0),
    st.floats(
        min_value=24 * 21, max_value=24 * 120
    ),  # slow enough that the daily rate limit does not bind
    st.integers(1, 30),
)
def test_hourly_and_daily_runs_agree_under_steady_evidence(lever, fraction, edge, conf, hl, days):
    tgt = capital.target(lever, edge, capital.evidence_strength(edge, conf, 1.0, POLICY))
    hourly = daily = _value_in(lever, fraction)
    for _ in range(24 * days):
        hourly = step(lever, hourly, tgt, tgt, 1.0, hl)
    for _ in range(days):
        daily = step(lever, daily, tgt, tgt, 24.0, hl)
    assert abs(hourly - daily) < 1e-6


@given(multipliers, st.floats(-0.6, 0.6), st.floats(0.2, 1.0))
def test_a_steady_edge_settles_strictly_inside_the_bounds_on_its_side(lever, edge, conf):
    strength = capital.evidence_strength(edge, conf, 1.0, POLICY)
    value = 1.0
    for _ in range(400):  # 400 days with a 30-day half-life: at equilibrium
        value = step(
            lever,
            value,
            capital.target(lever, edge, strength),
            capital.target(lever, edge, strength),
            24.0,
            720.0,
        )
    assert lever.low < value < lever.high or edge == 0
    if abs(edge) * conf > 0.01:
        assert (value - 1.0) * edge > 0


def test_equilibria_are_small_for_noise_and_meaningful_for_real_edges():
    size = REGISTRY["size_mult"]

    def settle(edge: float) -> float:
        return math.exp(
            capital.target(size, edge, capital.evidence_strength(edge, 1.0, 1.0, POLICY))
        )

    assert abs(settle(0.03) - 1.0) < 0.045
    assert 1.10 < settle(0.1) < 1.16
    assert 1.30 < settle(0.3) < 1.40
    assert settle(-0.3) < 0.7
    assert capital.evidence_strength(float("nan"), 1.0, 1.0, POLICY) == 0.0


@given(
    multipliers,
    st.floats(0.0, 1.0),
    st.floats(-1.2, 1.2),
    st.floats(min_value=1, max_value=24 * 120),
)
def test_where_the_rate_limit_binds_cadences_still_agree_within_one_days_step(
    lever, fraction, target, hl
):
    hourly = daily = _value_in(lever, fraction)
    for _ in range(24 * 10):
        hourly = step(lever, hourly, target, target, 1.0, hl)
    for _ in range(10):
        daily = step(lever, daily, target, target, 24.0, hl)
    assert abs(hourly - daily) <= lever.max_step + 1e-9


def test_moves_are_rate_limited_per_day_of_elapsed_time():
    size = REGISTRY["size_mult"]
    far = math.log(1.5)
    one_day = step(size, 1.0, far, far, 24.0, 1.0)  # a 1-hour half-life would jump to the target
    assert one_day == 1.0 + size.max_step
    hourly = 1.0
    for _ in range(24):
        hourly = step(size, hourly, far, far, 1.0, 1.0)
    assert abs(hourly - one_day) < 1e-9


@given(levers, st.floats(0, 1))
def test_space_round_trip(lever, fraction):
    value = _value_in(lever, fraction)
    assert math.isclose(from_space(lever, to_space(lever, value)), value, rel_tol=1e-12)


def test_levers_are_sized_by_the_edges_lower_confidence_bound():
    precise = capital.evidence_strength(0.2, 1.0, 1.0, POLICY, edge_sd=0.01)
    noisy = capital.evidence_strength(0.2, 1.0, 1.0, POLICY, edge_sd=0.15)
    swamped = capital.evidence_strength(0.05, 1.0, 1.0, POLICY, edge_sd=0.06)
    assert precise > noisy > 0.0 == swamped
    assert capital.evidence_strength(0.2, 1.0, 1.0, POLICY, edge_sd=float("nan")) == 0.0
