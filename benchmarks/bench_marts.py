"""Marts at scale: dbt build of the learning marts vs a hand-written single SQL statement (the floor).

    uv run python benchmarks/bench_marts.py                      # 1M and 10M outcomes
    uv run python benchmarks/bench_marts.py --sizes 200000       # a quick run

For each size, in a throwaway database on the same server: simulate N outcomes over a window
as long as the lookback (so dbt and the floor aggregate the same rows), land them, then time

* ``dbt run`` of every model (full build), with wall time per model and rows/s;
* the floor: ONE hand-written SELECT computing the same edges as ``pattern_edges`` and
  ``dm_dimension_edges`` straight from the raw tables (checked against the marts);
* an incremental ``dbt run`` after 1% more outcomes land.

It prints the ratios the issue asks for: full build / floor and incremental / full build.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import timedelta

import numpy as np
import sqlalchemy as sa
from _common import scratch_database

from leverloop.domain.outcomes import RR_MAX, RR_MIN
from leverloop.domain.scope import scope_lattice
from leverloop.pipeline.context import Context
from leverloop.pipeline.dbt import DbtVars, run_dbt
from leverloop.settings import Settings
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.model import DM_LATTICE_DIMENSIONS, PM_LATTICE_DIMENSIONS
from leverloop.simulator.writer import write_outcomes

LOOKBACK_DAYS = 28
DEPTH = 2
RECENCY_HALFLIFE = 14.0
CONFIDENCE_K = 30
VARIANCE_PRIOR_N = 5
MIN_TAU2 = 0.0001
FACTORS = ("coherence", "time_efficiency", "recurrence", "variance")
CF = (
    "could_enter_better_rr", "best_entry_delay_bars", "could_exit_better_rr", "best_exit_delay_bars",
    "better_entry_ts", "better_entry_ox", "better_entry_dx", "better_entry_edx",
    "better_exit_ts", "better_exit_ox", "better_exit_dx", "better_exit_edx",
)  # fmt: skip


def floor_sql() -> str:
    """The edges of every cell in one statement, written directly against raw tables."""
    dims_all = list(dict.fromkeys(PM_LATTICE_DIMENSIONS + DM_LATTICE_DIMENSIONS))

    def col(d: str) -> str:
        return f"s_{d.lower()}"

    def scope_obj(dims) -> str:
        return (
            "jsonb_strip_nulls(jsonb_build_object("
            + ", ".join(f"'{d}', case when grouping({col(d)}) = 0 then {col(d)} end" for d in dims)
            + "))"
        )

    daily = []
    for module, dims in (("pm", PM_LATTICE_DIMENSIONS), ("dm", DM_LATTICE_DIMENSIONS)):
        sets = ", ".join(
            "(" + ", ".join(["pattern_key", "action_category", "day", *[col(d) for d in s]]) + ")"
            for s in scope_lattice(dims, DEPTH)
        )
        depth = " + ".join(f"(1 - grouping({col(d)}))" for d in dims)
        incomplete = " or ".join(f"(grouping({col(d)}) = 0 and {col(d)} is null)" for d in dims)
        cf = ", ".join(f"count({f}) as n_{f}, coalesce(sum({f}), 0)::float8 as sum_{f}" for f in CF)
        daily.append(
            f"""select '{module}'::text as module, pattern_key, action_category, {scope_obj(dims)} as scope,
                   ({depth})::int as scope_depth, day, count(*) as n, sum(rr) as sum_rr, sum(rr * rr) as sum_rr2,
                   sum(hold_hours) as sum_hold, {cf}
              from o where module = '{module}'
             group by grouping sets ({sets}) having not ({incomplete})"""
        )
    dim_cols = ", ".join(f"o.scope ->> '{d}' as {col(d)}" for d in dims_all)
    cf_cols = ", ".join(f"c.{f}" for f in CF)

    def window_sums(t: str) -> str:
        return f"""
        sum({t}.n)::bigint as n, count(*)::int as n_days, sum({t}.w * {t}.n) as w_n, sum({t}.w * {t}.w * {t}.n) as w2_n,
        sum({t}.w * {t}.sum_rr) / sum({t}.w * {t}.n) as mean_rr, sum({t}.w * {t}.sum_rr2) / sum({t}.w * {t}.n) as mean_rr2,
        sum({t}.w * {t}.w * {t}.sum_rr * {t}.sum_rr) as c_ss, sum({t}.w * {t}.w * {t}.sum_rr * {t}.n) as c_sn,
        sum({t}.w * {t}.w * {t}.n * {t}.n) as c_nn, sum({t}.w * {t}.sum_hold) / sum({t}.w * {t}.n) as mean_hold"""

    cf_means = ", ".join(
        f"sum(d.w * d.sum_{f}) / nullif(sum(d.w * d.n_{f}), 0) as mean_{f}" for f in CF
    )
    chain = []
    for d in range(DEPTH + 1):
        if d == 0:
            chain.append(
                "prior_0 as (select module, pattern_key, action_category, scope, 0::float8 as prior_rr from base where scope_depth = 0)"
            )
        else:
            chain.append(
                f"""prior_{d} as (
                  select c.module, c.pattern_key, c.action_category, c.scope,
                         sum(p.shrunk / p.post_var) / sum(1 / p.post_var) as prior_rr
                    from base c cross join lateral jsonb_object_keys(c.scope) k (key)
                    join post_{d - 1} p on p.module = c.module and p.pattern_key = c.pattern_key
                     and p.action_category = c.action_category and p.scope = c.scope - k.key
                   where c.scope_depth = {d} group by 1, 2, 3, 4)"""
            )
        keys = "b.module" if d == 0 else "b.module, b.pattern_key, b.action_category"
        chain.append(
            f"""tau_{d} as (
              select {keys}, greatest({MIN_TAU2}, (sum((b.delta - p.prior_rr) ^ 2 / b.se ^ 2) - count(*)) / sum(1 / b.se ^ 2)) as tau2
                from base b join prior_{d} p using (module, pattern_key, action_category, scope)
               where b.scope_depth = {d} group by {keys})"""
        )
        join = "t.module = b.module" + (
            ""
            if d == 0
            else " and t.pattern_key = b.pattern_key and t.action_category = b.action_category"
        )
        chain.append(
            f"""post_{d} as (
              select b.*, coalesce(p.prior_rr, 0) as prior_rr, coalesce(t.tau2, {MIN_TAU2}) as tau2,
                     coalesce(p.prior_rr, 0) + (b.delta - coalesce(p.prior_rr, 0)) * coalesce(t.tau2, {MIN_TAU2})
                         / (coalesce(t.tau2, {MIN_TAU2}) + b.se ^ 2) as shrunk,
                     coalesce(t.tau2, {MIN_TAU2}) * b.se ^ 2 / (coalesce(t.tau2, {MIN_TAU2}) + b.se ^ 2) as post_var
                from base b left join prior_{d} p using (module, pattern_key, action_category, scope)
                left join tau_{d} t on {join}
               where b.scope_depth = {d})"""
        )
    shrunk = " union all ".join(f"select * from post_{d}" for d in range(DEPTH + 1))
    pivot = ", ".join(f"max(weight) filter (where factor = '{f}') as w_{f}" for f in FACTORS)
    score_g = " + ".join(f"coalesce(g.w_{f}, 0) * z_{f}" for f in FACTORS)
    score_r = " + ".join(f"coalesce(r.w_{f}, g.w_{f}, 0) * z_{f}" for f in FACTORS)
    return f"""
    with o as (
        select o.module, o.pattern_key, o.action_category, o.rr,
               greatest(coalesce(o.hold_hours, extract(epoch from o.closed_at - o.opened_at)::float8 / 3600), 0) as hold_hours,
               date_trunc('day', o.closed_at at time zone 'UTC') as day, {dim_cols}, {cf_cols}
          from raw.trade_outcomes o left join raw.counterfactuals c on c.outcome_id = o.outcome_id
         where o.module in ('pm', 'dm') and o.action_category in ('entry', 'add', 'trim', 'exit')
           and o.pattern_key is not null and jsonb_typeof(o.scope) = 'object'
           and o.closed_at >= o.opened_at and o.rr between {RR_MIN} and {RR_MAX}
           and o.closed_at >= (date_trunc('day', cast(:as_of as timestamptz) at time zone 'UTC')
                               - interval '{LOOKBACK_DAYS} days') at time zone 'UTC'
           and o.closed_at <= cast(:as_of as timestamptz)
    ),
    daily as ({" union all ".join(daily)}),
    days as (
        select daily.*, power(0.5, greatest(extract(epoch from (cast(:as_of as timestamptz) at time zone 'UTC')
               - (day + interval '12 hours'))::float8 / 86400, 0) / {RECENCY_HALFLIFE}) as w
          from daily
    ),
    seg_days as (
        select module, action_category, scope, day, max(w) as w, sum(n) as n, sum(sum_rr) as sum_rr,
               sum(sum_rr2) as sum_rr2, sum(sum_hold) as sum_hold
          from days group by 1, 2, 3, 4
    ),
    cells as (
        select d.module, d.pattern_key, d.action_category, d.scope, d.scope_depth, {window_sums("d")}, {cf_means},
               coalesce(sum(d.w) filter (where d.sum_rr / d.n > s.sum_rr / s.n), 0) as above,
               coalesce(sum(d.w) filter (where d.sum_rr / d.n < s.sum_rr / s.n), 0) as below
          from days d
          join seg_days s on s.module = d.module and s.action_category = d.action_category
           and s.scope = d.scope and s.day = d.day
         group by 1, 2, 3, 4, 5
    ),
    segs as (select module, action_category, scope, {window_sums("seg_days")} from seg_days group by 1, 2, 3),
    base as (
        select c.*, s.mean_rr as baseline,
               c.w_n * c.w_n / c.w2_n as n_eff,
               sqrt(greatest(c.mean_rr2 - c.mean_rr ^ 2, 0)) as sd,
               sqrt(greatest(s.mean_rr2 - s.mean_rr ^ 2, 0)) as seg_sd, s.mean_hold as seg_hold,
               c.mean_rr - s.mean_rr as delta,
               greatest(
                   sqrt(((c.w_n * c.w_n / c.w2_n) * greatest(c.mean_rr2 - c.mean_rr ^ 2, 0)
                         + {VARIANCE_PRIOR_N} * greatest(s.mean_rr2 - s.mean_rr ^ 2, 0))
                        / ((c.w_n * c.w_n / c.w2_n) + {VARIANCE_PRIOR_N}) / greatest(c.w_n * c.w_n / c.w2_n, 1)),
                   case when c.n_days >= 2 then sqrt(greatest(c.c_ss - 2 * c.mean_rr * c.c_sn + c.mean_rr ^ 2 * c.c_nn, 0)
                        / (c.w_n * c.w_n) * c.n_days / (c.n_days - 1.0)) else 0 end,
                   1e-9) as se
          from cells c join segs s using (module, action_category, scope)
    ),
    {", ".join(chain)},
    shrunk as ({shrunk}),
    weights as (
        select distinct on (regime, action_category, factor) regime, action_category, factor, weight, confidence
          from leverloop.factor_weights order by regime, action_category, factor, version desc
    ),
    pivot as (select regime, action_category, {pivot} from weights group by 1, 2),
    z as (
        select s.*,
               2 * coalesce(case when delta > 0 then above / nullif(above + below, 0)
                                 when delta < 0 then below / nullif(above + below, 0) end, 0.5) - 1 as z_coherence,
               tanh(ln(greatest(seg_hold, 1e-6) / greatest(mean_hold, 1e-6))) as z_time_efficiency,
               2 * least(1.0, n_days / {LOOKBACK_DAYS}.0) - 1 as z_recurrence,
               tanh(ln(greatest(seg_sd, 1e-6) / greatest(sd, 1e-6))) as z_variance
          from shrunk s
    )
    select z.module, z.pattern_key, z.action_category, z.scope, z.n, z.mean_rr, z.baseline as baseline_rr,
           z.delta as delta_rr, z.se as se_rr, z.shrunk as edge_shrunk,
           z.shrunk * z.n_eff / (z.n_eff + {CONFIDENCE_K}) * least(2.0, greatest(0.5, exp({score_g}))) as edge_raw,
           z.shrunk * z.n_eff / (z.n_eff + {CONFIDENCE_K}) * least(2.0, greatest(0.5, exp({score_r}))) as edge_raw_regime,
           z.mean_could_enter_better_rr
      from z
      left join pivot g on g.regime = '*' and g.action_category = z.action_category
      left join pivot r on r.regime = z.scope ->> 'regime' and r.action_category = z.action_category
    """


def time_dbt(ctx: Context, as_of) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    run_dbt(ctx, ["run"], DbtVars(as_of=as_of, lookback_days=LOOKBACK_DAYS))
    wall = time.perf_counter() - started
    results = json.loads(
        (ctx.settings.home_dir / "dbt" / "target" / "run_results.json").read_text()
    )
    per_model = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results["results"]}
    return wall, per_model


def compare(ctx: Context, floor_rows: list) -> float:
    """Largest absolute difference between the floor's edge_raw and the marts' (same cells)."""
    with ctx.engine.connect() as conn:
        marts = {
            (
                r.module,
                r.pattern_key,
                r.action_category,
                json.dumps(r.scope, sort_keys=True),
            ): r.edge_raw
            for r in conn.execute(
                sa.text(
                    "select module, pattern_key, action_category, scope, edge_raw from marts.pattern_edges "
                    "union all select module, pattern_key, action_category, scope, edge_raw from marts.dm_dimension_edges"
                )
            )
        }
    floor = {
        (
            r.module,
            r.pattern_key,
            r.action_category,
            json.dumps(r.scope, sort_keys=True),
        ): r.edge_raw
        for r in floor_rows
    }
    if floor.keys() != marts.keys():
        raise SystemExit(f"floor and marts disagree on the cells: {len(floor)} vs {len(marts)}")
    return max(abs(floor[k] - marts[k]) for k in floor)


def run_size(n: int, home) -> None:
    config = SimConfig(seed=1, outcomes=int(n * 1.01), days=LOOKBACK_DAYS)
    print(f"\n== {n:,} outcomes over {config.days} days (+1% arriving after the full build)")
    with scratch_database("bench_marts") as db:
        ctx = Context(
            settings=Settings(home=home, database_url=db.url.render_as_string(hide_password=False)),
            db=db,
        )
        t = time.perf_counter()
        sim = simulate(config)
        cut = config.start + timedelta(hours=float(np.quantile(sim.closed_hours, n / sim.n)))
        print(f"simulated in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        write_outcomes(db.engine, sim, until=cut)
        print(f"landed {n:,} outcomes + counterfactuals in {time.perf_counter() - t:.1f} s")
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("vacuum analyze raw.trade_outcomes")
            conn.exec_driver_sql("vacuum analyze raw.counterfactuals")

        full_wall, per_model = time_dbt(ctx, cut)
        print(f"dbt run (full build): {full_wall:.1f} s wall = {n / full_wall:,.0f} outcomes/s")
        for name, seconds in sorted(per_model.items(), key=lambda kv: -kv[1]):
            print(f"    {name:28s} {seconds:8.2f} s")

        with db.engine.connect() as conn:
            conn.exec_driver_sql("set work_mem = '256MB'")  # as the dbt models set
            conn.exec_driver_sql("set enable_nestloop = off")  # as int_cell_edges sets
            t = time.perf_counter()
            rows = conn.execute(sa.text(floor_sql()), {"as_of": cut}).all()
            floor = time.perf_counter() - t
        diff = compare(ctx, rows)
        print(
            f"floor (one hand-written statement): {floor:.1f} s = {n / floor:,.0f} outcomes/s; "
            f"{len(rows):,} cells, max |edge_raw difference| vs marts {diff:.2e}"
        )
        print(f"RATIO full dbt build / floor = {full_wall / floor:.2f}x   (target <= 3x)")

        t = time.perf_counter()
        write_outcomes(db.engine, sim, since=cut)
        print(f"landed {sim.n - n:,} more outcomes (1%) in {time.perf_counter() - t:.1f} s")
        incr_wall, per_model = time_dbt(ctx, config.end)
        top = sorted(per_model.items(), key=lambda kv: -kv[1])[:4]
        print(
            f"dbt run (incremental): {incr_wall:.1f} s wall; slowest: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in top)
        )
        print(f"RATIO incremental / full build = {incr_wall / full_wall:.1%}   (target <= 15%)")
        assert math.isfinite(diff)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as home:
        for n in args.sizes:
            run_size(n, Path(home))


if __name__ == "__main__":
    main()
