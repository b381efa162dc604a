"""Lever state (current value per lever), its history, and the evidence the engine reads from the marts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from leverloop.domain.engine import CounterfactualEvidence, LeverChange, LeverState
from leverloop.domain.lessons import CellEvidence

_STATE_COLUMNS = (
    "lesson_id, module, pattern_key, action_category, scope, lever, value, target, as_of"
)


def load_state(conn: sa.Connection) -> list[LeverState]:
    rows = conn.execute(sa.text(f"select {_STATE_COLUMNS} from leverloop.lever_state")).mappings()
    return [LeverState(**dict(r)) for r in rows]


def save_state(
    conn: sa.Connection,
    run_id: str,
    as_of: datetime,
    states: Sequence[LeverState],
    changes: Sequence[LeverChange],
) -> None:
    """Replace the lever state with ``states`` and append ``changes`` to the history."""
    conn.execute(sa.text("delete from leverloop.lever_state"))
    if states:
        conn.execute(
            sa.text(
                f"insert into leverloop.lever_state ({_STATE_COLUMNS}, updated_run_id) values (:lesson_id, :module, "
                ":pattern_key, :action_category, cast(:scope as jsonb), :lever, :value, :target, :as_of, :run)"
            ),
            [
                {
                    "lesson_id": s.lesson_id,
                    "module": s.module,
                    "pattern_key": s.pattern_key,
                    "action_category": s.action_category,
                    "scope": json.dumps(s.scope),
                    "lever": s.lever,
                    "value": s.value,
                    "target": s.target,
                    "as_of": s.as_of,
                    "run": run_id,
                }
                for s in states
            ],
        )
    if changes:
        conn.execute(
            sa.text(
                """
                insert into leverloop.lever_state_history (run_id, as_of, lesson_id, pattern_key, action_category,
                    scope, lever, value_before, value_after, edge, confidence, n, reason)
                values (:run, :as_of, :lesson_id, :pattern_key, :action_category, cast(:scope as jsonb), :lever,
                    :value_before, :value_after, :edge, :confidence, :n, :reason)
                """
            ),
            [
                {
                    "run": run_id,
                    "as_of": as_of,
                    "lesson_id": c.lesson_id,
                    "pattern_key": c.pattern_key,
                    "action_category": c.action_category,
                    "scope": json.dumps(c.scope),
                    "lever": c.lever,
                    "value_before": c.value_before,
                    "value_after": c.value_after,
                    "edge": c.edge,
                    "confidence": c.confidence,
                    "n": c.n,
                    "reason": c.reason,
                }
                for c in changes
            ],
        )


_EVIDENCE_COLUMNS = """
    module, pattern_key, action_category, scope, scope_depth, n, n_eff, edge_raw_regime as edge, edge_sd,
    confidence, p_value, t_vs_parent
"""


def load_edge_evidence(conn: sa.Connection) -> list[CellEvidence]:
    """The edges dbt built for this run's as_of: PM cells and DM dimension cells.

    The lever rule acts on ``edge_raw_regime`` (the regime-weighted edge of v5.1).
    """
    rows = conn.execute(
        sa.text(
            f"select {_EVIDENCE_COLUMNS} from marts.pattern_edges "
            f"union all select {_EVIDENCE_COLUMNS} from marts.dm_dimension_edges"
        )
    ).mappings()
    return [CellEvidence(**dict(r)) for r in rows]


_SIGNALS = (
    "missed_entry_rr", "mean_entry_delay_bars", "missed_exit_rr", "mean_exit_delay_bars",
    "better_entry_ts", "better_entry_ox", "better_entry_dx", "better_entry_edx",
    "better_exit_ts", "better_exit_ox", "better_exit_dx", "better_exit_edx",
)  # fmt: skip


def load_counterfactual_evidence(conn: sa.Connection) -> list[CounterfactualEvidence]:
    rows = conn.execute(
        sa.text(
            "select module, pattern_key, action_category, scope, scope_depth, n_counterfactuals, "
            f"{', '.join(_SIGNALS)} from marts.counterfactual_deltas"
        )
    ).mappings()
    return [
        CounterfactualEvidence(
            module=r["module"],
            pattern_key=r["pattern_key"],
            action_category=r["action_category"],
            scope=r["scope"],
            scope_depth=r["scope_depth"],
            n_counterfactuals=r["n_counterfactuals"],
            signals={name: r[name] for name in _SIGNALS},
        )
        for r in rows
    ]
