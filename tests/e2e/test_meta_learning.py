"""v5 meta-learning against the simulator's ground truth (issue 6's acceptance).

* On the default simulation, through the loop: every planted near-duplicate group lands in one
  latent factor with nothing unrelated in it, and a group's combined ``size_mult`` exposure is
  no larger than a single pattern's with the same edge.
* On a denser simulation (the default's model with twice the outcomes per day, over 24
  weeks, so that patterns *have* enough data, and with the regime factor plants switched on):
  half-lives whose fit is precise are within 30% of the truth, and the regime weights move where
  the simulator plants factor importance (dip: time efficiency, chop: variance) and stay near the
  global weights elsewhere.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import numpy as np
import pytest

from leverloop.domain import capital
from leverloop.domain.gates import GatePolicy
from leverloop.domain.levers import REGISTRY
from leverloop.domain.scope import canonical_json
from leverloop.learning.refit import MetaPolicy, fit_halflives, refit
from leverloop.learning.regime_weights import FACTORS
from leverloop.pipeline.context import Context
from leverloop.pipeline.dbt import DbtVars, build_marts
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.model import REGIME_FACTOR_PLANTS
from leverloop.simulator.writer import write_outcomes
from leverloop.store import learning, levers

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_server")]
# the acceptance is about learning, not gating: changes above the limits publish by policy
APPROVE = GatePolicy(on_exceed="approve")


def test_duplicates_share_one_factor_and_one_patterns_exposure(ctx: Context):
    from flows.learning_loop import learning_loop

    config = SimConfig()
    sim = simulate(config)
    planted: dict[tuple[str, str], set[tuple[str, str, str]]] = defaultdict(set)
    for arm in sim.arms:
        if arm.duplicate_group:
            planted[(arm.duplicate_group, arm.category)].add(
                (arm.module, arm.pattern_key, arm.category)
            )
    planted = {k: v for k, v in planted.items() if len(v) > 1}
    assert len(planted) >= 5

    since, shared = None, []
    for k in (1, 2, 3):  # three runs, four weeks apart
        until = config.start + timedelta(days=28 * k)
        write_outcomes(ctx.engine, sim, since=since, until=until)
        result = learning_loop(as_of=until, lookback_days=28, gates=APPROVE)
        assert result["status"] == "published"
        since = until
        with ctx.engine.connect() as conn:
            groups, cells = _factor_exposures(conn)
        shared.extend(cells)

    # 5.3 on the last run: one factor per planted group, nothing unrelated in it
    factor_of = {member: fid for fid, members in groups.items() for member in members}
    for members in planted.values():
        (fid,) = {factor_of[m] for m in members}
        assert groups[fid] == members

    # every (factor, scope) where several members hold size_mult, after every run: the target
    # they settle at together is no larger than one pattern with the same edge would settle at
    # on its own (where the cap binds, well below what they would add up to uncapped)
    assert len(shared) >= 3
    for combined, single, _ in shared:
        assert combined <= single + 1e-9
    assert any(uncapped >= 1.5 * single for _, single, uncapped in shared)


def _factor_exposures(conn) -> tuple[dict[str, set], list[tuple[float, float, float]]]:
    """Latent factors of the last run, and per (factor, scope) shared by several members'
    size_mult: (|sum of targets|, largest uncapped target, sum of uncapped targets)."""
    groups: dict[str, set] = defaultdict(set)
    for r in learning.latest_factors(conn):
        groups[r.factor_id].add((r.module, r.pattern_key, r.action_category))
    factor_of = {m: fid for fid, members in groups.items() for m in members if len(members) > 1}
    persistence = {
        (r.module, r.pattern_key, r.action_category): r.persistence
        for r in learning.latest_halflives(conn)
    }
    evidence = {ev.lesson_id: ev for ev in levers.load_edge_evidence(conn)}
    cells: dict[tuple[str, str], list] = defaultdict(list)
    for s in levers.load_state(conn):
        fid = factor_of.get((s.module, s.pattern_key, s.action_category))
        if s.lever == "size_mult" and fid:
            cells[(fid, canonical_json(s.scope))].append(s)
    lever, out = REGISTRY["size_mult"], []
    for members in cells.values():
        single = []
        for s in members:
            ev = evidence.get(s.lesson_id)
            if ev is not None:
                strength = capital.evidence_strength(
                    ev.edge,
                    ev.confidence,
                    persistence.get((s.module, s.pattern_key, s.action_category), 1.0),
                    capital.CapitalPolicy(),
                    ev.edge_sd,
                )
                single.append(abs(capital.target(lever, ev.edge, strength)))
        if len(members) > 1 and single and max(single) > 0:
            out.append(
                (
                    abs(sum(s.target for s in members)),
                    max(single),
                    sum(single),
                )
            )
    return groups, out


def test_halflives_and_regime_weights_with_enough_data(ctx: Context):
    config = SimConfig(outcomes=360_000, days=168, zero_edge_share=0.2, plant_regime_factors=True)
    sim = simulate(config)
    write_outcomes(ctx.engine, sim)
    build_marts(ctx, DbtVars(as_of=config.end, meta_history_days=config.days))
    with ctx.engine.connect() as conn:
        series = learning.load_series(conn)
        current = learning.current_global_weights(conn)

    # 5.2: every decaying pattern whose fit is precise (90% interval within a factor 3.5,
    # away from the bounds) is within 30% of its planted half-life
    truth = {(a.module, a.pattern_key, a.category): a.half_life_hours for a in sim.arms}
    fits = fit_halflives(series, MetaPolicy())
    precise = {
        key: h.fit
        for key, h in fits.items()
        if h.fit.status == "fitted"
        and h.fit.ci_high_days / h.fit.ci_low_days <= 3.5
        and truth.get(key)
    }
    assert len(precise) >= 3, {
        k: (f.half_life_days, f.ci_low_days, f.ci_high_days) for k, f in fits.items()
    }
    for key, fit in precise.items():
        true_days = truth[key] / 24.0
        assert abs(fit.half_life_days / true_days - 1.0) <= 0.30, (key, fit, true_days)
    # persistent planted edges are not mistaken for fast-decaying ones
    for key, h in fits.items():
        if h.fit.status == "fitted" and key in truth and truth[key] is None and h.fit.ci_high_days:
            assert h.fit.ci_high_days >= 30.0, (key, h.fit)

    # 5.1: weights per regime vs the global ones
    meta = refit(series, current)
    weights = {fit.regime: np.array([fit.weights[f] for f in FACTORS]) for fit in meta.weights}
    assert "*" in weights
    moved = {r: float(np.linalg.norm(w - weights["*"])) for r, w in weights.items() if r != "*"}
    planted = {regime: FACTORS.index(factor) for regime, factor in REGIME_FACTOR_PLANTS.items()}
    unplanted = [r for r in moved if r not in planted]
    assert set(planted) <= set(moved) and unplanted
    for regime, factor in planted.items():
        shift = weights[regime] - weights["*"]
        assert shift[factor] >= 0.15, (regime, shift)  # the planted factor matters more there
        assert int(np.argmax(shift)) == factor, (regime, shift)
        assert moved[regime] >= 1.5 * max(moved[r] for r in unplanted), moved
    assert max(moved[r] for r in unplanted) <= 0.3, moved
