"""The loop on the default simulation moves capital levers the right way and leaves zero-edge cells alone
(issue 4's acceptance), with every value of every published config within bounds."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from leverloop.domain.gates import GatePolicy
from leverloop.domain.levers import REGISTRY
from leverloop.domain.scope import scope_key
from leverloop.pipeline.context import Context
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.truth import window_truth
from leverloop.simulator.writer import write_outcomes, write_truth
from leverloop.store import configs

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_server")]
# the acceptance is about learning, not gating: changes above the limits publish by policy
APPROVE = GatePolicy(on_exceed="approve")
LOOKBACK = 28


def test_capital_levers_follow_the_planted_edges(ctx: Context):
    from flows.learning_loop import learning_loop

    config = SimConfig()  # the default simulation
    sim = simulate(config)
    write_truth(ctx.engine, sim)
    since = None
    runs = config.days // 14  # every two weeks of the simulated span
    for k in range(1, runs + 1):
        until = config.start + timedelta(days=14 * k)
        write_outcomes(ctx.engine, sim, since=since, until=until)
        result = learning_loop(as_of=until, lookback_days=LOOKBACK, gates=APPROVE)
        assert result["status"] == "published"
        since = until

    with ctx.engine.connect() as conn:
        truth = window_truth(conn, config.seed, until=config.end, lookback_days=LOOKBACK)
        capital = {
            (r.pattern_key, r.action_category, scope_key(r.scope)): r.value
            for r in conn.execute(
                sa.text(
                    "select pattern_key, action_category, scope, value from leverloop.lever_state "
                    "where lever in ('size_mult', 'alloc_multiplier')"
                )
            )
        }
        versions = (
            conn.execute(sa.text("select version from leverloop.pm_config_versions"))
            .scalars()
            .all()
        )
        published = [configs.get(conn, v).config() for v in versions]

    # clear planted edges with enough evidence: the lever the PM would apply there (the most
    # specific override whose scope the cell's scope contains) sits on the right side of 1
    def effective(key) -> list[float]:
        pattern, category, scope = key
        matches = [
            (len(s), v)
            for (p, c, s), v in capital.items()
            if p == pattern and c == category and set(s) <= set(scope)
        ]
        if not matches:
            return [1.0]
        depth = max(d for d, _ in matches)
        return [v for d, v in matches if d == depth]

    # clear: a large planted edge that also stands out from its segment (what delta_rr measures;
    # where one pattern and its near-duplicate make up most of a segment, the baseline absorbs it)
    clear = [
        (key, cell)
        for key, cell in truth.items()
        if cell.n >= 300
        and abs(cell.true_edge) >= 0.15
        and cell.true_edge * cell.true_edge_vs_baseline > 0
        and abs(cell.true_edge_vs_baseline) >= 0.1
    ]
    assert len(clear) >= 10
    wrong = [
        (key, cell.true_edge, effective(key))
        for key, cell in clear
        if any((v - 1.0) * cell.true_edge <= 0 for v in effective(key))
    ]
    assert not wrong, wrong
    # every non-neutral lever on a cell with a real edge points the right way
    moved = [
        (key, value) for key, value in capital.items() if abs(value - 1.0) >= 0.005 and key in truth
    ]
    real = [(key, value) for key, value in moved if abs(truth[key].true_edge) >= 0.05]
    agree = sum(1 for key, value in real if (value - 1.0) * truth[key].true_edge > 0)
    assert len(real) >= 20 and agree / len(real) >= 0.95
    # zero-edge cells stay within 0.05 of neutral
    zero = {
        key: capital.get(key, 1.0)
        for key, cell in truth.items()
        if cell.n >= 30 and cell.true_edge == 0.0
    }
    assert len(zero) >= 300
    outliers = {key: value for key, value in zero.items() if abs(value - 1.0) > 0.05}
    assert not outliers, outliers
    # no value anywhere in any published config is out of bounds
    assert len(published) == runs
    for pm_config in published:
        for entry in pm_config.overrides():
            for path, value in entry.flat_levers().items():
                assert REGISTRY[path].low <= value <= REGISTRY[path].high
