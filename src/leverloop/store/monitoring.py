"""Monitoring data: outcomes per override and arm (from the PM's outcome rows), verdict history.

The PM writes, on each outcome row, the overrides a decision matched
(``applied_overrides``, from ``leverloop.runtime.outcome_fields``) and whether its position
was held out. Grouping by lesson and arm happens here, in SQL; the statistics are in
``leverloop.domain.monitoring``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from leverloop.domain.monitoring import ArmStats, LessonSample, OverrideEffect, latest_verdicts

_SAMPLES_SQL = """
    select e.value ->> 'lesson_id' as lesson_id,
           min(coalesce(e.value ->> 'module', o.module)) as module,
           min(coalesce(e.value ->> 'pattern_key', o.pattern_key)) as pattern_key,
           min(coalesce(e.value ->> 'action_category', o.action_category)) as action_category,
           min(coalesce(e.value -> 'scope', '{}'::jsonb)::text) as scope,
           o.holdout,
           count(*) as n,
           avg(o.rr) as mean,
           coalesce(var_samp(o.rr), 0) as var
      from raw.trade_outcomes o
     cross join lateral jsonb_array_elements(
           case when jsonb_typeof(o.applied_overrides) = 'array' then o.applied_overrides
                else '[]'::jsonb end) e
     where o.closed_at > :since and o.closed_at <= :until
       and o.rr is not null
       and jsonb_typeof(e.value) = 'object' and e.value ? 'lesson_id'
     group by 1, o.holdout
"""


def load_samples(conn: sa.Connection, since: datetime, until: datetime) -> list[LessonSample]:
    """Per lesson: R/R of its applied and its holdout outcomes closed in ``(since, until]``."""
    rows = conn.execute(sa.text(_SAMPLES_SQL), {"since": since, "until": until}).mappings()
    empty = ArmStats(0, 0.0, 0.0)
    merged: dict[str, dict] = {}
    for r in rows:
        entry = merged.setdefault(
            r["lesson_id"],
            {
                "lesson_id": r["lesson_id"],
                "module": r["module"],
                "pattern_key": r["pattern_key"],
                "action_category": r["action_category"],
                "scope": json.loads(r["scope"]),
                "applied": empty,
                "holdout": empty,
            },
        )
        entry["holdout" if r["holdout"] else "applied"] = ArmStats(
            int(r["n"]), float(r["mean"]), float(r["var"])
        )
    return [LessonSample(**entry) for _, entry in sorted(merged.items())]


def save_effects(
    conn: sa.Connection, run_id: str, as_of: datetime, effects: Sequence[OverrideEffect]
) -> None:
    if not effects:
        return
    conn.execute(
        sa.text(
            """
            insert into leverloop.override_effects (run_id, as_of, lesson_id, module, pattern_key,
                action_category, scope, n_applied, n_holdout, mean_applied, mean_holdout, effect,
                ci_low, ci_high, ci_level, verdict, reason)
            values (:run_id, :as_of, :lesson_id, :module, :pattern_key, :action_category,
                cast(:scope as jsonb), :n_applied, :n_holdout, :mean_applied, :mean_holdout, :effect,
                :ci_low, :ci_high, :ci_level, :verdict, :reason)
            """
        ),
        [
            {
                "run_id": run_id,
                "as_of": as_of,
                "lesson_id": e.lesson_id,
                "module": e.module,
                "pattern_key": e.pattern_key,
                "action_category": e.action_category,
                "scope": json.dumps(e.scope, sort_keys=True),
                "n_applied": e.n_applied,
                "n_holdout": e.n_holdout,
                "mean_applied": e.mean_applied,
                "mean_holdout": e.mean_holdout,
                "effect": e.effect,
                "ci_low": e.ci_low,
                "ci_high": e.ci_high,
                "ci_level": e.ci_level,
                "verdict": e.verdict,
                "reason": e.reason,
            }
            for e in effects
        ],
    )


def _latest_verdict_rows(conn: sa.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.text(
            """
            select distinct on (lesson_id) lesson_id, verdict, reason, as_of, effect_id
              from leverloop.override_effects
             order by lesson_id, as_of desc, effect_id desc
            """
        )
    ).mappings()
    return [dict(r) for r in rows]


def load_verdicts(conn: sa.Connection) -> dict[str, str]:
    """{lesson_id: latest verdict} over every monitoring run so far."""
    return latest_verdicts(
        {k: v for k, v in r.items() if k != "reason"} for r in _latest_verdict_rows(conn)
    )


def load_verdicts_with_reasons(conn: sa.Connection) -> dict[str, tuple[str, str]]:
    """{lesson_id: (latest verdict, its reason)}: what the lever engine acts on."""
    rows = _latest_verdict_rows(conn)
    verdicts = latest_verdicts(
        {k: v for k, v in r.items() if k != "reason"} for r in rows
    )  # validates names
    reasons = {r["lesson_id"]: r["reason"] for r in rows}
    return {lesson: (verdict, reasons[lesson]) for lesson, verdict in verdicts.items()}


def run_effects(conn: sa.Connection, run_id: str) -> list[OverrideEffect]:
    """One monitoring run's rows, the most harmful first."""
    rows = conn.execute(
        sa.text(
            """
            select lesson_id, module, pattern_key, action_category, scope, n_applied, n_holdout,
                   mean_applied, mean_holdout, effect, ci_low, ci_high, ci_level, verdict, reason
              from leverloop.override_effects where run_id = :r
             order by effect nulls last, lesson_id
            """
        ),
        {"r": run_id},
    ).mappings()
    return [OverrideEffect(**dict(r)) for r in rows]
