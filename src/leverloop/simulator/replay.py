"""Replay simulated decisions through the runtime, with one override planted as harmful.

Each simulated outcome closed in ``(since, until]`` is replayed as the decision that opened
it: a PM action through ``Runtime.apply_pattern_overrides``, a DM allocation through
``Runtime.decide_dm_alloc``, with whatever config the runtime holds (holdout included). The
outcome keeps the simulator's R/R, except when the planted lesson was *applied* (its position
not held out): then it loses ``harm_rr``. A held-out position that matched the planted
lesson keeps its R/R, which is exactly the contrast monitoring has to find.

Outcomes land through ``leverloop.store.landing`` carrying what the runtime returned
(``pm_config_version``, ``applied_overrides``, ``holdout``); the runtime's telemetry is
written to ``raw.override_telemetry`` by a ``TelemetryWriter``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from leverloop.domain.outcomes import RR_MIN
from leverloop.runtime import Runtime, TelemetryBuffer, TelemetryWriter, outcome_fields
from leverloop.runtime.telemetry import context_scope
from leverloop.simulator.model import Simulation
from leverloop.simulator.writer import rows_between
from leverloop.store.landing import land_rows


@dataclass(frozen=True)
class Decision:
    index: int
    module: str
    action_category: str
    context: dict[str, Any]
    size_fraction: float


@dataclass(frozen=True)
class ReplayResult:
    outcomes: int
    landed: int
    holdout: int  # outcomes of held-out positions
    matched: int  # outcomes whose decision matched at least one override
    harmful_applied: int
    harmful_withheld: int
    telemetry_rows: int


def decisions(
    sim: Simulation, since: datetime | None, until: datetime | None
) -> Iterator[Decision]:
    """The decisions behind the outcomes closed in ``(since, until]``, as the PM would pass them."""
    dims = list(sim.scope_values)
    positions = sim.position_ids()
    for i in rows_between(sim, since, until):
        arm = sim.arms[sim.arm_index[i]]
        context: dict[str, Any] = {
            d: str(sim.scope_values[d][i]) for d in dims if sim.scope_values[d][i]
        }
        context.update(
            pattern_key=arm.pattern_key, position_id=str(positions[i]), module=arm.module
        )
        yield Decision(int(i), arm.module, arm.category, context, float(sim.size_fraction[i]))


def _decide(runtime: Runtime, d: Decision) -> tuple[float, dict[str, Any]]:
    """(size_fraction after overrides, learning block) for one decision."""
    if d.module == "dm":
        multiplier, learning = runtime.decide_dm_alloc(d.context, d.action_category)
        return d.size_fraction * multiplier, learning
    out = runtime.apply_pattern_overrides(
        {"size_fraction": d.size_fraction}, d.context, d.action_category
    )
    return out["size_fraction"], out["learning"]


def lesson_traffic(
    sim: Simulation, runtime: Runtime, since: datetime | None, until: datetime | None
) -> Counter[str]:
    """How many replayed decisions each lesson of the runtime's config would touch (no holdout)."""
    probe = Runtime(holdout_fraction=0.0)
    probe.install_index(runtime.index)
    counts: Counter[str] = Counter()
    for d in decisions(sim, since, until):
        counts.update(ov.lesson_id for ov in _decide(probe, d)[1]["overrides"])
    return counts


def replay(
    engine: sa.Engine,
    sim: Simulation,
    runtime: Runtime,
    *,
    since: datetime | None,
    until: datetime | None,
    harmful_lesson: str | None,
    harm_rr: float = 1.0,
    telemetry_dsn: str | None = None,
) -> ReplayResult:
    """Replay, land the outcomes (one transaction) and flush the runtime's telemetry."""
    attached = telemetry_dsn is not None and runtime.telemetry is None
    if attached:
        runtime.telemetry = TelemetryBuffer(capacity=10_000_000)
    seed = sim.config.seed
    rows: list[dict[str, Any]] = []
    holdout = matched = harmful_applied = harmful_withheld = 0
    for d in decisions(sim, since, until):
        i = d.index
        size, learning = _decide(runtime, d)
        fields = outcome_fields(learning)
        lessons = {ov.lesson_id for ov in learning["overrides"]}
        rr = float(sim.rr[i])
        holdout += fields["holdout"]
        matched += bool(lessons)
        if harmful_lesson in lessons:
            if fields["holdout"]:
                harmful_withheld += 1
            else:
                harmful_applied += 1
                rr = max(RR_MIN, rr - harm_rr)
        closed_at = sim.closed_at(i)
        rows.append(
            {
                "outcome_id": f"replay{seed}-{i:09d}",
                "position_id": d.context["position_id"],
                "module": d.module,
                "pattern_key": d.context["pattern_key"],
                "action_category": d.action_category,
                "scope": context_scope(d.context),
                "opened_at": closed_at - timedelta(hours=float(sim.hold_hours[i])),
                "closed_at": closed_at,
                "rr": round(rr, 6),
                "return_pct": float(sim.return_pct[i]),
                "max_drawdown_pct": float(sim.max_drawdown_pct[i]),
                "hold_hours": float(sim.hold_hours[i]),
                "size_fraction": round(size, 6),
                **fields,
            }
        )
    batch_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into leverloop.ingest_batches (batch_id, source, target, rows_read) "
                "values (:b, :s, 'trade_outcomes', :n)"
            ),
            {"b": batch_id, "s": f"simulator:replay:seed={seed}", "n": len(rows)},
        )
        landed = land_rows(conn, "trade_outcomes", rows, batch_id)
        conn.execute(
            sa.text(
                "update leverloop.ingest_batches set finished_at = now(), landed = :l, "
                "duplicate = :d, quarantined = 0 where batch_id = :b"
            ),
            {"b": batch_id, "l": landed.landed, "d": landed.duplicate},
        )
    telemetry_rows = 0
    if telemetry_dsn is not None and runtime.telemetry is not None:
        writer = TelemetryWriter(runtime.telemetry, telemetry_dsn)
        writer.stop()  # no thread was started: this flushes everything buffered, then closes
        telemetry_rows = writer.written
    if attached:
        runtime.telemetry = None
    return ReplayResult(
        outcomes=len(rows),
        landed=landed.landed,
        holdout=holdout,
        matched=matched,
        harmful_applied=harmful_applied,
        harmful_withheld=harmful_withheld,
        telemetry_rows=telemetry_rows,
    )
