"""``leverloop demo``: simulate a PM book, run the loop as simulated time passes, compare with truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from leverloop.domain.scope import scope_key
from leverloop.errors import LeverloopError
from leverloop.pipeline.context import Context
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.truth import window_truth
from leverloop.simulator.writer import write_outcomes, write_truth
from leverloop.store import learning

_RESET_TABLES = (
    "leverloop.lessons",
    "leverloop.lesson_events",
    "raw.trade_outcomes",
    "raw.counterfactuals",
    "raw.override_telemetry",
    "leverloop.ingest_batches",
    "leverloop.quarantine",
    "leverloop.loop_runs",
    "leverloop.lever_state",
    "leverloop.lever_state_history",
    "leverloop.pm_config_current",
    "leverloop.pm_config_versions",
    "leverloop.override_effects",
    "leverloop.pattern_halflives",
    "leverloop.pattern_factors",
    "sim.pattern_truth",
    "sim.outcome_truth",
    "sim.ground_truth",
    "sim.regime_path",
)


@dataclass(frozen=True)
class DemoStep:
    as_of: datetime
    landed: int
    status: str
    version: int | None
    overrides: int


@dataclass(frozen=True)
class LearnedLever:
    pattern_key: str
    action_category: str
    scope: dict[str, str]
    lever: str
    value: float
    edge_raw: float | None
    n: int | None
    true_edge: float | None  # vs segment baseline, over the last evidence window


@dataclass(frozen=True)
class DemoReport:
    strongest: list[LearnedLever]
    published_levers: int
    sign_agreement: tuple[int, int]  # (agree, levers with a clear true edge)
    zero_edge_cells: int
    zero_edge_max_deviation: float
    meta: MetaReport | None = None


@dataclass(frozen=True)
class MetaReport:
    """What the last v5 refit found, next to the simulator's planted duplicates and half-lives."""

    factors: int  # latent factors of more than one pattern
    planted_groups: int  # planted near-duplicate groups (per category)
    planted_found: int  # of those, groups that are exactly one factor
    halflives_usable: int
    halflives_decaying: int  # fitted with a finite half-life
    weights_version: int | None
    weights_regimes: list[str]


def reset_demo_database(ctx: Context) -> None:
    """Empty leverloop's tables for a fresh demo, refusing if they hold anything but simulated data."""
    with ctx.engine.begin() as conn:
        foreign = conn.execute(
            sa.text(
                "select count(*) from leverloop.ingest_batches where source not like 'simulator:%'"
            )
        ).scalar_one()
        if foreign:
            raise LeverloopError(
                f"{ctx.db.describe()} holds {foreign} ingested batch(es) that are not simulated; the demo "
                "resets the database, so run it with another LEVERLOOP_HOME (or LEVERLOOP_DATABASE_URL)"
            )
        conn.execute(sa.text(f"truncate {', '.join(_RESET_TABLES)} restart identity"))
        # refitted factor weights go; the documented defaults (version 0) stay
        conn.execute(sa.text("delete from leverloop.factor_weights where version > 0"))


def run_demo(
    ctx: Context,
    config: SimConfig,
    *,
    steps: int,
    lookback_days: int,
    run_loop: Callable[[datetime, int], dict[str, Any]],
    on_step: Callable[[int, DemoStep], None] | None = None,
) -> list[DemoStep]:
    """Land the simulated history in ``steps`` slices and run the loop after each one."""
    sim = simulate(config)
    write_truth(ctx.engine, sim)
    done: list[DemoStep] = []
    since: datetime | None = None
    for k in range(1, steps + 1):
        until = config.start + timedelta(days=config.days * k / steps)
        written = write_outcomes(ctx.engine, sim, since=since, until=until)
        result = run_loop(until, lookback_days)
        step = DemoStep(
            as_of=until,
            landed=written.outcomes.landed,
            status=str(result.get("status")),
            version=result.get("version"),
            overrides=int(result.get("overrides") or 0),
        )
        done.append(step)
        if on_step:
            on_step(k, step)
        since = until
    return done


def learned_vs_truth(
    ctx: Context, *, seed: int, as_of: datetime, lookback_days: int, top: int = 15
) -> DemoReport:
    with ctx.engine.connect() as conn:
        truth = window_truth(conn, seed, until=as_of, lookback_days=lookback_days)
        rows = conn.execute(
            sa.text(
                """
                with edges as (
                    select pattern_key, action_category, scope, edge_raw_regime, n from marts.pattern_edges
                    union all
                    select pattern_key, action_category, scope, edge_raw_regime, n from marts.dm_dimension_edges
                )
                select s.pattern_key, s.action_category, s.scope, s.lever, s.value, e.edge_raw_regime as edge_raw, e.n
                  from leverloop.lever_state s
                  left join edges e
                    on e.pattern_key = s.pattern_key and e.action_category = s.action_category and e.scope = s.scope
                 where s.lever in ('size_mult', 'alloc_multiplier')
                """
            )
        ).mappings()
        levers = []
        for r in rows:
            cell = truth.get((r["pattern_key"], r["action_category"], scope_key(r["scope"])))
            levers.append(
                LearnedLever(
                    pattern_key=r["pattern_key"],
                    action_category=r["action_category"],
                    scope=r["scope"],
                    lever=r["lever"],
                    value=float(r["value"]),
                    edge_raw=r["edge_raw"],
                    n=r["n"],
                    true_edge=cell.true_edge_vs_baseline if cell else None,
                )
            )
        edges = conn.execute(
            sa.text("select pattern_key, action_category, scope, n from marts.pattern_edges")
        ).all()
    published = [lv for lv in levers if abs(lv.value - 1.0) >= 0.005]
    clear = [lv for lv in published if lv.true_edge is not None and abs(lv.true_edge) >= 0.05]
    agree = sum(
        1 for lv in clear if math.copysign(1, lv.value - 1.0) == math.copysign(1, lv.true_edge or 0)
    )
    by_key = {(lv.pattern_key, lv.action_category, scope_key(lv.scope)): lv for lv in levers}
    zero_devs = []
    for pattern_key, category, scope, n in edges:
        key = (pattern_key, category, scope_key(scope))
        cell = truth.get(key)
        if cell is None or n < 30 or abs(cell.true_edge) > 1e-9:
            continue  # only cells whose planted edge is exactly zero
        lever = by_key.get(key)
        zero_devs.append(abs(lever.value - 1.0) if lever else 0.0)
    strongest = sorted(published, key=lambda lv: abs(math.log(lv.value)), reverse=True)[:top]
    with ctx.engine.connect() as conn:
        meta = meta_vs_truth(conn, seed)
    return DemoReport(
        meta=meta,
        strongest=strongest,
        published_levers=len(published),
        sign_agreement=(agree, len(clear)),
        zero_edge_cells=len(zero_devs),
        zero_edge_max_deviation=max(zero_devs, default=0.0),
    )


def meta_vs_truth(conn: sa.Connection, seed: int) -> MetaReport | None:
    factors = learning.latest_factors(conn)
    halflives = learning.latest_halflives(conn)
    if not factors and not halflives:
        return None
    groups: dict[str, set[tuple[str, str, str]]] = {}
    for r in factors:
        groups.setdefault(r.factor_id, set()).add((r.module, r.pattern_key, r.action_category))
    planted: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
    for r in conn.execute(
        sa.text(
            "select module, pattern_key, action_category, duplicate_group from sim.pattern_truth "
            "where seed = :s and duplicate_group is not null"
        ),
        {"s": seed},
    ):
        planted.setdefault((r.duplicate_group, r.action_category), set()).add(
            (r.module, r.pattern_key, r.action_category)
        )
    planted_groups = [members for members in planted.values() if len(members) > 1]
    found = {frozenset(members) for members in groups.values()}
    weights = learning.latest_weights(conn)
    return MetaReport(
        factors=sum(1 for members in groups.values() if len(members) > 1),
        planted_groups=len(planted_groups),
        planted_found=sum(1 for members in planted_groups if frozenset(members) in found),
        halflives_usable=sum(1 for r in halflives if r.status in ("fitted", "persistent")),
        halflives_decaying=sum(1 for r in halflives if r.status == "fitted"),
        weights_version=weights[0].version if weights and weights[0].version > 0 else None,
        weights_regimes=sorted({r.regime for r in weights if r.regime != "*"}),
    )
