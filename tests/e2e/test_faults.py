"""Crash safety and one-run-at-a-time, with real processes killed by SIGKILL.

After a kill at any step the current config is the last committed one, readable and valid,
and the next run completes normally; two runs triggered together publish exactly one version.
"""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from leverloop import faults
from leverloop.domain.gates import GatePolicy
from leverloop.domain.levers import REGISTRY
from leverloop.pipeline.context import Context
from leverloop.pipeline.publish import concurrency_limit_name, database_lock
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.writer import write_outcomes
from leverloop.store import configs
from tests.e2e import loop_process
from tests.e2e.prefect_api import wait_for_paused_run

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_server")]
SIM = SimConfig(seed=3, outcomes=12_000, days=28)
APPROVE = GatePolicy(on_exceed="approve")


@pytest.fixture
def children(prefect_server, ctx: Context, monkeypatch: pytest.MonkeyPatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())  # undone after the test
    return loop_process.context()


def _env(ctx: Context, **extra: str) -> dict[str, str]:
    return {
        "LEVERLOOP_DATABASE_URL": ctx.db.url.render_as_string(hide_password=False),
        "LEVERLOOP_HOME": str(ctx.settings.home_dir),
        **extra,
    }


def _head(ctx: Context) -> configs.ConfigVersion | None:
    with ctx.engine.connect() as conn:
        return configs.current(conn)


def _assert_valid(head: configs.ConfigVersion) -> None:
    config = head.config()  # parses: the PM can read it
    assert config.content_hash() == head.content_hash
    for entry in config.overrides():
        for path, value in entry.flat_levers().items():
            assert REGISTRY[path].in_bounds(value), (path, value)


def _counts(ctx: Context) -> tuple[int, int]:
    with ctx.engine.connect() as conn:
        return (
            conn.execute(sa.text("select count(*) from raw.trade_outcomes")).scalar_one(),
            conn.execute(sa.text("select count(*) from leverloop.quarantine")).scalar_one(),
        )


def _slots(ctx: Context) -> tuple[int, int]:
    """(limit, active slots) of the loop's Prefect global concurrency limit."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(concurrency_limit_name(ctx.db))
    return limit.limit, limit.active_slots


def _insert_bad_rows(ctx: Context, tag: str, when) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                insert into raw.trade_outcomes (outcome_id, position_id, module, pattern_key,
                    action_category, scope, opened_at, closed_at, rr)
                values (:a, 'p', 'pm', 'pm.x', 'entry', '{}', :o, :c, 'NaN'),
                       (:b, 'p', 'pm', 'pm.x', 'hodl', '{}', :o, :c, 0.5)
                """
            ),
            {"a": f"{tag}-nan", "b": f"{tag}-cat", "o": when - timedelta(hours=2), "c": when},
        )


def _kill_when_paused(ctx: Context, process, timeout: float = 180) -> None:
    wait_for_paused_run(ctx, timeout=timeout, alive=process.is_alive)
    process.kill()


def test_a_kill_at_every_step_keeps_the_last_committed_config_and_the_next_run_recovers(
    ctx: Context, children, tmp_path: Path
):
    from flows.learning_loop import learning_loop

    sim = simulate(SIM)
    clock = SIM.start + timedelta(days=14)
    write_outcomes(ctx.engine, sim, until=clock)
    assert learning_loop(as_of=clock, lookback_days=14, gates=APPROVE)["version"] == 1

    for step in (*faults.STEPS, "approval"):
        since, clock = clock, clock + timedelta(hours=30)
        write_outcomes(ctx.engine, sim, since=since, until=clock)
        _insert_bad_rows(ctx, step, clock)
        before, rows_before = _head(ctx), _counts(ctx)

        out = tmp_path / f"{step}.json"
        if step == "approval":  # killed while paused for an operator
            gates = GatePolicy(max_levers_changed=0, approval_timeout_seconds=600)
            process = loop_process.start(children, env=_env(ctx), as_of=clock, gates=gates, out=out)
            _kill_when_paused(ctx, process)
        else:
            env = _env(ctx, **{faults.ENV: step})
            process = loop_process.start(children, env=env, as_of=clock, gates=APPROVE, out=out)
        process.join(300)
        assert process.exitcode == -signal.SIGKILL, (step, process.exitcode)
        assert loop_process.result(out) is None

        head = _head(ctx)
        _assert_valid(head)
        if step == "committed":  # killed after the commit: the new version stands
            assert head.version == before.version + 1 and head.created_by_run_id is not None
        else:
            assert (head.version, head.content_hash) == (before.version, before.content_hash), step
        moved = (rows_before[0] - 2, rows_before[1] + 2)  # the two bad rows, quarantined
        # the quarantine step is one transaction: killed inside it, nothing has moved
        before_quarantine = faults.STEPS[: faults.STEPS.index("quarantine") + 1]
        assert _counts(ctx) == (rows_before if step in before_quarantine else moved), step

        assert _slots(ctx) == (1, 1), step  # the dead run's slot is still taken ...

        after = learning_loop(as_of=clock, lookback_days=14, gates=APPROVE, lock_wait_seconds=30)
        assert _slots(ctx) == (1, 0), step  # ... the next run freed it, ran, gave it back
        expected = {"no_new_evidence"} if step == "committed" else {"published", "no_change"}
        assert after["status"] in expected, (step, after)
        _assert_valid(_head(ctx))
        assert _counts(ctx) == moved, step

    with ctx.engine.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.text("select status, count(*) from leverloop.loop_runs group by status")
            ).all()
        )
    assert statuses.get("failed") is None  # killed runs stay 'running'; none was mislabelled


def test_two_runs_triggered_together_publish_exactly_one_version(
    ctx: Context, children, tmp_path: Path
):
    from flows.learning_loop import learning_loop

    sim = simulate(SIM)
    t1 = SIM.start + timedelta(days=14)
    write_outcomes(ctx.engine, sim, until=t1)
    assert learning_loop(as_of=t1, lookback_days=14, gates=APPROVE)["version"] == 1
    write_outcomes(ctx.engine, sim, since=t1, until=SIM.end)

    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    processes = [
        loop_process.start(children, env=_env(ctx), as_of=SIM.end, gates=APPROVE, out=out)
        for out in outs
    ]
    for process in processes:
        process.join(300)
        assert process.exitcode == 0
    statuses = sorted(loop_process.result(out)["status"] for out in outs)
    assert statuses == ["no_new_evidence", "published"]
    with ctx.engine.connect() as conn:
        versions = [v.version for v in configs.history(conn)]
        published = conn.execute(
            sa.text("select count(*) from leverloop.loop_runs where status = 'published'")
        ).scalar_one()
    assert versions == [2, 1] and published == 2


def test_a_second_trigger_that_cannot_wait_exits_with_a_clear_message(ctx: Context):
    from flows.learning_loop import learning_loop

    with database_lock(ctx.db, "leverloop-loop someone-else", wait_seconds=0):
        result = learning_loop(as_of=SIM.end, lookback_days=14, gates=APPROVE, lock_wait_seconds=1)
    assert result["status"] == "busy"
    assert "another learning-loop run holds the loop's lock" in result["reason"]
    assert "leverloop-loop someone-else" in result["reason"]
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from leverloop.loop_runs")).scalar_one() == 0
