"""Gate records: the input window, the candidate scratch table, validation results, approvals."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from leverloop.store.landing import Target
from leverloop.store.runs import COMMITTED


def window_start(conn: sa.Connection, suite: str) -> int:
    """The highest ingest_seq a committed run validated with ``suite`` (0 before any)."""
    return int(
        conn.execute(
            sa.text(
                """
                select coalesce(max(g.hi_seq), 0) from leverloop.gate_results g
                  join leverloop.loop_runs r using (run_id)
                 where g.suite = :suite and r.status in :statuses
                """
            ).bindparams(sa.bindparam("statuses", expanding=True)),
            {"suite": suite, "statuses": list(COMMITTED)},
        ).scalar_one()
    )


def window_end(conn: sa.Connection, target: Target) -> int:
    return int(
        conn.execute(sa.text(f"select coalesce(max(ingest_seq), 0) from raw.{target}")).scalar_one()
    )


def batch_table(target: Target) -> str:
    return f"leverloop.batch_{target}"


def snapshot_batch(conn: sa.Connection, target: Target, lo_seq: int, hi_seq: int) -> int:
    """Copy ``lo_seq < ingest_seq <= hi_seq`` of ``raw.<target>`` into its batch table (in SQL).

    The input suites validate this snapshot: every expectation sees the same rows even while
    producers keep inserting, and the table is recreated from raw each run so it follows raw's
    current columns (nothing depends on the raw table between runs). Returns the row count.
    """
    table = batch_table(target)
    conn.execute(sa.text(f"drop table if exists {table}"))
    return conn.execute(
        sa.text(
            f"create unlogged table {table} as select * from raw.{target} "
            "where ingest_seq > :lo and ingest_seq <= :hi"
        ),
        {"lo": lo_seq, "hi": hi_seq},
    ).rowcount


CANDIDATE_COLUMNS = (
    "run_id",
    "source",
    "section",
    "pattern_key",
    "action_category",
    "scope",
    "lever",
    "kind",
    "value",
    "value_before",
    "neutral",
    "low",
    "high",
    "max_step",
)


def replace_candidate(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
    """The output suite's table holds one candidate: the running one."""
    conn.execute(sa.text("delete from leverloop.candidate_levers"))
    if rows:
        values = ", ".join(
            "cast(:scope as jsonb)" if c == "scope" else f":{c}" for c in CANDIDATE_COLUMNS
        )
        conn.execute(
            sa.text(
                f"insert into leverloop.candidate_levers ({', '.join(CANDIDATE_COLUMNS)}) "
                f"values ({values})"
            ),
            [{**r, "scope": json.dumps(r["scope"], sort_keys=True)} for r in rows],
        )


def record_results(conn: sa.Connection, run_id: str, rows: Iterable[dict[str, Any]]) -> None:
    """Store validation results (one row per suite run); a re-run of a suite replaces it."""
    rows = [
        {
            **r,
            "run_id": run_id,
            "statistics": json.dumps(r["statistics"]),
            "failures": json.dumps(r["failures"], default=str),
        }
        for r in rows
    ]
    if not rows:
        return
    conn.execute(
        sa.text(
            """
            insert into leverloop.gate_results (run_id, suite, stage, target, lo_seq, hi_seq,
                success, blocking, statistics, failures, data_docs)
            values (:run_id, :suite, :stage, :target, :lo_seq, :hi_seq, :success, :blocking,
                cast(:statistics as jsonb), cast(:failures as jsonb), :data_docs)
            on conflict (run_id, suite) do update set stage = excluded.stage,
                target = excluded.target, lo_seq = excluded.lo_seq, hi_seq = excluded.hi_seq,
                success = excluded.success, blocking = excluded.blocking,
                statistics = excluded.statistics, failures = excluded.failures,
                data_docs = excluded.data_docs, checked_at = now()
            """
        ),
        rows,
    )


def request_approval(
    conn: sa.Connection,
    run_id: str,
    flow_run_id: str | None,
    requested_at: datetime,
    reasons: list[str],
) -> None:
    conn.execute(
        sa.text(
            """
            insert into leverloop.approvals (run_id, flow_run_id, requested_at, reasons)
            values (:r, :f, :at, cast(:reasons as jsonb))
            on conflict (run_id) do update set requested_at = excluded.requested_at,
                reasons = excluded.reasons, decision = null, decided_by = null,
                decided_at = null, comment = null
            """
        ),
        {"r": run_id, "f": flow_run_id, "at": requested_at, "reasons": json.dumps(reasons)},
    )


def record_decision(
    conn: sa.Connection,
    run_id: str,
    *,
    decision: str,
    decided_by: str,
    decided_at: datetime,
    comment: str,
) -> None:
    conn.execute(
        sa.text(
            """
            update leverloop.approvals set decision = :d, decided_by = :by, decided_at = :at,
                   comment = :c
             where run_id = :r
            """
        ),
        {"r": run_id, "d": decision, "by": decided_by, "at": decided_at, "c": comment},
    )
