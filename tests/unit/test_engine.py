"""The lever engine end to end (pure): bounds and categories, NaN safety, idempotence, cadence invariance."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leverloop.domain.engine import CounterfactualEvidence, EnginePolicy, run_engine
from leverloop.domain.lessons import CellEvidence, LessonStatus
from leverloop.domain.levers import REGISTRY
from leverloop.domain.pm_config import PmConfig

T0 = datetime(2026, 2, 1, tzinfo=UTC)
POLICY = EnginePolicy()
PATTERNS = [
    ("pm", "pm.uptrend.S2.buy_dip"),
    ("pm", "pm.exit.S1.panic_drop"),
    ("dm", "dm.curator.alpha_call"),
]
SCOPES = [{}, {"regime": "dip"}, {"bucket": "micro"}, {"regime": "dip", "bucket": "micro"}]
wild = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def evidence_sets(draw):
    cells, cfs = [], []
    for module, pattern in PATTERNS:
        for category in draw(
            st.sets(st.sampled_from(["entry", "add", "trim", "exit"]), min_size=1, max_size=2)
        ):
            for scope in draw(
                st.lists(
                    st.sampled_from(SCOPES),
                    unique_by=lambda s: tuple(sorted(s.items())),
                    max_size=3,
                )
            ):
                cells.append(
                    CellEvidence(
                        module=module, pattern_key=pattern, action_category=category, scope=scope,
                        n=draw(st.integers(0, 5000)), n_eff=draw(st.one_of(st.floats(0, 5000), wild)),
                        edge=draw(st.one_of(st.floats(-2, 2), wild)), confidence=draw(st.one_of(st.floats(0, 1), wild)),
                        p_value=draw(st.one_of(st.floats(0, 1), wild)), t_vs_parent=draw(st.one_of(st.floats(-10, 10), wild)),
                        scope_depth=len(scope),
                    )
                )  # fmt: skip
                if draw(st.booleans()):
                    signals = {
                        name: draw(st.one_of(st.none(), st.floats(-5, 50), wild))
                        for name in ("missed_entry_rr", "mean_entry_delay_bars", "missed_exit_rr", "mean_exit_delay_bars",
                                     "better_entry_ts", "better_entry_dx", "better_entry_edx", "better_exit_ox")
                    }  # fmt: skip
                    cfs.append(
                        CounterfactualEvidence(
                            module,
                            pattern,
                            category,
                            scope,
                            len(scope),
                            draw(st.integers(0, 2000)),
                            signals,
                        )
                    )
    return cells, cfs


def run(evidence, cfs, states=(), lessons=None, *, at, previous):
    return run_engine(
        evidence, cfs, list(states), lessons or {}, as_of=at, previous_as_of=previous, policy=POLICY
    )


def assert_config_is_safe(config: PmConfig) -> None:
    PmConfig.model_validate(config.model_dump())  # the contract re-validates (bounds, categories)
    for entry in config.overrides():
        for path, value in entry.flat_levers().items():
            lever = REGISTRY[path]
            assert lever.applies_to(entry.action_category, entry.module)
            assert math.isfinite(value) and lever.low <= value <= lever.high


@settings(max_examples=60)
@given(evidence_sets(), st.integers(1, 72))
def test_whatever_the_evidence_outputs_stay_in_bounds_categories_and_finite(ev, hours):
    cells, cfs = ev
    first = run(cells, cfs, at=T0, previous=T0 - timedelta(days=28))
    second = run(
        cells, cfs, first.states, first.lessons, at=T0 + timedelta(hours=hours), previous=T0
    )
    for result in (first, second):
        assert_config_is_safe(result.config)
        for state in result.states:
            lever = REGISTRY[state.lever]
            assert math.isfinite(state.value) and lever.low <= state.value <= lever.high
            assert math.isfinite(state.target)


@settings(max_examples=40)
@given(evidence_sets())
def test_same_evidence_same_clock_same_result(ev):
    cells, cfs = ev
    first = run(cells, cfs, at=T0, previous=T0 - timedelta(days=28))
    again = run(cells, cfs, first.states, first.lessons, at=T0, previous=T0)
    assert again.config.content_hash() == first.config.content_hash()
    assert [(s.lesson_id, s.lever, s.value) for s in again.states] == [
        (s.lesson_id, s.lever, s.value) for s in first.states
    ]


def steady(edge: float, scope=None) -> CellEvidence:
    return CellEvidence(
        "pm", "pm.uptrend.S2.buy_dip", "add", scope or {}, 800, 700.0, edge, 0.96, 1e-8, 0.0, 0
    )


def levers_after(cadence_hours: int, days: int, cells) -> dict[tuple[str, str], float]:
    states, lessons, previous = [], {}, T0 - timedelta(hours=cadence_hours)
    for k in range(1, days * 24 // cadence_hours + 1):
        at = T0 + timedelta(hours=k * cadence_hours)
        result = run(cells(at), [], states, lessons, at=at, previous=previous)
        states, lessons, previous = result.states, result.lessons, at
    return {(s.lesson_id, s.lever): s.value for s in states}


def test_hourly_and_daily_cadence_end_at_the_same_levers():
    def cells(at: datetime):  # the edge drifts over the month, a second cell appears after a week
        days = (at - T0).total_seconds() / 86400
        out = [steady(0.3 - 0.01 * days)]
        if days > 7:
            out.append(steady(-0.25, {"regime": "dip"}))
        return out

    hourly, daily = levers_after(1, 30, cells), levers_after(24, 30, cells)
    assert hourly.keys() == daily.keys() and len(hourly) >= 4
    assert max(abs(hourly[k] - daily[k]) for k in hourly) < 0.02


def test_positive_edges_raise_negative_lower_and_dm_uses_alloc_multiplier():
    cells = [
        steady(0.3),
        CellEvidence(
            "pm", "pm.exit.S1.panic_drop", "exit", {}, 800, 700.0, -0.3, 0.96, 1e-8, 0.0, 0
        ),
        CellEvidence(
            "dm",
            "dm.curator.alpha_call",
            "entry",
            {"curator": "c01"},
            800,
            700.0,
            0.3,
            0.96,
            1e-8,
            0.0,
            0,
        ),
    ]
    result = run(cells, [], at=T0, previous=T0 - timedelta(days=7))
    levers = {
        (e.pattern_key, lever): value
        for e in result.config.pattern_strength_overrides
        for lever, value in e.flat_levers().items()
    }
    assert (
        levers[("pm.uptrend.S2.buy_dip", "size_mult")] > 1
        and levers[("pm.uptrend.S2.buy_dip", "entry_aggression_mult")] > 1
    )
    assert (
        levers[("pm.exit.S1.panic_drop", "size_mult")] < 1
        and levers[("pm.exit.S1.panic_drop", "exit_aggression_mult")] < 1
    )
    assert levers[("dm.curator.alpha_call", "alloc_multiplier")] > 1
    assert ("dm.curator.alpha_call", "size_mult") not in levers


def test_lessons_that_lose_their_evidence_decay_and_are_disabled_with_a_reason():
    result = run([steady(0.3)], [], at=T0, previous=T0 - timedelta(days=14))
    lid = next(iter(result.lessons))
    assert result.lessons[lid].status is LessonStatus.ACTIVE
    at, statuses = T0, []
    for _ in range(60):  # weekly runs without evidence
        at += timedelta(days=7)
        result = run([], [], result.states, result.lessons, at=at, previous=at - timedelta(days=7))
        statuses.append(result.lessons[lid].status)
        if not result.states:
            break
    assert statuses[0] is LessonStatus.DECAYING
    lesson = result.lessons[lid]
    assert lesson.status is LessonStatus.DISABLED and "decayed back to neutral" in lesson.reason
    assert not result.config.pattern_strength_overrides and not result.config.pattern_overrides
    assert not result.states  # every lever, capital and tuning, back at neutral and dropped


def test_a_monitor_verdict_removes_the_override_at_once():
    first = run([steady(0.3)], [], at=T0, previous=T0 - timedelta(days=14))
    lid = next(iter(first.lessons))
    assert first.config.pattern_strength_overrides
    second = run_engine(
        [steady(0.3)], [], first.states, first.lessons, as_of=T0 + timedelta(hours=1), previous_as_of=T0,
        policy=POLICY, verdicts={lid: ("disable", "hurt R/R vs holdout")},
    )  # fmt: skip
    assert not second.config.pattern_strength_overrides
    assert any(c.value_after is None and "lesson disabled" in c.reason for c in second.changes)


def test_tuning_levers_follow_counterfactuals_and_thresholds_withdraw_when_evidence_lapses():
    signals = {"missed_entry_rr": 0.3, "mean_entry_delay_bars": 4.0, "better_entry_ts": 0.6}
    cf = CounterfactualEvidence("pm", "pm.uptrend.S2.buy_dip", "add", {}, 0, 500, signals)
    result = run([steady(0.0)], [cf], at=T0, previous=T0 - timedelta(days=28))
    tuning = {k: v for e in result.config.pattern_overrides for k, v in e.flat_levers().items()}
    assert tuning["signal_thresholds.min_ts_for_add"] == 0.6
    assert 0 < tuning["entry_delay_bars"] <= 4
    lapsed = run(
        [steady(0.0)], [], result.states, result.lessons, at=T0 + timedelta(days=1), previous=T0
    )
    tuning = {k for e in lapsed.config.pattern_overrides for k in e.flat_levers()}
    assert "signal_thresholds.min_ts_for_add" not in tuning
