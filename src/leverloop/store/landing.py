"""Landing validated rows in the raw tables: bulk COPY into a temp table, then one merge.

Idempotent on ``outcome_id``: a row whose id is already stored with the same content is a
*duplicate* (nothing changes); with different content it is a *conflict*, returned to the
caller for quarantine. The file ingest and the simulator share this path.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from leverloop.domain.outcomes import COUNTERFACTUAL_COLUMNS, OUTCOME_COLUMNS

Target = Literal["trade_outcomes", "counterfactuals"]
COLUMNS: dict[Target, tuple[str, ...]] = {
    "trade_outcomes": OUTCOME_COLUMNS,
    "counterfactuals": ("outcome_id", *COUNTERFACTUAL_COLUMNS),
}
_JSON_COLUMNS = {"scope", "applied_overrides"}
INGEST_LOCK_KEY = 0x1E7E_1001  # transaction-level advisory lock: one merge into raw at a time


@dataclass
class LandResult:
    landed: int = 0
    duplicate: int = 0
    conflicts: list[str] = field(default_factory=list)


def _cell(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in _JSON_COLUMNS:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _jsonable(value: Any) -> Any:
    """JSON-safe copy of a quarantined payload: NaN/inf become strings so nothing is lost."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _temp_table(conn: sa.Connection, target: Target) -> str:
    name = f"_landing_{target}"
    conn.exec_driver_sql(f"drop table if exists pg_temp.{name}")
    cols = ", ".join(COLUMNS[target])
    conn.exec_driver_sql(
        f"create temp table {name} on commit drop as select {cols} from raw.{target} with no data"
    )
    return name


def _copy_rows(
    conn: sa.Connection, table: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]
) -> None:
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"copy {table} ({', '.join(columns)}) from stdin") as copy:
        for row in rows:
            copy.write_row([_cell(c, row.get(c)) for c in columns])


def _copy_csv(
    conn: sa.Connection, table: str, columns: Sequence[str], chunks: Iterable[bytes]
) -> None:
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"copy {table} ({', '.join(columns)}) from stdin (format csv)") as copy:
        for chunk in chunks:
            copy.write(chunk)


def _merge(conn: sa.Connection, target: Target, table: str, batch_id: uuid.UUID) -> LandResult:
    columns = COLUMNS[target]
    cols = ", ".join(columns)
    conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": INGEST_LOCK_KEY})
    total = conn.exec_driver_sql(f"select count(*) from {table}").scalar_one()
    landed = conn.execute(
        sa.text(
            f"""
            with ins as (
                insert into raw.{target} ({cols}, batch_id)
                select {cols}, :batch from {table} order by outcome_id
                on conflict (outcome_id) do nothing
                returning 1
            )
            select count(*) from ins
            """
        ),
        {"batch": batch_id},
    ).scalar_one()
    content = [c for c in columns if c != "outcome_id"]
    differs = " or ".join(f"t.{c} is distinct from r.{c}" for c in content)
    conflicts = list(
        conn.exec_driver_sql(
            f"select t.outcome_id from {table} t join raw.{target} r using (outcome_id) where {differs}"
        ).scalars()
    )
    return LandResult(landed=landed, duplicate=total - landed - len(conflicts), conflicts=conflicts)


def land_rows(
    conn: sa.Connection, target: Target, rows: Sequence[dict[str, Any]], batch_id: uuid.UUID
) -> LandResult:
    """Land normalised rows (unique ``outcome_id`` within ``rows``) into ``raw.<target>``."""
    if not rows:
        return LandResult()
    table = _temp_table(conn, target)
    _copy_rows(conn, table, COLUMNS[target], rows)
    return _merge(conn, target, table, batch_id)


def land_csv(
    conn: sa.Connection, target: Target, chunks: Iterable[bytes], batch_id: uuid.UUID
) -> LandResult:
    """Land CSV chunks whose columns are ``COLUMNS[target]`` in order (the simulator's fast path)."""
    table = _temp_table(conn, target)
    _copy_csv(conn, table, COLUMNS[target], chunks)
    return _merge(conn, target, table, batch_id)


def record_quarantine(
    conn: sa.Connection,
    items: Sequence[tuple[str | None, str, str, dict[str, Any]]],
    *,
    batch_id: uuid.UUID | None,
    source: str,
    target: Target,
) -> int:
    """Store rejected rows with their reason: items are (outcome_id, reason_code, reason, payload).

    Idempotent: the same row rejected for the same reason again (a re-sent file) is kept once,
    under the batch that first brought it. Returns how many items were given.
    """
    if not items:
        return 0
    conn.execute(
        sa.text(
            """
            insert into leverloop.quarantine
                (batch_id, source, target_table, outcome_id, reason_code, reason, payload, fingerprint)
            values (:batch, :source, :target, :oid, :code, :reason, cast(:payload as jsonb),
                    md5(:target || chr(31) || :code || chr(31) || cast(cast(:payload as jsonb) as text)))
            on conflict (fingerprint) do nothing
            """
        ),
        [
            {
                "batch": batch_id,
                "source": source,
                "target": target,
                "oid": oid,
                "code": code,
                "reason": reason,
                "payload": json.dumps(_jsonable(payload), default=str, ensure_ascii=False),
            }
            for oid, code, reason, payload in items
        ],
    )
    return len(items)
