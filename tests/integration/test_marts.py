"""dbt marts on a real database: the math against independent computations, the window, incremental
builds against full refreshes, and bad rows kept out."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from scipy import stats

from leverloop.domain.scope import scope_key
from leverloop.ingest import ingest_file
from leverloop.pipeline.context import Context
from leverloop.pipeline.dbt import DbtVars, build_marts, run_dbt
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.truth import window_truth
from leverloop.simulator.writer import write_outcomes, write_truth

CONFIG = SimConfig(seed=11, outcomes=12_000, days=21)
LOOKBACK = 21
RECENCY_HALFLIFE_DAYS = 14  # dbt_project.yml default


@pytest.fixture
def built(ctx: Context) -> Context:
    sim = simulate(CONFIG)
    write_truth(ctx.engine, sim)
    write_outcomes(ctx.engine, sim)
    build_marts(ctx, DbtVars(as_of=CONFIG.end, lookback_days=LOOKBACK))
    return ctx


def _weighted(conn: sa.Connection, where: str, as_of: datetime) -> tuple[int, float, float]:
    rows = conn.execute(
        sa.text(f"select closed_at, rr from raw.trade_outcomes where {where}")
    ).all()
    closed = np.array([r[0] for r in rows])
    rr = np.array([r[1] for r in rows])
    day_start = np.array([c.replace(hour=0, minute=0, second=0, microsecond=0) for c in closed])
    age_days = np.array(
        [max((as_of - (d + timedelta(hours=12))).total_seconds() / 86400, 0) for d in day_start]
    )
    w = 0.5 ** (age_days / RECENCY_HALFLIFE_DAYS)
    return rr.size, float((w * rr).sum() / w.sum()), float(w.sum() ** 2 / (w * w).sum())


def test_root_cell_matches_an_independent_computation(built: Context):
    with built.engine.connect() as conn:
        edge = conn.execute(
            sa.text(
                """
                select n, n_eff, mean_rr, baseline_rr, delta_rr from marts.pattern_edges
                 where pattern_key = 'pm.exit.S1.panic_drop' and action_category = 'exit' and scope = '{}'
                """
            )
        ).one()
        n, mean, n_eff = _weighted(
            conn, "pattern_key = 'pm.exit.S1.panic_drop' and action_category = 'exit'", CONFIG.end
        )
        _, baseline, _ = _weighted(conn, "module = 'pm' and action_category = 'exit'", CONFIG.end)
    assert edge.n == n
    assert edge.mean_rr == pytest.approx(mean, rel=1e-9)
    assert edge.n_eff == pytest.approx(n_eff, rel=1e-9)
    assert edge.baseline_rr == pytest.approx(baseline, rel=1e-9)
    assert edge.delta_rr == pytest.approx(mean - baseline, abs=1e-12)


def test_edges_agree_in_sign_with_the_planted_truth(built: Context):
    with built.engine.connect() as conn:
        truth = window_truth(conn, CONFIG.seed, until=CONFIG.end, lookback_days=LOOKBACK)
        rows = conn.execute(
            sa.text(
                "select pattern_key, action_category, scope, edge_raw from marts.pattern_edges where n >= 100"
            )
        ).all()
    pairs = [
        (r.edge_raw, truth[(r.pattern_key, r.action_category, scope_key(r.scope))].true_edge)
        for r in rows
    ]
    clear = [(e, t) for e, t in pairs if abs(t) >= 0.1]
    assert len(clear) >= 15
    assert sum(1 for e, t in clear if e * t > 0) / len(clear) >= 0.9


def test_p_values_follow_the_student_t_distribution(built: Context):
    with built.engine.connect() as conn:
        rows = conn.execute(sa.text("select t_stat, df, p_value from marts.pattern_edges")).all()
    assert len(rows) > 100
    errors = [abs(p - 2 * stats.t.sf(abs(t), df)) for t, df, p in rows]
    assert max(errors) < 0.005
    assert all(0.0 <= p <= 1.0 for _, _, p in rows)


def test_the_window_is_lookback_days_of_whole_days_up_to_as_of(ctx: Context):
    write_outcomes(ctx.engine, simulate(CONFIG))
    as_of = CONFIG.start + timedelta(
        days=7, hours=6
    )  # mid-day: the as_of day counts up to as_of only
    build_marts(ctx, DbtVars(as_of=as_of, lookback_days=3))
    with ctx.engine.connect() as conn:
        n = conn.execute(
            sa.text("select sum(n) from marts.segment_baselines where scope = '{}'")
        ).scalar_one()
        expected = conn.execute(
            sa.text(
                "select count(*) from raw.trade_outcomes where closed_at >= :lo and closed_at <= :hi"
            ),
            {"lo": CONFIG.start + timedelta(days=4), "hi": as_of},
        ).scalar_one()
    assert n == expected > 0


def _marts(ctx: Context) -> dict[str, dict]:
    out = {}
    with ctx.engine.connect() as conn:
        for table, key in (
            ("marts.pattern_edges", "pattern_key, action_category, scope"),
            ("marts.dm_dimension_edges", "pattern_key, action_category, scope"),
            ("marts.segment_baselines", "module, action_category, scope"),
            ("marts.counterfactual_deltas", "module, pattern_key, action_category, scope"),
        ):
            rows = conn.execute(sa.text(f"select * from {table} order by {key}")).mappings().all()
            out[table] = {
                json.dumps([r[k.strip()] for k in key.split(",")], default=str): dict(r)
                for r in rows
            }
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for table in a:
        assert a[table].keys() == b[table].keys(), table
        for key, row in a[table].items():
            other = b[table][key]
            for column, value in row.items():
                if isinstance(value, float) and value is not None and other[column] is not None:
                    assert math.isclose(value, other[column], rel_tol=1e-9, abs_tol=1e-12), (
                        table,
                        key,
                        column,
                    )
                else:
                    assert value == other[column], (table, key, column)


def test_an_incremental_build_equals_a_full_refresh(ctx: Context):
    sim = simulate(CONFIG)
    half = CONFIG.start + timedelta(days=12)
    write_outcomes(ctx.engine, sim, until=half)
    with ctx.engine.begin() as conn:  # hold back some early outcomes and some counterfactuals
        conn.execute(
            sa.text(
                "delete from raw.trade_outcomes where outcome_id in (select outcome_id from raw.trade_outcomes order by closed_at limit 30)"
            )
        )
        conn.execute(
            sa.text(
                "delete from raw.counterfactuals c where not exists (select 1 from raw.trade_outcomes o where o.outcome_id = c.outcome_id)"
            )
        )
        conn.execute(  # counterfactuals of another day, whose outcomes stay
            sa.text(
                "delete from raw.counterfactuals where outcome_id in (select outcome_id from raw.trade_outcomes "
                "where closed_at >= :lo and closed_at < :hi limit 50)"
            ),
            {"lo": CONFIG.start + timedelta(days=5), "hi": CONFIG.start + timedelta(days=6)},
        )
    build_marts(ctx, DbtVars(as_of=half, lookback_days=LOOKBACK))

    # a producer's transaction is still open (rows written, not committed) while the next build runs
    slow = ctx.engine.connect()
    slow_tx = slow.begin()
    slow.execute(
        sa.text(
            """
            insert into raw.trade_outcomes (outcome_id, position_id, module, pattern_key, action_category, scope,
                opened_at, closed_at, rr)
            values ('slow-1', 'p', 'pm', 'pm.exit.S1.panic_drop', 'exit', '{"regime": "dip"}', :t, :t, 2.5)
            """
        ),
        {"t": CONFIG.start + timedelta(days=3, hours=5)},
    )
    write_outcomes(ctx.engine, sim, since=half)  # new days
    write_outcomes(
        ctx.engine, sim, until=half
    )  # late outcomes and counterfactuals for already-built days
    build_marts(ctx, DbtVars(as_of=CONFIG.end, lookback_days=LOOKBACK))
    slow_tx.commit()  # after that build: only the next one can see it
    slow.close()
    build_marts(ctx, DbtVars(as_of=CONFIG.end, lookback_days=LOOKBACK))
    incremental = _marts(ctx)

    run_dbt(ctx, ["build", "--full-refresh"], DbtVars(as_of=CONFIG.end, lookback_days=LOOKBACK))
    full = _marts(ctx)
    _assert_same(incremental, full)
    with ctx.engine.connect() as conn:
        total = conn.execute(sa.text("select count(*) from raw.trade_outcomes")).scalar_one()
    assert (
        sum(r["n"] for r in full["marts.segment_baselines"].values() if r["scope"] == {}) == total
    )


def test_quarantined_and_malformed_rows_never_reach_the_marts(ctx: Context, tmp_path: Path):
    from tests.integration.test_ingest import BAD_ROWS, GOOD_ROWS, write_csv

    report = ingest_file(
        ctx.engine, write_csv(tmp_path / "mixed.csv", GOOD_ROWS + [r for r, _ in BAD_ROWS])
    )
    assert report.quarantined == len(BAD_ROWS)
    with (
        ctx.engine.begin() as conn
    ):  # a producer bypassing ingest with rows that break the contract
        conn.execute(
            sa.text(
                """
                insert into raw.trade_outcomes (outcome_id, position_id, module, pattern_key, action_category,
                    scope, opened_at, closed_at, rr)
                values ('direct-nan', 'p', 'pm', 'pm.uptrend.S1.buy_flag', 'entry', '{"regime": "dip"}',
                        '2026-02-01T10:00Z', '2026-02-01T12:00Z', 'NaN'),
                       ('direct-cat', 'p', 'pm', 'pm.uptrend.S1.buy_flag', 'hodl', '{"regime": "dip"}',
                        '2026-02-01T10:00Z', '2026-02-01T12:00Z', 1.0)
                """
            )
        )
    build_marts(ctx, DbtVars(as_of=datetime(2026, 2, 2, tzinfo=UTC), lookback_days=28))
    bad_ids = {r["outcome_id"] for r, _ in BAD_ROWS} | {"direct-nan", "direct-cat"}
    with ctx.engine.connect() as conn:
        staged = set(
            conn.execute(sa.text("select outcome_id from staging.stg_trade_outcomes")).scalars()
        )
        root_n = conn.execute(
            sa.text(
                "select n from marts.pattern_edges where pattern_key = 'pm.uptrend.S1.buy_flag' and scope = '{}'"
            )
        ).scalar_one()
        finite = conn.execute(
            sa.text(
                "select bool_and(edge_raw not in ('NaN', 'Infinity', '-Infinity')) from marts.pattern_edges"
            )
        ).scalar_one()
    assert staged == {r["outcome_id"] for r in GOOD_ROWS}
    assert not staged & bad_ids
    assert root_n == len(GOOD_ROWS)
    assert finite


def test_dbt_docs_generate(built: Context):
    run_dbt(built, ["docs", "generate"], DbtVars(as_of=CONFIG.end, lookback_days=LOOKBACK))
    catalog = json.loads((built.settings.home_dir / "dbt" / "target" / "catalog.json").read_text())
    assert "model.leverloop.pattern_edges" in catalog["nodes"]


def test_dbt_unit_tests_pin_the_edge_math(ctx: Context):
    """The SQL's math against hand-computed fixtures (dbt `unit_tests:` in the intermediate yml)."""
    write_outcomes(ctx.engine, simulate(SimConfig(seed=2, outcomes=500, days=3)))
    result = run_dbt(
        ctx,
        ["build", "--select", "+int_cell_edges", "+int_cell_base"],
        DbtVars(as_of=datetime(2026, 1, 8, tzinfo=UTC)),
    )
    unit = [r for r in result.result.results if r.node.resource_type == "unit_test"]
    assert len(unit) == 3
    assert all(str(r.status) == "pass" for r in unit)
