"""The tuning mapping table: each row moves its lever from its signal, only where it applies."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leverloop.domain.levers import REGISTRY
from leverloop.domain.tuning import (
    RULES,
    TuningPolicy,
    describe_rules,
    phase_scaling_target,
    tuning_targets,
)

POLICY = TuningPolicy()
SIGNALS = {
    "missed_entry_rr": 0.3,
    "mean_entry_delay_bars": 3.4,
    "missed_exit_rr": 0.2,
    "mean_exit_delay_bars": 5.0,
    "better_entry_ts": 0.62,
    "better_entry_ox": 0.4,
    "better_entry_dx": 0.55,
    "better_entry_edx": 0.7,
    "better_exit_ts": 0.3,
    "better_exit_ox": 0.81,
    "better_exit_dx": 0.2,
    "better_exit_edx": 0.9,
}


def test_entry_side_rules():
    out = tuning_targets(
        SIGNALS, pattern_key="pm.uptrend.S1.buy_flag", category="entry", policy=POLICY
    )
    assert out == {
        "entry_delay_bars": pytest.approx(3.4),  # rounded when published
        "phase1_frac_mult": pytest.approx(0.7),
        "signal_thresholds.min_ts_for_add": 0.62,
        "signal_thresholds.min_dx_for_add": 0.55,
        "signal_thresholds.max_edx_for_add": 0.7,
    }


def test_trim_and_exit_rules():
    trim = tuning_targets(
        SIGNALS, pattern_key="pm.trim.S2.ox_spike", category="trim", policy=POLICY
    )
    assert trim == {
        "signal_thresholds.min_ox_for_trim": 0.81,
        "trim_delay_mult": pytest.approx(1.5),
        "wait_n_bars_after_trim": pytest.approx(5.0),
    }
    exit_ = tuning_targets(
        SIGNALS, pattern_key="pm.exit.S1.panic_drop", category="exit", policy=POLICY
    )
    assert exit_["trail_mult"] == pytest.approx(1.2)
    assert exit_["panic_trigger_mult"] == pytest.approx(1.2)  # only panic patterns
    other = tuning_targets(
        SIGNALS, pattern_key="pm.exit.S2.ema_loss", category="exit", policy=POLICY
    )
    assert "panic_trigger_mult" not in other


def test_immaterial_missed_rr_moves_nothing():
    quiet = {**SIGNALS, "missed_entry_rr": 0.01, "missed_exit_rr": 0.0}
    assert tuning_targets(quiet, pattern_key="pm.x", category="entry", policy=POLICY) == {}
    assert tuning_targets(quiet, pattern_key="pm.x", category="trim", policy=POLICY) == {}


def test_targets_are_clamped_to_the_registry():
    wild = {
        **SIGNALS,
        "mean_entry_delay_bars": 99.0,
        "missed_entry_rr": 5.0,
        "mean_exit_delay_bars": 40.0,
    }
    out = tuning_targets(wild, pattern_key="pm.x", category="entry", policy=POLICY)
    assert out["entry_delay_bars"] == REGISTRY["entry_delay_bars"].high
    assert out["phase1_frac_mult"] == REGISTRY["phase1_frac_mult"].low
    trim = tuning_targets(wild, pattern_key="pm.x", category="trim", policy=POLICY)
    assert trim["trim_delay_mult"] == REGISTRY["trim_delay_mult"].high


@given(st.dictionaries(st.sampled_from(sorted(SIGNALS)), st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))),
       st.sampled_from(["entry", "add", "trim", "exit"]))  # fmt: skip
def test_any_signals_give_only_applicable_in_bounds_levers(signals, category):
    out = tuning_targets(
        signals, pattern_key="pm.exit.S1.panic_drop", category=category, policy=POLICY
    )
    for path, value in out.items():
        lever = REGISTRY[path]
        assert lever.applies_to(category)
        assert math.isfinite(value) and lever.low <= value <= lever.high


def test_phase_scaling_follows_the_pattern_state():
    assert phase_scaling_target("pm.uptrend.S2.buy_dip", "add", 0.1) == (
        "phase_scaling.S2",
        pytest.approx(1.1),
    )
    assert phase_scaling_target("pm.uptrend.S3.breakout", "entry", 0.9) == (
        "phase_scaling.S3",
        pytest.approx(1.3),
    )
    assert phase_scaling_target("pm.trim.S2.ox_spike", "trim", 0.2) is None
    assert phase_scaling_target("pm.range.support", "add", 0.2) is None


def test_the_table_documents_every_rule():
    rows = describe_rules()
    assert {r["lever"] for r in rows} >= {rule.lever for rule in RULES}
    assert all(r["signal"] and r["bounds"] and r["direction"] for r in rows)
