"""The input contract: every kind of bad row is rejected with its own reason; good rows normalise."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leverloop.domain.outcomes import (
    COUNTERFACTUAL_COLUMNS,
    OUTCOME_COLUMNS,
    RR_MAX,
    RR_MIN,
    Rejection,
    counterfactual_part,
    validate_outcome,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def good(**overrides):
    row = {
        "outcome_id": "o-1",
        "position_id": "p-1",
        "module": "pm",
        "pattern_key": "pm.uptrend.S1.buy_flag",
        "action_category": "entry",
        "scope": '{"regime": "dip", "bucket": "micro", "A_mode": "normal", "chain": "sol"}',
        "opened_at": "2026-02-01T10:00:00Z",
        "closed_at": "2026-02-01T14:30:00+00:00",
        "rr": "1.25",
    }
    row.update(overrides)
    return row


def test_good_row_is_normalised():
    out = validate_outcome(good(holdout="true", size_fraction="0.1"), now=NOW)
    assert not isinstance(out, Rejection)
    assert out["rr"] == 1.25
    assert out["scope"] == {"regime": "dip", "bucket": "micro", "A_mode": "normal", "chain": "sol"}
    assert out["closed_at"] == datetime(2026, 2, 1, 14, 30, tzinfo=UTC)
    assert out["hold_hours"] == pytest.approx(4.5)  # derived from the timestamps when absent
    assert out["holdout"] is True
    assert set(out) == set(OUTCOME_COLUMNS)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"rr": "nan"}, "rr_not_finite"),
        ({"rr": "inf"}, "rr_not_finite"),
        ({"rr": "abc"}, "rr_not_finite"),
        ({"rr": ""}, "rr_not_finite"),
        ({"rr": str(RR_MAX + 1)}, "rr_out_of_range"),
        ({"rr": str(RR_MIN - 1)}, "rr_out_of_range"),
        ({"closed_at": "2026-02-01T09:00:00Z"}, "closed_before_opened"),
        ({"closed_at": "2027-01-01T00:00:00Z"}, "closed_in_future"),
        ({"action_category": "hold"}, "invalid_action_category"),
        ({"pattern_key": ""}, "missing_pattern_key"),
        ({"pattern_key": None}, "missing_pattern_key"),
        ({"pattern_key": "has space"}, "missing_pattern_key"),
        ({"scope": "{regime: dip"}, "invalid_scope"),
        ({"scope": "[1, 2]"}, "invalid_scope"),
        ({"scope": '{"regime": {"nested": 1}}'}, "invalid_scope"),
        ({"opened_at": "yesterday"}, "invalid_timestamp"),
        ({"module": "xx"}, "invalid_module"),
        ({"outcome_id": ""}, "missing_outcome_id"),
        ({"position_id": None}, "missing_position_id"),
        ({"holdout": "maybe"}, "invalid_holdout"),
        ({"pm_config_version": "1.5"}, "invalid_pm_config_version"),
        ({"hold_hours": "-2"}, "invalid_number"),
    ],
)
def test_each_contract_breach_has_its_reason(overrides, code):
    out = validate_outcome(good(**overrides), now=NOW)
    assert isinstance(out, Rejection)
    assert out.code == code
    assert out.message  # readable


def test_counterfactual_columns_are_validated():
    assert counterfactual_part(good()) is None
    ok = counterfactual_part(good(could_enter_better_rr="0.2", best_entry_delay_bars="3"))
    assert isinstance(ok, dict) and ok["best_entry_delay_bars"] == 3
    assert set(ok) == {"outcome_id", *COUNTERFACTUAL_COLUMNS}
    bad = counterfactual_part(good(best_entry_delay_bars="-1"))
    assert isinstance(bad, Rejection) and bad.code == "invalid_counterfactual"
    bad = counterfactual_part(good(could_exit_better_rr="nan"))
    assert isinstance(bad, Rejection)


scalars = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.booleans(),
)


@given(
    st.dictionaries(st.sampled_from([*OUTCOME_COLUMNS, "junk"]), scalars, max_size=5), st.booleans()
)
def test_validation_never_raises_and_accepted_rows_hold_the_contract(mutation, drop):
    row = {k: v for k, v in good().items() if not (drop and k in mutation)}
    if not drop:
        row.update(mutation)
    out = validate_outcome(row, now=NOW)
    if isinstance(out, Rejection):
        assert out.code and out.message
        return
    assert math.isfinite(out["rr"]) and RR_MIN <= out["rr"] <= RR_MAX
    assert out["closed_at"] >= out["opened_at"]
    assert out["action_category"] in ("entry", "add", "trim", "exit")
    assert out["pattern_key"] and isinstance(out["scope"], dict)
