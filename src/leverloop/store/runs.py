"""Loop runs: what each run saw (as_of, evidence watermark) and what it did."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

# statuses after which the lever state reflects the run's evidence ("shadow": a would-apply
# version was stored, the lever state moved on, the current config did not)
COMMITTED = ("published", "no_change", "shadow")


@dataclass(frozen=True)
class Watermark:
    """The evidence a run sees: outcomes closed at or before ``as_of`` that have landed."""

    as_of: datetime
    count: int
    max_seq: int

    def same_evidence(self, other: Watermark | None) -> bool:
        return other is not None and (self.count, self.max_seq) == (other.count, other.max_seq)


def evidence_watermark(conn: sa.Connection, as_of: datetime) -> Watermark:
    count, max_seq = conn.execute(
        sa.text(
            "select count(*), coalesce(max(ingest_seq), 0) from raw.trade_outcomes where closed_at <= :as_of"
        ),
        {"as_of": as_of},
    ).one()
    return Watermark(as_of=as_of, count=int(count), max_seq=int(max_seq))


def last_committed(conn: sa.Connection) -> Watermark | None:
    row = conn.execute(
        sa.text(
            """
            select as_of, evidence_count, evidence_seq from leverloop.loop_runs
             where status in :statuses order by as_of desc, finished_at desc limit 1
            """
        ).bindparams(sa.bindparam("statuses", expanding=True)),
        {"statuses": list(COMMITTED)},
    ).first()
    return Watermark(as_of=row[0], count=int(row[1]), max_seq=int(row[2])) if row else None


def start(conn: sa.Connection, run_id: str, flow_run_id: str | None, as_of: datetime) -> None:
    conn.execute(
        sa.text(
            "insert into leverloop.loop_runs (run_id, flow_run_id, status, as_of) values (:r, :f, 'running', :a)"
        ),
        {"r": run_id, "f": flow_run_id, "a": as_of},
    )


def finish(
    conn: sa.Connection,
    run_id: str,
    status: str,
    *,
    watermark: Watermark | None = None,
    published_version: int | None = None,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    conn.execute(
        sa.text(
            """
            update leverloop.loop_runs
               set finished_at = now(), status = :s, evidence_count = :c, evidence_seq = :q,
                   published_version = :v, summary = cast(:summary as jsonb), error = :e
             where run_id = :r
            """
        ),
        {
            "r": run_id,
            "s": status,
            "c": watermark.count if watermark else None,
            "q": watermark.max_seq if watermark else None,
            "v": published_version,
            "summary": json.dumps(summary, default=str) if summary is not None else None,
            "e": error,
        },
    )


def recent(conn: sa.Connection, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(
        sa.text(
            """
            select run_id, status, as_of, started_at, finished_at, evidence_count, published_version, error
              from leverloop.loop_runs order by started_at desc limit :n
            """
        ),
        {"n": limit},
    ).mappings()
    return [dict(r) for r in rows]
