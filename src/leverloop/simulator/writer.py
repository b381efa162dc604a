"""Land a simulation in PostgreSQL: raw outcomes and counterfactuals, plus ``sim.*`` truth.

Outcomes go through the same landing path as file ingest (``store.landing``), via CSV
chunks built with pyarrow so that millions of rows land in seconds. Writing is idempotent:
outcome ids are deterministic by seed, so writing the same slice twice lands nothing new.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from leverloop.simulator.model import Simulation
from leverloop.simulator.truth import truth_cells_sql
from leverloop.store.landing import COLUMNS, LandResult, land_csv

CSV_CHUNK = 250_000
TRUTH_DEPTH = 2


@dataclass
class WriteResult:
    outcomes: LandResult
    counterfactuals: LandResult
    rows: int


def _timestamps(sim: Simulation, hours: np.ndarray) -> pa.Array:
    start = np.datetime64(sim.config.start.replace(tzinfo=None), "us")
    stamps = start + np.round(hours * 3_600_000_000).astype("timedelta64[us]")
    return pa.array(stamps, type=pa.timestamp("us", tz="UTC"))


def _scope_json(sim: Simulation, rows: np.ndarray) -> pa.Array:
    """Scope JSON per row, built once per distinct combination of dimension values."""
    dims = list(sim.scope_values)
    combined = np.zeros(rows.size, dtype=np.int64)
    uniques = []
    for dim in dims:
        values, inverse = np.unique(sim.scope_values[dim][rows].astype(str), return_inverse=True)
        uniques.append(values)
        combined = combined * len(values) + inverse.ravel()
    combos, combo_index = np.unique(combined, return_inverse=True)
    texts = []
    for code in combos:
        scope = {}
        for dim, values in zip(reversed(dims), reversed(uniques), strict=True):
            code, k = divmod(int(code), len(values))
            if values[k]:
                scope[dim] = str(values[k])
        texts.append(json.dumps(dict(sorted(scope.items())), separators=(",", ":")))
    return pa.array(np.asarray(texts, dtype=object)[combo_index.ravel()], type=pa.string())


def _outcome_table(sim: Simulation, rows: np.ndarray) -> pa.Table:
    arms = sim.arms
    idx = sim.arm_index[rows]
    seed = sim.config.seed
    data: dict[str, Any] = {
        "outcome_id": pa.array([f"sim{seed}-{i:09d}" for i in rows]),
        "position_id": pa.array(sim.position_ids(rows)),
        "module": pa.array(np.array([a.module for a in arms], dtype=object)[idx]),
        "pattern_key": pa.array(np.array([a.pattern_key for a in arms], dtype=object)[idx]),
        "action_category": pa.array(np.array([a.category for a in arms], dtype=object)[idx]),
        "scope": _scope_json(sim, rows),
        "opened_at": _timestamps(sim, sim.closed_hours[rows] - sim.hold_hours[rows]),
        "closed_at": _timestamps(sim, sim.closed_hours[rows]),
        "rr": pa.array(sim.rr[rows]),
        "return_pct": pa.array(sim.return_pct[rows]),
        "max_drawdown_pct": pa.array(sim.max_drawdown_pct[rows]),
        "hold_hours": pa.array(np.round(sim.hold_hours[rows], 6)),
        "size_fraction": pa.array(sim.size_fraction[rows]),
        "pm_config_version": pa.nulls(rows.size, pa.int64()),
        "applied_overrides": pa.nulls(rows.size, pa.string()),
        "holdout": pa.array(np.zeros(rows.size, dtype=bool)),
    }
    assert list(data) == list(COLUMNS["trade_outcomes"])
    return pa.table(data)


def _counterfactual_table(sim: Simulation, rows: np.ndarray) -> pa.Table:
    seed = sim.config.seed
    data: dict[str, Any] = {"outcome_id": pa.array([f"sim{seed}-{i:09d}" for i in rows])}
    for name in COLUMNS["counterfactuals"][1:]:
        data[name] = pa.array(sim.counterfactuals[name][rows])
    return pa.table(data)


def _csv_chunks(build, sim: Simulation, rows: np.ndarray) -> Iterator[bytes]:
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    for begin in range(0, rows.size, CSV_CHUNK):
        buffer = io.BytesIO()
        pacsv.write_csv(build(sim, rows[begin : begin + CSV_CHUNK]), buffer, write_options=options)
        yield buffer.getvalue()


def rows_between(sim: Simulation, since: datetime | None, until: datetime | None) -> np.ndarray:
    """Indices of outcomes with ``since < closed_at <= until`` (open ends when None)."""
    lo = -np.inf if since is None else (since - sim.config.start).total_seconds() / 3600.0
    hi = np.inf if until is None else (until - sim.config.start).total_seconds() / 3600.0
    hours = sim.closed_hours
    return np.flatnonzero((hours > lo) & (hours <= hi))


def write_outcomes(
    engine: sa.Engine,
    sim: Simulation,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> WriteResult:
    """Land outcomes closed in ``(since, until]`` with their counterfactuals, in one transaction."""
    rows = rows_between(sim, since, until)
    batch_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into leverloop.ingest_batches (batch_id, source, target) values (:b, :s, 'trade_outcomes')"
            ),
            {"b": batch_id, "s": f"simulator:seed={sim.config.seed}"},
        )
        if rows.size:
            outcomes = land_csv(
                conn, "trade_outcomes", _csv_chunks(_outcome_table, sim, rows), batch_id
            )
            cfs = land_csv(
                conn, "counterfactuals", _csv_chunks(_counterfactual_table, sim, rows), batch_id
            )
        else:
            outcomes, cfs = LandResult(), LandResult()
        conn.execute(
            sa.text(
                """
                update leverloop.ingest_batches set finished_at = now(), rows_read = :r, landed = :l,
                       duplicate = :d, quarantined = 0 where batch_id = :b
                """
            ),
            {"b": batch_id, "r": int(rows.size), "l": outcomes.landed, "d": outcomes.duplicate},
        )
    return WriteResult(outcomes=outcomes, counterfactuals=cfs, rows=int(rows.size))


def _truth_table(sim: Simulation, rows: np.ndarray) -> pa.Table:
    arms = sim.arms
    idx = sim.arm_index[rows]
    seed = sim.config.seed
    return pa.table(
        {
            "outcome_id": pa.array([f"sim{seed}-{i:09d}" for i in rows]),
            "seed": pa.array(np.full(rows.size, seed, dtype=np.int64)),
            "module": pa.array(np.array([a.module for a in arms], dtype=object)[idx]),
            "pattern_key": pa.array(np.array([a.pattern_key for a in arms], dtype=object)[idx]),
            "action_category": pa.array(np.array([a.category for a in arms], dtype=object)[idx]),
            "scope": _scope_json(sim, rows),
            "closed_at": _timestamps(sim, sim.closed_hours[rows]),
            "true_edge": pa.array(sim.true_edge[rows]),
            "expected_rr": pa.array(sim.expected_rr[rows]),
        }
    )


def write_truth(engine: sa.Engine, sim: Simulation, *, depth: int = TRUTH_DEPTH) -> int:
    """Replace this seed's truth: pattern parameters, regime path, per-outcome and per-cell truth."""
    seed = sim.config.seed
    with engine.begin() as conn:
        for table in ("ground_truth", "outcome_truth", "pattern_truth", "regime_path"):
            conn.execute(sa.text(f"delete from sim.{table} where seed = :s"), {"s": seed})
        conn.execute(
            sa.text(
                """
                insert into sim.pattern_truth (seed, pattern_key, action_category, module, base_edge, focus_dim,
                    focus_value, half_life_hours, duplicate_group, best_entry_delay_bars, best_exit_delay_bars, params)
                values (:seed, :pk, :cat, :mod, :edge, :fd, :fv, :hl, :dup, :bed, :bxd, cast(:params as jsonb))
                """
            ),
            [
                {
                    "seed": seed,
                    "pk": a.pattern_key,
                    "cat": a.category,
                    "mod": a.module,
                    "edge": a.base_edge,
                    "fd": a.focus_dim,
                    "fv": a.focus_value,
                    "hl": a.half_life_hours,
                    "dup": a.duplicate_group,
                    "bed": a.best_entry_delay_bars,
                    "bxd": a.best_exit_delay_bars,
                    "params": json.dumps(a.params()),
                }
                for a in sim.arms
            ],
        )
        conn.execute(
            sa.text("insert into sim.regime_path (seed, starts_at, regime) values (:s, :t, :r)"),
            [
                {"s": seed, "t": sim.config.start + timedelta(hours=float(h)), "r": r}
                for h, r in zip(sim.regime_starts, sim.regime_labels, strict=True)
            ],
        )
        rows = np.arange(sim.n)
        cursor = conn.connection.driver_connection.cursor()
        columns = "outcome_id, seed, module, pattern_key, action_category, scope, closed_at, true_edge, expected_rr"
        with cursor.copy(f"copy sim.outcome_truth ({columns}) from stdin (format csv)") as copy:
            for chunk in _csv_chunks(_truth_table, sim, rows):
                copy.write(chunk)
        cells = conn.execute(
            sa.text(
                "insert into sim.ground_truth (seed, pattern_key, action_category, scope, n, true_edge, "
                "true_edge_vs_baseline) select :seed, pattern_key, action_category, scope, n, true_edge, "
                f"true_edge_vs_baseline from ({truth_cells_sql(depth)}) cells"
            ),
            {"seed": seed, "since": None, "until": None},
        ).rowcount
    return cells


def truth_document(engine: sa.Engine, sim: Simulation) -> dict[str, Any]:
    """The ground truth as a JSON-able document (for ``leverloop simulate --truth PATH``)."""
    seed = sim.config.seed
    with engine.connect() as conn:
        cells = conn.execute(
            sa.text(
                """
                select pattern_key, action_category, scope, n, true_edge, true_edge_vs_baseline
                  from sim.ground_truth where seed = :s order by pattern_key, action_category, scope::text
                """
            ),
            {"s": seed},
        ).mappings()
        cell_rows = [dict(r) for r in cells]
    cfg = sim.config
    return {
        "seed": seed,
        "config": {
            "outcomes": cfg.outcomes,
            "days": cfg.days,
            "start": cfg.start.isoformat(),
            "dm_share": cfg.dm_share,
        },
        "regimes": [
            {"starts_at": (cfg.start + timedelta(hours=float(h))).isoformat(), "regime": r}
            for h, r in zip(sim.regime_starts, sim.regime_labels, strict=True)
        ],
        "patterns": [
            {
                "pattern_key": a.pattern_key,
                "action_category": a.category,
                "module": a.module,
                "base_edge": a.base_edge,
                "focus": {a.focus_dim: a.focus_value} if a.focus_dim else None,
                "half_life_hours": a.half_life_hours,
                "duplicate_group": a.duplicate_group,
                "best_entry_delay_bars": a.best_entry_delay_bars,
                "best_exit_delay_bars": a.best_exit_delay_bars,
                **a.params(),
            }
            for a in sim.arms
        ],
        "cells": cell_rows,
    }


def write_truth_file(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, default=str))
