"""``leverloop ingest PATH``: load a CSV or Parquet file of outcomes (or counterfactuals).

Every row read is accounted for exactly once: landed, duplicate (same ``outcome_id`` and
content already stored) or quarantined with a reason. ``read == landed + duplicate +
quarantined`` holds for every batch.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from leverloop.domain.outcomes import (
    COUNTERFACTUAL_COLUMNS,
    OUTCOME_COLUMNS,
    OUTCOME_REQUIRED,
    Rejection,
    counterfactual_part,
    validate_counterfactual_row,
    validate_outcome,
)
from leverloop.errors import InputContractError
from leverloop.store.landing import Target, land_rows, record_quarantine

CHUNK_ROWS = 50_000


@dataclass
class IngestReport:
    batch_id: uuid.UUID
    path: str
    target: Target
    read: int = 0
    landed: int = 0
    duplicate: int = 0
    quarantined: int = 0
    counterfactuals_landed: int = 0
    counterfactuals_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)

    def add_reason(self, code: str, count: int = 1) -> None:
        self.reasons[code] = self.reasons.get(code, 0) + count


def _read_chunks(path: Path) -> tuple[list[str], Iterator[list[dict[str, Any]]]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            columns = [c.strip() for c in next(csv.reader(handle), [])]

        def csv_chunks() -> Iterator[list[dict[str, Any]]]:
            with open(path, newline="", encoding="utf-8") as handle:
                chunk: list[dict[str, Any]] = []
                for raw in csv.DictReader(handle):
                    chunk.append({k.strip(): v for k, v in raw.items() if k is not None})
                    if len(chunk) >= CHUNK_ROWS:
                        yield chunk
                        chunk = []
                if chunk:
                    yield chunk

        return columns, csv_chunks()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        columns = list(parquet.schema_arrow.names)

        def parquet_chunks() -> Iterator[list[dict[str, Any]]]:
            for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
                yield batch.to_pylist()

        return columns, parquet_chunks()
    raise InputContractError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")


def ingest_file(
    engine: sa.Engine, path: Path, *, target: Target = "trade_outcomes", now: datetime | None = None
) -> IngestReport:
    if not path.is_file():
        raise InputContractError(f"{path}: no such file")
    now = now or datetime.now(UTC)
    columns, chunks = _read_chunks(path)
    required = OUTCOME_REQUIRED if target == "trade_outcomes" else ("outcome_id",)
    known = set(OUTCOME_COLUMNS) | set(COUNTERFACTUAL_COLUMNS)
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputContractError(
            f"{path}: missing required column(s): {', '.join(missing)}; nothing was loaded"
        )
    report = IngestReport(batch_id=uuid.uuid4(), path=str(path), target=target)
    report.ignored_columns = [c for c in columns if c not in known]
    source = f"file:{path.name}"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into leverloop.ingest_batches (batch_id, source, target) values (:b, :s, :t)"
            ),
            {"b": report.batch_id, "s": source, "t": target},
        )
    for chunk in chunks:
        _ingest_chunk(engine, chunk, report, source=source, now=now)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                update leverloop.ingest_batches
                   set finished_at = now(), rows_read = :r, landed = :l, duplicate = :d, quarantined = :q
                 where batch_id = :b
                """
            ),
            {
                "b": report.batch_id,
                "r": report.read,
                "l": report.landed,
                "d": report.duplicate,
                "q": report.quarantined,
            },
        )
    return report


def _ingest_chunk(
    engine: sa.Engine,
    chunk: list[dict[str, Any]],
    report: IngestReport,
    *,
    source: str,
    now: datetime,
) -> None:
    target = report.target
    good: dict[str, dict[str, Any]] = {}
    good_cf: dict[str, dict[str, Any]] = {}
    raw_by_id: dict[str, dict[str, Any]] = {}
    rejected: list[tuple[str | None, str, str, dict[str, Any]]] = []
    in_file_duplicates = 0
    for raw in chunk:
        report.read += 1
        if target == "trade_outcomes":
            result = validate_outcome(raw, now=now)
            cf = counterfactual_part(raw) if not isinstance(result, Rejection) else None
            if isinstance(cf, Rejection):
                result = cf
        else:
            result, cf = validate_counterfactual_row(raw), None
        oid = str(raw.get("outcome_id") or "").strip() or None
        if isinstance(result, Rejection):
            rejected.append((oid, result.code, result.message, raw))
            continue
        key = result["outcome_id"]
        if key in good:
            if good[key] == result and good_cf.get(key) == (cf or None):
                in_file_duplicates += 1
            else:
                rejected.append(
                    (
                        key,
                        "outcome_id_conflict",
                        f"outcome_id {key!r} appears twice with different content",
                        raw,
                    )
                )
            continue
        good[key] = result
        raw_by_id[key] = raw
        if cf is not None:
            good_cf[key] = cf
    with engine.begin() as conn:
        landed = land_rows(conn, target, list(good.values()), report.batch_id)
        for oid in landed.conflicts:
            rejected.append(
                (
                    oid,
                    "outcome_id_conflict",
                    f"outcome_id {oid!r} was already stored with different content",
                    raw_by_id[oid],
                )
            )
        if good_cf:
            conflicted = set(landed.conflicts)
            cf_rows = [row for oid, row in good_cf.items() if oid not in conflicted]
            cf_result = land_rows(conn, "counterfactuals", cf_rows, report.batch_id)
            report.counterfactuals_landed += cf_result.landed
            report.counterfactuals_quarantined += record_quarantine(
                conn,
                [
                    (
                        oid,
                        "counterfactual_conflict",
                        f"counterfactuals for {oid!r} were already stored with different values",
                        raw_by_id[oid],
                    )
                    for oid in cf_result.conflicts
                ],
                batch_id=report.batch_id,
                source=source,
                target="counterfactuals",
            )
        record_quarantine(conn, rejected, batch_id=report.batch_id, source=source, target=target)
    report.landed += landed.landed
    report.duplicate += landed.duplicate + in_file_duplicates
    report.quarantined += len(rejected)
    for _, code, _, _ in rejected:
        report.add_reason(code)
