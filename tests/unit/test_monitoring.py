"""Monitoring statistics: exact t quantiles, Welch intervals, verdict rules, latest verdicts."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from leverloop.domain.monitoring import (
    ArmStats,
    LessonSample,
    MonitoringPolicy,
    VerdictRow,
    assess,
    latest_verdicts,
    t_quantile,
    welch_interval,
)


@given(st.floats(0.5001, 0.999999), st.floats(1.0, 1e5))
def test_t_quantile_matches_scipy(p, df):
    expected = stats.t.ppf(p, df)
    assert t_quantile(p, df) == pytest.approx(expected, rel=1e-7, abs=1e-9)
    assert t_quantile(1 - p, df) == pytest.approx(-expected, rel=1e-7, abs=1e-9)


def arm(values: list[float]) -> ArmStats:
    return ArmStats(len(values), statistics.fmean(values), statistics.variance(values))


samples = st.lists(st.floats(-5, 5), min_size=3, max_size=40).filter(
    lambda xs: statistics.variance(xs) > 1e-6
)


@given(samples, samples, st.sampled_from((0.9, 0.95, 0.999)))
def test_welch_interval_matches_scipy(applied, holdout, level):
    interval = welch_interval(arm(applied), arm(holdout), level)
    reference = stats.ttest_ind(applied, holdout, equal_var=False).confidence_interval(level)
    assert interval is not None
    assert interval.effect == pytest.approx(statistics.fmean(applied) - statistics.fmean(holdout))
    assert interval.low == pytest.approx(reference.low, rel=1e-6, abs=1e-9)
    assert interval.high == pytest.approx(reference.high, rel=1e-6, abs=1e-9)


def test_welch_interval_needs_two_outcomes_per_arm_and_handles_no_spread():
    assert welch_interval(ArmStats(1, 0.0, 0.0), ArmStats(50, 0.0, 1.0), 0.95) is None
    flat = welch_interval(ArmStats(5, 1.0, 0.0), ArmStats(5, 0.5, 0.0), 0.95)
    assert flat is not None and (flat.low, flat.high) == (0.5, 0.5)


def sample(lesson: str, applied: ArmStats, holdout: ArmStats) -> LessonSample:
    return LessonSample(lesson, "pm", "pm.p", "entry", {"regime": "dip"}, applied, holdout)


def by_lesson(effects):
    return {e.lesson_id: e for e in effects}


def test_verdicts_disable_harm_decay_the_useless_and_keep_the_rest():
    policy = MonitoringPolicy(simultaneous=False)
    out = by_lesson(
        assess(
            [
                sample("harm", ArmStats(400, -0.5, 1.0), ArmStats(100, 0.0, 1.0)),
                sample("flat", ArmStats(400, -0.02, 1.0), ArmStats(100, 0.0, 1.0)),
                sample("good", ArmStats(400, 0.5, 1.0), ArmStats(100, 0.0, 1.0)),
                sample("maybe", ArmStats(400, 0.05, 1.0), ArmStats(100, 0.0, 1.0)),
                sample("few", ArmStats(400, -3.0, 1.0), ArmStats(10, 0.0, 1.0)),
            ],
            policy,
        )
    )
    assert out["harm"].verdict == "disable" and out["harm"].ci_high < 0
    assert out["harm"].reason.startswith("harmful: ΔR/R -0.500")
    assert out["flat"].verdict == "decay_faster" and out["flat"].ci_low < 0 < out["flat"].ci_high
    assert out["good"].verdict == "keep" and out["good"].ci_low > 0
    assert out["maybe"].verdict == "keep" and "not yet significant" in out["maybe"].reason
    assert out["few"].verdict == "keep" and out["few"].reason.startswith("insufficient data")
    assert out["few"].effect == pytest.approx(-3.0)  # measured and recorded all the same
    assert (out["harm"].n_applied, out["harm"].n_holdout) == (400, 100)
    assert out["harm"].ci_level == pytest.approx(0.95)


def test_a_simultaneous_interval_keeps_noise_from_disabling_overrides():
    # this effect is "significant" on its own (t ~ -2.3) but not among 50 overrides
    borderline = sample("borderline", ArmStats(400, -0.26, 1.0), ArmStats(100, 0.0, 1.0))
    others = [sample(f"n{i}", ArmStats(400, 0.1, 1.0), ArmStats(100, 0.0, 1.0)) for i in range(49)]
    alone = by_lesson(assess([borderline, *others], MonitoringPolicy(simultaneous=False)))
    joint = by_lesson(assess([borderline, *others], MonitoringPolicy()))
    assert alone["borderline"].verdict == "disable"
    assert joint["borderline"].verdict == "decay_faster"
    assert joint["borderline"].ci_level == pytest.approx(1 - 0.05 / 50)
    assert joint["borderline"].ci_high - joint["borderline"].ci_low > (
        alone["borderline"].ci_high - alone["borderline"].ci_low
    )


def test_disable_is_sticky_until_an_operator_acts():
    recovered = sample("x", ArmStats(400, 0.5, 1.0), ArmStats(100, 0.0, 1.0))
    [effect] = assess([recovered], MonitoringPolicy(), previous={"x": "disable"})
    assert effect.verdict == "disable" and "remains disabled" in effect.reason
    [effect] = assess([recovered], MonitoringPolicy(), previous={"x": "decay_faster"})
    assert effect.verdict == "keep"


def test_latest_verdicts_take_the_newest_row_per_lesson():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        VerdictRow("a", "disable", t0, 1),
        VerdictRow("a", "keep", t0 + timedelta(days=1), 2),
        {"lesson_id": "b", "verdict": "keep", "as_of": t0, "effect_id": 3},
        {"lesson_id": "b", "verdict": "decay_faster", "as_of": t0, "effect_id": 4},
        VerdictRow("c", "disable", t0 + timedelta(days=2), 5),
        VerdictRow("c", "keep", t0 + timedelta(days=1), 6),  # a backfill of an older as_of
    ]
    verdicts = latest_verdicts(rows)
    assert verdicts == {"a": "keep", "b": "decay_faster", "c": "disable"}
    assert latest_verdicts(reversed(rows)) == verdicts
    with pytest.raises(ValueError, match="unknown verdict"):
        latest_verdicts([VerdictRow("a", "maybe", t0, 1)])


def test_policy_rejects_meaningless_settings():
    with pytest.raises(ValueError):
        MonitoringPolicy(confidence=1.0)
    with pytest.raises(ValueError):
        MonitoringPolicy(min_n=1)
