"""The simulator: deterministic by seed, and the planted truth has every shape the issues need."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from leverloop.domain.outcomes import Rejection, validate_outcome
from leverloop.simulator import SimConfig, simulate

SMALL = SimConfig(seed=3, outcomes=6_000, days=21)


def test_same_seed_same_history_other_seed_other_history():
    a, b, c = simulate(SMALL), simulate(SMALL), simulate(SimConfig(seed=4, outcomes=6_000, days=21))
    assert np.array_equal(a.rr, b.rr) and np.array_equal(a.arm_index, b.arm_index)
    assert not np.array_equal(a.rr, c.rr)


def test_truth_has_the_planted_shapes():
    sim = simulate(SimConfig(seed=7))
    patterns = {a.pattern_key for a in sim.arms}
    assert len(patterns) >= 30
    assert {a.category for a in sim.arms} == {"entry", "add", "trim", "exit"}
    assert len(sim.scope_values) >= 4
    zero = [a for a in sim.arms if a.base_edge == 0]
    assert len(zero) >= 10, "many zero-edge arms"
    assert any(a.base_edge > 0 for a in sim.arms) and any(a.base_edge < 0 for a in sim.arms)
    assert any(a.half_life_hours for a in sim.arms), "some edges decay"
    groups = {a.duplicate_group for a in sim.arms if a.duplicate_group}
    assert len(groups) >= 3
    for group in groups:
        members = [a for a in sim.arms if a.duplicate_group == group]
        assert len({a.pattern_key for a in members}) >= 2
        assert (
            len(
                {
                    (a.base_edge, a.half_life_hours)
                    for a in members
                    if a.category == members[0].category
                }
            )
            == 1
        )
    assert len(set(sim.regime_labels)) >= 3, "regimes switch"


def test_outcomes_follow_the_input_contract_and_the_planted_edge():
    sim = simulate(SimConfig(seed=7, outcomes=20_000))
    scopes = sim.scope_dicts()
    now = datetime(2027, 1, 1, tzinfo=UTC)
    for i in range(0, sim.n, 997):
        row = {
            "outcome_id": f"x{i}",
            "position_id": "p",
            "module": sim.arms[sim.arm_index[i]].module,
            "pattern_key": sim.arms[sim.arm_index[i]].pattern_key,
            "action_category": sim.arms[sim.arm_index[i]].category,
            "scope": scopes[i],
            "opened_at": sim.closed_at(i).isoformat(),
            "closed_at": sim.closed_at(i).isoformat(),
            "rr": float(sim.rr[i]),
        }
        assert not isinstance(validate_outcome(row, now=now), Rejection)
    # the mean rr of positive-edge arms beats that of negative-edge arms by about the planted gap
    edge = np.array([a.base_edge for a in sim.arms])[sim.arm_index]
    gap = sim.rr[edge > 0].mean() - sim.rr[edge < 0].mean()
    planted = sim.true_edge[edge > 0].mean() - sim.true_edge[edge < 0].mean()
    assert abs(gap - planted) < 0.1
    # counterfactual best delays scatter around each arm's true delay
    arm = int(np.bincount(sim.arm_index).argmax())
    rows = sim.arm_index == arm
    truth = sim.arms[arm].best_entry_delay_bars
    assert abs(np.median(sim.counterfactuals["best_entry_delay_bars"][rows]) - truth) <= 1
