"""The GX gates against a real database: which batches pass, which stop a run, and why."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from leverloop.pipeline.context import Context
from leverloop.quality.gx import data_docs_index, lever_rows, validate_inputs, validate_output
from leverloop.store import gates as gate_store
from leverloop.store import runs
from tests.integration.configs import one_lever_config

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DAY0 = NOW - timedelta(days=20)


def _day(ctx: Context, day: int, n: int, *, prefix: str = "o", rr: str = "random() - 0.4") -> None:
    """``n`` clean outcomes closed on DAY0 + ``day``."""
    with ctx.engine.begin() as conn:
        conn.execute(
            sa.text(
                f"""
                insert into raw.trade_outcomes (outcome_id, position_id, module, pattern_key,
                    action_category, scope, opened_at, closed_at, rr, hold_hours)
                select :p || '-' || :d || '-' || g, 'pos-' || :d || '-' || g, 'pm', 'pm.a',
                       'entry', '{{"regime": "dip"}}', c - interval '2 hours', c, {rr}, 2
                  from generate_series(1, :n) g,
                       lateral (select cast(:t as timestamptz) + g * interval '1 minute' as c) t
                """
            ),
            {"p": prefix, "d": day, "n": n, "t": DAY0 + timedelta(days=day)},
        )


def _commit_history(ctx: Context) -> None:
    """Pretend a committed run validated everything landed so far."""
    with ctx.engine.begin() as conn:
        hi = gate_store.window_end(conn, "trade_outcomes")
        runs.start(conn, "r0", None, NOW)
        runs.finish(conn, "r0", "published")
        gate_store.record_results(
            conn,
            "r0",
            [
                {
                    "suite": "input_trade_outcomes",
                    "stage": "input",
                    "target": "trade_outcomes",
                    "lo_seq": 0,
                    "hi_seq": hi,
                    "success": True,
                    "blocking": False,
                    "statistics": {},
                    "failures": [],
                    "data_docs": None,
                }
            ],
        )


def _checks(report) -> set[str]:
    return {f.check for f in report.failures if f.blocking}


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path).encode() + path.read_bytes())
    return h.hexdigest()


def test_a_clean_batch_passes_and_only_the_new_rows_are_checked(ctx: Context):
    committed = _digest(ctx.settings.expectations_dir / "gx")
    for day in range(14):
        _day(ctx, day, 20)
    with ctx.engine.begin() as conn:  # an old bad row, validated (and let through) earlier
        conn.execute(sa.text("update raw.trade_outcomes set rr = 'NaN' where outcome_id = 'o-0-1'"))
    _commit_history(ctx)
    _day(ctx, 14, 22)

    report = validate_inputs(ctx, "r1", as_of=NOW, now=NOW)

    assert not report.blocked, report.reasons()
    window = next(s for s in report.suites if s.suite == "input_trade_outcomes")
    assert (window.lo_seq, window.hi_seq) == (280, 302)
    assert window.statistics["evaluated_expectations"] > 10
    with ctx.engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "select suite, success, lo_seq, hi_seq from leverloop.gate_results where run_id = 'r1'"
            )
        ).all()
    assert {(r.suite, r.lo_seq, r.hi_seq) for r in stored} == {
        ("input_trade_outcomes", 280, 302),
        ("input_counterfactuals", 0, 0),
    }
    assert data_docs_index(ctx.settings).is_file()
    assert report.data_docs_index == data_docs_index(ctx.settings).as_uri()
    assert _digest(ctx.settings.expectations_dir / "gx") == committed  # runs write elsewhere


def test_a_volume_burst_stops_the_run(ctx: Context):
    for day in range(14):
        _day(ctx, day, 20)
    _commit_history(ctx)
    _day(ctx, 14, 70)  # 3.5x the trailing daily average

    report = validate_inputs(ctx, "r1", as_of=NOW, now=NOW)

    assert _checks(report) == {"volume_vs_trailing_average"}
    assert "3x the trailing 14-day average" in report.reasons()[0]


def test_rr_all_nan_and_future_rows_stop_the_run_a_few_bad_rows_do_not(ctx: Context):
    for day in range(14):
        _day(ctx, day, 20)
    _commit_history(ctx)
    _day(ctx, 14, 20, prefix="nan", rr="'NaN'::float8")
    report = validate_inputs(ctx, "r1", as_of=NOW, now=NOW)
    assert _checks(report) == {"rr_range"}

    with ctx.engine.begin() as conn:
        conn.execute(sa.text("delete from raw.trade_outcomes where outcome_id like 'nan-%'"))
    _day(ctx, 14, 19, prefix="ok")
    _day(ctx, 14, 1, prefix="one-nan", rr="'NaN'::float8")  # 5 % bad: quarantine, not a stop
    assert not validate_inputs(ctx, "r2", as_of=NOW, now=NOW).blocked

    report = validate_inputs(ctx, "r3", as_of=NOW, now=DAY0 + timedelta(days=10))
    assert "not_in_future" in _checks(report)  # the clock says the batch closes tomorrow


def test_output_gate_blocks_invalid_levers_and_warns_on_big_steps(ctx: Context):
    big_step = validate_output(
        ctx, "r1", lever_rows("r1", one_lever_config(1.3), one_lever_config(1.1))
    )
    assert not big_step.blocked
    assert [f.check for f in big_step.failures] == ["max_step"]

    rows = lever_rows("r2", one_lever_config(1.3), None)
    rows += [
        {**rows[0], "value": 1.7},  # out of its registry bounds
        {**rows[0], "value": float("nan")},
        {**rows[0], "lever": "size_mult_v2", "kind": None, "low": None, "high": None},
    ]
    report = validate_output(ctx, "r2", rows)
    assert report.blocked
    assert _checks(report) == {"within_bounds", "finite", "known_lever"}
    with ctx.engine.connect() as conn:
        assert (
            conn.execute(
                sa.text("select count(*) from leverloop.candidate_levers where run_id = 'r2'")
            ).scalar_one()
            == 4
        )
