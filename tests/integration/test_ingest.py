"""`leverloop ingest`: good rows land, each kind of bad row is quarantined with its reason, re-ingest changes nothing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from leverloop.errors import InputContractError
from leverloop.ingest import ingest_file
from leverloop.store.database import Database

GOOD_SCOPE = json.dumps({"regime": "dip", "bucket": "micro", "A_mode": "normal", "chain": "sol"})


def row(oid: str, **overrides) -> dict:
    base = {
        "outcome_id": oid,
        "position_id": f"pos-{oid}",
        "module": "pm",
        "pattern_key": "pm.uptrend.S1.buy_flag",
        "action_category": "entry",
        "scope": GOOD_SCOPE,
        "opened_at": "2026-02-01T10:00:00Z",
        "closed_at": "2026-02-01T12:00:00Z",
        "rr": "0.8",
        "could_enter_better_rr": "0.1",
        "best_entry_delay_bars": "2",
    }
    base.update(overrides)
    return base


# (row, expected quarantine reason) for every kind of bad row the contract names
BAD_ROWS = [
    (row("bad-nan", rr="nan"), "rr_not_finite"),
    (row("bad-inf", rr="-inf"), "rr_not_finite"),
    (row("bad-range", rr="500"), "rr_out_of_range"),
    (row("bad-order", closed_at="2026-02-01T09:00:00Z"), "closed_before_opened"),
    (row("bad-cat", action_category="hodl"), "invalid_action_category"),
    (row("bad-pattern", pattern_key=""), "missing_pattern_key"),
    (row("bad-scope", scope="{regime:"), "invalid_scope"),
]
GOOD_ROWS = [row(f"good-{i}", rr=str(0.1 * i)) for i in range(10)]


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {
            t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one()
            for t in ("raw.trade_outcomes", "raw.counterfactuals", "leverloop.quarantine")
        }


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_mixed_file_lands_good_rows_and_quarantines_each_bad_one(
    database: Database, tmp_path: Path, fmt: str
):
    rows = GOOD_ROWS[:5] + [r for r, _ in BAD_ROWS] + GOOD_ROWS[5:]
    if fmt == "csv":
        path = write_csv(tmp_path / "outcomes.csv", rows)
    else:
        path = tmp_path / "outcomes.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)

    report = ingest_file(database.engine, path)
    assert (report.read, report.landed, report.duplicate, report.quarantined) == (17, 10, 0, 7)
    assert report.counterfactuals_landed == 10
    with database.engine.connect() as conn:
        landed = set(conn.execute(sa.text("select outcome_id from raw.trade_outcomes")).scalars())
        reasons = dict(
            conn.execute(sa.text("select outcome_id, reason_code from leverloop.quarantine")).all()
        )
        batch = conn.execute(
            sa.text("select rows_read, landed, quarantined from leverloop.ingest_batches")
        ).one()
    assert landed == {r["outcome_id"] for r in GOOD_ROWS}
    assert reasons == {r["outcome_id"] or None: code for r, code in BAD_ROWS}
    assert tuple(batch) == (17, 10, 7)

    before = counts(database)
    again = ingest_file(database.engine, path)
    assert (again.read, again.landed, again.duplicate, again.quarantined) == (17, 0, 10, 7)
    assert counts(database) == before  # a second ingest changes nothing


def test_resent_outcome_with_different_content_is_quarantined(database: Database, tmp_path: Path):
    ingest_file(database.engine, write_csv(tmp_path / "a.csv", GOOD_ROWS[:3]))
    changed = [row("good-1", rr="9.9"), row("good-2", rr=GOOD_ROWS[2]["rr"]), row("new-1")]
    report = ingest_file(database.engine, write_csv(tmp_path / "b.csv", changed))
    assert (report.read, report.landed, report.duplicate, report.quarantined) == (3, 1, 1, 1)
    assert report.reasons == {"outcome_id_conflict": 1}
    with database.engine.connect() as conn:
        rr = conn.execute(
            sa.text("select rr from raw.trade_outcomes where outcome_id = 'good-1'")
        ).scalar_one()
    assert rr == pytest.approx(0.1)  # the stored row is kept, not overwritten


def test_duplicates_within_one_file(database: Database, tmp_path: Path):
    rows = [GOOD_ROWS[0], GOOD_ROWS[0], row("good-0", rr="3.0")]
    report = ingest_file(database.engine, write_csv(tmp_path / "dups.csv", rows))
    assert (report.read, report.landed, report.duplicate, report.quarantined) == (3, 1, 1, 1)


def test_file_without_required_columns_is_refused_whole(database: Database, tmp_path: Path):
    rows = [{k: v for k, v in r.items() if k != "rr"} for r in GOOD_ROWS]
    with pytest.raises(InputContractError, match="missing required column"):
        ingest_file(database.engine, write_csv(tmp_path / "norr.csv", rows))
    assert counts(database)["raw.trade_outcomes"] == 0
