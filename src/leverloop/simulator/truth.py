"""Ground truth per lattice cell, computed in SQL from ``sim.outcome_truth``.

``true_edge`` is the mean planted edge of the cell's outcomes; ``true_edge_vs_baseline``
subtracts the mean planted edge of the cell's segment (same module, category and scope),
which is what a measured ``delta_rr`` estimates. A time window restricts both to outcomes
closed in ``(since, until]`` (NULL bounds are open), so a decaying edge can be compared with
what a loop run saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from leverloop.domain.scope import ScopeKey, scope_key, scope_lattice
from leverloop.simulator.model import DM_LATTICE_DIMENSIONS, PM_LATTICE_DIMENSIONS

MODULE_DIMENSIONS = (("pm", PM_LATTICE_DIMENSIONS), ("dm", DM_LATTICE_DIMENSIONS))


def _module_sql(module: str, dims: tuple[str, ...], depth: int) -> str:
    subsets = scope_lattice(dims, depth)
    cols = ", ".join(f"scope->>'{d}' as d_{d}" for d in dims)

    def sets(keys: list[str]) -> str:
        return ", ".join("(" + ", ".join(keys + [f"d_{d}" for d in s]) + ")" for s in subsets)

    scope_obj = (
        "jsonb_strip_nulls(jsonb_build_object("
        + ", ".join(f"'{d}', case when grouping(d_{d}) = 0 then d_{d} end" for d in dims)
        + "))"
    )
    incomplete = " or ".join(f"(grouping(d_{d}) = 0 and d_{d} is null)" for d in dims)
    return (
        f"""
        select '{module}'::text as module, c.pattern_key, c.action_category, c.scope, c.n,
               c.te as true_edge, c.te - s.seg_te as true_edge_vs_baseline
          from (
            select pattern_key, action_category, {scope_obj} as scope, count(*) as n, avg(true_edge) as te
              from t_{module} group by grouping sets ({sets(["pattern_key", "action_category"])})
            having not ({incomplete})
          ) c
          join (
            select action_category, {scope_obj} as scope, avg(true_edge) as seg_te
              from t_{module} group by grouping sets ({sets(["action_category"])})
            having not ({incomplete})
          ) s using (action_category, scope)
    """,
        f"""t_{module} as (
            select pattern_key, action_category, true_edge, {cols}
              from sim.outcome_truth
             where seed = :seed and module = '{module}'
               and (cast(:since as timestamptz) is null or closed_at > cast(:since as timestamptz))
               and (cast(:until as timestamptz) is null or closed_at <= cast(:until as timestamptz))
        )""",
    )


def truth_cells_sql(depth: int) -> str:
    """A SELECT of (module, pattern_key, action_category, scope, n, true_edge, true_edge_vs_baseline).

    Bind ``:seed``, ``:since`` and ``:until``.
    """
    parts = [_module_sql(module, dims, depth) for module, dims in MODULE_DIMENSIONS]
    ctes = ",\n".join(cte for _, cte in parts)
    body = "\nunion all\n".join(select for select, _ in parts)
    return f"with {ctes}\n{body}"


@dataclass(frozen=True)
class TruthCell:
    module: str
    n: int
    true_edge: float
    true_edge_vs_baseline: float


def window_truth(
    conn: sa.Connection, seed: int, *, until: datetime, lookback_days: int, depth: int = 2
) -> dict[tuple[str, str, ScopeKey], TruthCell]:
    """Truth per (pattern_key, category, scope) over the loop's evidence window ending at ``until``."""
    rows = conn.execute(
        sa.text(truth_cells_sql(depth)),
        {"seed": seed, "since": until - timedelta(days=lookback_days), "until": until},
    ).mappings()
    return {
        (r["pattern_key"], r["action_category"], scope_key(r["scope"])): TruthCell(
            r["module"], int(r["n"]), float(r["true_edge"]), float(r["true_edge_vs_baseline"])
        )
        for r in rows
    }
