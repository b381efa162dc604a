"""The SQL quarantine step: same rules and reason codes as the Python contract, one transaction."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leverloop.domain.outcomes import (
    COUNTERFACTUAL_COLUMNS,
    OUTCOME_COLUMNS,
    RR_MAX,
    RR_MIN,
    Rejection,
    validate_counterfactual_row,
    validate_outcome,
)
from leverloop.quality.rows import classify_window, quarantine_window
from leverloop.store.database import Database

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
JSON_NULL = object()  # a jsonb 'null' value, as opposed to SQL NULL

texts = st.sampled_from(
    ["k1", "pm.x.y", None, "", "   ", " padded ", "has space", "\tx", "x" * 257]
)
numbers = st.sampled_from([None, 0.0, 0.25, -1.0, math.nan, math.inf, -math.inf])
scopes = st.sampled_from(
    [
        None,
        JSON_NULL,
        {},
        {"regime": "dip", "bucket": "micro"},
        {"regime": "dip", "n": 3, "flag": True, "gone": None},
        {"regime": {"nested": 1}},
        {" ": "blank key"},
        [["regime", "dip"], ["bucket", "micro"]],
        [["regime", "dip", "extra"]],
        [[1, "numeric key"]],
        [[" ", "blank key"]],
        [["regime", ["nested"]]],
        [],
        ["regime"],
        7,
        True,
        "",
    ]
)
overrides = st.sampled_from([None, JSON_NULL, {"ls_1": {"size_mult": 1.1}}, [1, 2], 5, False, ""])
times = st.sampled_from(
    [
        None,
        NOW - timedelta(hours=30),
        NOW - timedelta(hours=2),
        NOW + timedelta(minutes=2),  # within the future tolerance
        NOW + timedelta(hours=3),  # in the future
    ]
)


@st.composite
def outcome_rows(draw, i: int) -> dict:
    return {
        "outcome_id": draw(st.sampled_from([f"o{i}", f" o{i} ", f"o {i}", " " * (i + 1)])),
        "position_id": draw(texts),
        "module": draw(st.sampled_from(["pm", "dm", "PM", " dm ", "xx", "", None])),
        "pattern_key": draw(texts),
        "action_category": draw(st.sampled_from(["entry", "EXIT", " add", "hodl", "", None])),
        "scope": draw(scopes),
        "opened_at": draw(times),
        "closed_at": draw(times),
        "rr": draw(
            st.sampled_from([None, 0.5, -3.0, RR_MIN, RR_MAX, RR_MIN - 1, RR_MAX + 1, math.nan])
            | st.sampled_from([math.inf, -math.inf])
        ),
        "return_pct": draw(numbers),
        "max_drawdown_pct": draw(numbers),
        "hold_hours": draw(numbers),
        "size_fraction": draw(numbers),
        "pm_config_version": draw(st.sampled_from([None, 3])),
        "applied_overrides": draw(overrides),
        "holdout": draw(st.booleans()),
    }


@st.composite
def counterfactual_rows(draw, i: int) -> dict:
    row = {"outcome_id": draw(st.sampled_from([f"o{i}", f"o {i}", " " * (i + 1)]))}
    for name in COUNTERFACTUAL_COLUMNS:
        if "delay" in name:
            row[name] = draw(st.sampled_from([None, 0, 3, -1, 10_001]))
        elif "better_rr" in name:
            row[name] = draw(st.sampled_from([None, 0.4, -0.1, RR_MAX + 1, math.nan]))
        else:
            row[name] = draw(st.sampled_from([None, 0.7, math.inf]))
    return row


def _jsonb(value):
    if value is None:
        return None
    return "null" if value is JSON_NULL else json.dumps(value)


def _insert(db: Database, target: str, rows: list[dict]) -> None:
    columns = list(rows[0])
    values = ", ".join(
        f"cast(:{c} as jsonb)" if c in ("scope", "applied_overrides") else f":{c}" for c in columns
    )
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(f"insert into raw.{target} ({', '.join(columns)}) values ({values})"),
            [
                {c: _jsonb(r[c]) if c in ("scope", "applied_overrides") else r[c] for c in columns}
                for r in rows
            ],
        )


def _read_back(db: Database, target: str) -> list[dict]:
    columns = (
        OUTCOME_COLUMNS if target == "trade_outcomes" else ("outcome_id", *COUNTERFACTUAL_COLUMNS)
    )
    with db.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.text(f"select {', '.join(columns)} from raw.{target}")
            ).mappings()
        ]


def _python_codes(target: str, rows: list[dict]) -> dict[str, str]:
    out = {}
    for row in rows:
        if target == "trade_outcomes":
            result = validate_outcome(row, now=NOW)
        else:
            result = validate_counterfactual_row(row)
        if isinstance(result, Rejection):
            out[row["outcome_id"]] = result.code
    return out


def _reset(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("truncate raw.trade_outcomes, raw.counterfactuals, leverloop.quarantine")
        )


SETTINGS = settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(data=st.data())
def test_sql_rules_give_the_python_contract_s_reason_codes_for_outcomes(
    database: Database, data: st.DataObject
):
    rows = [data.draw(outcome_rows(i)) for i in range(data.draw(st.integers(1, 30)))]
    _reset(database)
    _insert(database, "trade_outcomes", rows)
    with database.engine.connect() as conn:
        sql = classify_window(conn, "trade_outcomes", 0, 10**12, now=NOW)
    assert sql == _python_codes("trade_outcomes", _read_back(database, "trade_outcomes"))


@SETTINGS
@given(data=st.data())
def test_sql_rules_give_the_python_contract_s_reason_codes_for_counterfactuals(
    database: Database, data: st.DataObject
):
    rows = [data.draw(counterfactual_rows(i)) for i in range(data.draw(st.integers(1, 20)))]
    _reset(database)
    _insert(database, "counterfactuals", rows)
    with database.engine.connect() as conn:
        sql = classify_window(conn, "counterfactuals", 0, 10**12, now=NOW)
    assert sql == _python_codes("counterfactuals", _read_back(database, "counterfactuals"))


def _good(i: int, **overrides) -> dict:
    row = {
        "outcome_id": f"g{i}",
        "position_id": f"p{i}",
        "module": "pm",
        "pattern_key": "pm.a",
        "action_category": "entry",
        "scope": {"regime": "dip"},
        "opened_at": NOW - timedelta(hours=3),
        "closed_at": NOW - timedelta(hours=1),
        "rr": 0.3,
        "applied_overrides": None,
    }
    row.update(overrides)
    return row


def _counts(db: Database) -> tuple[int, dict[str, int]]:
    with db.engine.connect() as conn:
        raw = conn.execute(sa.text("select count(*) from raw.trade_outcomes")).scalar_one()
        quarantined = dict(
            conn.execute(
                sa.text("select reason_code, count(*) from leverloop.quarantine group by 1")
            ).all()
        )
    return raw, quarantined


def test_quarantine_moves_only_the_window_s_bad_rows_with_reasons_and_is_idempotent(
    database: Database,
):
    _insert(database, "trade_outcomes", [_good(i) for i in range(5)])  # seq 1..5, already checked
    _insert(
        database,
        "trade_outcomes",
        [
            _good(5),
            _good(6, rr=math.nan),
            _good(7, action_category="hodl"),
            _good(8, closed_at=NOW - timedelta(hours=5)),
            _good(9),
        ],
    )  # seq 6..10
    with database.engine.begin() as conn:
        conn.execute(sa.text("update raw.trade_outcomes set rr = 'NaN' where outcome_id = 'g0'"))
        result = quarantine_window(conn, "trade_outcomes", 5, 10, now=NOW, source="gate:test")
    assert result.moved == 3
    assert result.reasons == {
        "rr_not_finite": 1,
        "invalid_action_category": 1,
        "closed_before_opened": 1,
    }
    raw, quarantined = _counts(database)
    assert raw == 7  # g0 is outside the window: not this run's to judge
    assert quarantined == result.reasons
    with database.engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "select source, target_table, reason, payload from leverloop.quarantine "
                "where outcome_id = 'g6'"
            )
        ).one()
    assert stored.source == "gate:test" and stored.target_table == "trade_outcomes"
    assert stored.reason == "rr is not finite (NaN)"
    assert stored.payload["rr"] == "NaN" and stored.payload["pattern_key"] == "pm.a"

    # the producer re-sends the same bad row: moved again, stored once
    _insert(database, "trade_outcomes", [_good(6, rr=math.nan)])
    with database.engine.begin() as conn:
        again = quarantine_window(conn, "trade_outcomes", 10, 11, now=NOW, source="gate:test")
    assert again.moved == 1
    assert _counts(database) == (7, result.reasons)


def test_a_failed_transaction_moves_nothing(database: Database):
    _insert(database, "trade_outcomes", [_good(1, rr=math.nan), _good(2)])
    with pytest.raises(RuntimeError), database.engine.begin() as conn:
        quarantine_window(conn, "trade_outcomes", 0, 10, now=NOW, source="gate:test")
        raise RuntimeError("the process dies before commit")
    assert _counts(database) == (2, {})
