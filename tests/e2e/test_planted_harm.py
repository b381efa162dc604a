"""The closed loop catches a harmful override: replay -> monitoring disables it -> next config drops it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from leverloop.domain.gates import GatePolicy
from leverloop.pipeline.context import Context
from leverloop.runtime import ConfigWatcher, Runtime
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.replay import lesson_traffic, replay
from leverloop.simulator.writer import write_outcomes
from leverloop.store import configs
from tests.e2e.prefect_api import artifact_keys

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_server")]
CONFIG = SimConfig(seed=5, outcomes=30_000, days=28)
# the test is about monitoring, not gating: changes above the limits publish by policy
APPROVE = GatePolicy(on_exceed="approve")


def test_monitoring_disables_a_planted_harmful_override(ctx: Context, tmp_path: Path):
    from flows.learning_loop import learning_loop
    from flows.monitoring import monitoring

    sim = simulate(CONFIG)
    t1 = CONFIG.start + timedelta(days=14)
    write_outcomes(ctx.engine, sim, until=t1)
    assert learning_loop(as_of=t1, lookback_days=14, gates=APPROVE)["version"] == 1

    runtime = Runtime(holdout_fraction=0.2)
    watcher = ConfigWatcher(runtime, ctx.db.libpq_dsn(), home=tmp_path, poll_interval=0.5).start()
    try:
        assert runtime.wait_for_version(1, timeout=20)
        traffic = lesson_traffic(sim, runtime, t1, CONFIG.end)
        pm_strength = {
            ov.lesson_id
            for cell in runtime.index.pm.values()
            for _, _, table in cell.strength
            for ov in table.values()
        }
        planted = max(pm_strength, key=lambda lesson: (traffic[lesson], lesson))
        result = replay(
            ctx.engine,
            sim,
            runtime,
            since=t1,
            until=CONFIG.end,
            harmful_lesson=planted,
            harm_rr=1.0,
            telemetry_dsn=ctx.db.libpq_dsn(),
        )
        assert result.landed == result.outcomes > 0
        assert result.harmful_applied > 0 and result.harmful_withheld > 0
        assert result.telemetry_rows >= result.matched > 0

        summary = monitoring(as_of=CONFIG.end, lookback_days=14)
        assert planted in summary["disabled"]
        # the holdout is per position, so an override applied on the same decisions as the
        # planted one carries its harm too and cannot be told apart: disabling it as well is
        # the conservative verdict. Nothing else may be disabled.
        with ctx.engine.connect() as conn:
            for other in set(summary["disabled"]) - {planted}:
                applied, shared = conn.execute(
                    sa.text(
                        """
                        select count(*), count(*) filter (where applied_overrides @> cast(:p as jsonb))
                          from raw.trade_outcomes
                         where applied_overrides @> cast(:o as jsonb)
                        """
                    ),
                    {
                        "o": json.dumps([{"lesson_id": other, "applied": True}]),
                        "p": json.dumps([{"lesson_id": planted, "applied": True}]),
                    },
                ).one()
                assert applied > 0 and shared >= 0.5 * applied, (other, applied, shared)

        second = learning_loop(as_of=CONFIG.end, lookback_days=14, gates=APPROVE)
        assert second["status"] == "published" and second["lessons_disabled_by_monitoring"] == len(
            summary["disabled"]
        )
        assert runtime.wait_for_version(second["version"], timeout=20)
    finally:
        watcher.stop()

    with ctx.engine.connect() as conn:
        head = configs.current(conn)
        lesson = conn.execute(
            sa.text(
                "select status, disabled_by, reason from leverloop.lessons where lesson_id = :l"
            ),
            {"l": planted},
        ).one()
        withdrawn = conn.execute(
            sa.text(
                "select count(*) from leverloop.lever_state_history "
                "where lesson_id = :l and value_after is null and reason like 'lesson disabled%'"
            ),
            {"l": planted},
        ).scalar_one()
        still_in_state = conn.execute(
            sa.text("select count(*) from leverloop.lever_state where lesson_id = :l"),
            {"l": planted},
        ).scalar_one()
        telemetry = dict(
            conn.execute(
                sa.text("select holdout, count(*) from raw.override_telemetry group by holdout")
            ).all()
        )
    assert head is not None
    published = {e.lesson.id for e in head.config().overrides() if e.lesson.enabled}
    assert planted not in published and published
    # monitoring, not evidence, removed it: the lesson says why, its levers were withdrawn
    assert (lesson.status, lesson.disabled_by) == (
        "disabled",
        "monitor",
    ) and "monitoring" in lesson.reason
    assert withdrawn > 0 and still_in_state == 0
    assert telemetry[True] > 0 and telemetry[False] > 0
    wanted = {"override-effects", "override-monitoring-summary"}
    assert artifact_keys(wanted) == wanted
