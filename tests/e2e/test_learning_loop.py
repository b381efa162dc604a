"""The learning loop as a real Prefect flow on a real database, run after run."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from leverloop.domain.gates import GatePolicy
from leverloop.domain.levers import REGISTRY
from leverloop.pipeline.context import Context
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.writer import write_outcomes
from leverloop.store import configs
from tests.e2e.prefect_api import artifact_keys

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_server")]
CONFIG = SimConfig(seed=5, outcomes=15_000, days=28)
# these tests are about the loop, not its limits: above-limit changes are approved by policy
GATES = GatePolicy(on_exceed="approve")


def _versions(ctx: Context) -> list[int]:
    with ctx.engine.connect() as conn:
        return [v.version for v in configs.history(conn)]


def test_loop_publishes_on_new_evidence_and_only_then(ctx: Context):
    from flows.learning_loop import learning_loop

    sim = simulate(CONFIG)
    t1 = CONFIG.start + timedelta(days=14)
    write_outcomes(ctx.engine, sim, until=t1)

    first = learning_loop(as_of=t1, lookback_days=14, gates=GATES)
    assert first["status"] == "published" and first["version"] == 1
    assert first["overrides"] > 0

    again = learning_loop(as_of=t1, lookback_days=14, gates=GATES)
    assert again["status"] == "no_new_evidence"
    later_clock = learning_loop(as_of=t1 + timedelta(hours=6), lookback_days=14, gates=GATES)
    assert later_clock["status"] == "no_new_evidence"  # time alone is not evidence
    assert _versions(ctx) == [1]

    write_outcomes(ctx.engine, sim, since=t1, until=CONFIG.end)
    second = learning_loop(as_of=CONFIG.end, lookback_days=14, gates=GATES)
    assert second["status"] == "published" and second["version"] == 2
    assert _versions(ctx) == [2, 1]

    with ctx.engine.connect() as conn:
        head = configs.current(conn)
        runs = dict(
            conn.execute(
                sa.text("select status, count(*) from leverloop.loop_runs group by status")
            ).all()
        )
        history = conn.execute(
            sa.text("select count(*) from leverloop.lever_state_history")
        ).scalar_one()
    assert head is not None and head.version == 2 and head.diff["counts"]["changed"] > 0
    for entry in head.config().pattern_strength_overrides:
        for path, value in entry.flat_levers().items():
            lever = REGISTRY[path]
            assert lever.low <= value <= lever.high
    assert runs == {"published": 2, "no_new_evidence": 2}
    assert history > 0
    assert artifact_keys({"learning-loop-summary"}) == {"learning-loop-summary"}


def _state(ctx: Context) -> tuple:
    with ctx.engine.connect() as conn:
        return tuple(
            conn.execute(sa.text("select count(*), sum(value) from leverloop.lever_state")).one()
        )


def _last_run(ctx: Context):
    with ctx.engine.connect() as conn:
        return conn.execute(
            sa.text(
                "select status, error from leverloop.loop_runs order by started_at desc limit 1"
            )
        ).one()


def test_a_failing_step_publishes_nothing_and_keeps_the_current_config(ctx: Context):
    from flows.learning_loop import learning_loop

    sim = simulate(CONFIG)
    t1 = CONFIG.start + timedelta(days=14)
    write_outcomes(ctx.engine, sim, until=t1)
    assert learning_loop(as_of=t1, lookback_days=14, gates=GATES)["version"] == 1
    state_before = _state(ctx)

    write_outcomes(ctx.engine, sim, since=t1, until=CONFIG.end)
    with ctx.engine.begin() as conn:  # break the input schema under the running loop
        conn.execute(sa.text("alter table raw.trade_outcomes rename column rr to rr_broken"))
    blocked = learning_loop(as_of=CONFIG.end, lookback_days=14, gates=GATES)
    assert blocked["status"] == "blocked" and '"missing": ["rr"]' in blocked["reason"]
    assert _last_run(ctx).status == "blocked" and "rr" in _last_run(ctx).error

    with ctx.engine.begin() as conn:  # repaired; now the commit itself fails
        conn.execute(sa.text("alter table raw.trade_outcomes rename column rr_broken to rr"))
        conn.execute(
            sa.text(
                """
                create function pg_temp_fail() returns trigger language plpgsql as
                $$ begin raise exception 'disk full (simulated)'; end $$;
                create trigger fail before insert on leverloop.lever_state
                for each statement execute function pg_temp_fail();
                """
            )
        )
    with pytest.raises(Exception, match="disk full"):
        learning_loop(as_of=CONFIG.end, lookback_days=14, gates=GATES)

    with ctx.engine.connect() as conn:
        head = configs.current(conn)
    assert head is not None and head.version == 1
    run = _last_run(ctx)
    assert run.status == "failed" and "disk full" in run.error
    assert _state(ctx) == state_before
