"""Gates on the real loop: poisoned batches stop it, bad rows are quarantined, changes above the
limits wait for an operator (approved/rejected through Prefect's API), shadow and rollback."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from leverloop.domain.gates import GatePolicy
from leverloop.pipeline.context import Context
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.writer import write_outcomes
from leverloop.store import configs
from tests.e2e.prefect_api import wait_for_paused_run

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_server")]
SIM = SimConfig(seed=5, outcomes=12_000, days=28)
T1 = SIM.start + timedelta(days=14)
T2 = SIM.start + timedelta(days=21)
APPROVE = GatePolicy(on_exceed="approve")


def _loop(**kwargs) -> dict[str, Any]:
    from flows.learning_loop import learning_loop

    return learning_loop(lookback_days=14, **kwargs)


def _current(ctx: Context) -> configs.ConfigVersion | None:
    with ctx.engine.connect() as conn:
        return configs.current(conn)


def _scalar(ctx: Context, sql: str, **params) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


async def _latest_markdown(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return str(found[0].data)


def _cli(*args: str, catch: bool = False):
    from leverloop.cli import app

    return CliRunner().invoke(app, list(args), catch_exceptions=catch)


@pytest.fixture
def sim():
    return simulate(SIM)


def _published_v1(ctx: Context, sim) -> None:
    write_outcomes(ctx.engine, sim, until=T1)
    assert _loop(as_of=T1, gates=APPROVE)["version"] == 1


def test_a_batch_with_rr_all_nan_stops_before_publish_with_a_readable_reason(ctx: Context, sim):
    _published_v1(ctx, sim)
    write_outcomes(ctx.engine, sim, since=T1, until=T2)
    with ctx.engine.begin() as conn:  # a producer's broken rr column
        conn.execute(
            sa.text("update raw.trade_outcomes set rr = 'NaN' where closed_at > :t"), {"t": T1}
        )

    result = _loop(as_of=T2, gates=APPROVE)

    assert result["status"] == "blocked" and result["version"] is None
    assert "rr is a finite number in [-20, 100] in at least 95% of the batch" in result["reason"]
    assert "(100.0%) break it" in result["reason"]
    assert _current(ctx).version == 1
    assert _scalar(ctx, "select count(*) from leverloop.quarantine") == 0  # a batch failure
    assert _scalar(ctx, "select count(*) from raw.trade_outcomes where rr = 'NaN'") > 0
    run = _cli("runs")
    assert "blocked" in run.stdout and "rr is a finite number" in run.stdout
    summary = asyncio.run(_latest_markdown("learning-loop-summary"))
    assert "blocked" in summary and "rr is a finite number" in summary
    assert "Data Docs: file://" in summary
    stored = _scalar(
        ctx,
        "select failures from leverloop.gate_results where suite = 'input_trade_outcomes' "
        "order by checked_at desc limit 1",
    )
    assert any(f["check"] == "rr_range" and f["severity"] == "critical" for f in stored)


def test_a_duplicated_day_stops_before_publish(ctx: Context, sim):
    _published_v1(ctx, sim)
    write_outcomes(ctx.engine, sim, since=T1, until=T2)
    with ctx.engine.begin() as conn:  # the producer re-sends the last day under new ids
        conn.execute(
            sa.text(
                """
                insert into raw.trade_outcomes (outcome_id, position_id, module, pattern_key,
                    action_category, scope, opened_at, closed_at, rr, return_pct,
                    max_drawdown_pct, hold_hours, size_fraction, holdout)
                select 'copy-' || outcome_id, position_id, module, pattern_key, action_category,
                       scope, opened_at, closed_at, rr, return_pct, max_drawdown_pct, hold_hours,
                       size_fraction, holdout
                  from raw.trade_outcomes where closed_at > :t - interval '1 day' and closed_at <= :t
                """
            ),
            {"t": T2},
        )

    result = _loop(as_of=T2, gates=APPROVE)

    assert result["status"] == "blocked"
    assert "no closed day is a copy of data already landed" in result["reason"]
    assert _current(ctx).version == 1


def test_a_few_bad_rows_are_quarantined_and_the_good_rows_publish(ctx: Context, sim):
    _published_v1(ctx, sim)
    write_outcomes(ctx.engine, sim, since=T1, until=T2)
    with ctx.engine.begin() as conn:  # direct inserts past the Python ingest
        conn.execute(
            sa.text(
                """
                insert into raw.trade_outcomes (outcome_id, position_id, module, pattern_key,
                    action_category, scope, opened_at, closed_at, rr)
                values ('bad-nan', 'p1', 'pm', 'pm.x', 'entry', '{}', :o, :c, 'NaN'),
                       ('bad-cat', 'p2', 'pm', 'pm.x', 'hodl', '{}', :o, :c, 0.5),
                       ('bad-order', 'p3', 'pm', 'pm.x', 'entry', '{}', :c, :o, 0.5)
                """
            ),
            {"o": T2 - timedelta(hours=3), "c": T2 - timedelta(hours=1)},
        )

    result = _loop(as_of=T2, gates=APPROVE)

    assert result["status"] == "published" and result["version"] == 2
    with ctx.engine.connect() as conn:
        quarantined = dict(
            conn.execute(sa.text("select outcome_id, reason_code from leverloop.quarantine")).all()
        )
        left = conn.execute(
            sa.text("select count(*) from raw.trade_outcomes where outcome_id like 'bad-%'")
        ).scalar_one()
    assert quarantined == {
        "bad-nan": "rr_not_finite",
        "bad-cat": "invalid_action_category",
        "bad-order": "closed_before_opened",
    }
    assert left == 0
    head = _current(ctx)
    assert head.gate_report["input"]["quarantined"] == {
        "trade_outcomes": {
            "rr_not_finite": 1,
            "invalid_action_category": 1,
            "closed_before_opened": 1,
        }
    }
    assert head.diff["counts"]["changed"] > 0 and head.parent_version == 1


def _resume_when_paused(ctx: Context, answer: dict[str, Any], *, timeout: float = 120) -> str:
    """Wait for the run's approval request and answer it through Prefect's API."""
    from prefect.flow_runs import resume_flow_run

    flow_run_id = wait_for_paused_run(ctx, timeout=timeout)
    resume_flow_run(flow_run_id, run_input=answer)
    return flow_run_id


def _run_in_thread(**kwargs) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["result"] = _loop(**kwargs)
        except BaseException as exc:  # surfaced by the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def test_changes_above_the_limits_wait_for_an_operator(
    ctx: Context, sim, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # the CLI runs as with no server
    write_outcomes(ctx.engine, sim, until=T1)
    strict = GatePolicy(max_levers_changed=3, approval_timeout_seconds=300)

    # 0. from the CLI without a Prefect server nobody could approve: rejected, and it says so
    cli = _cli("run", "--as-of", T1.isoformat(), "--lookback-days", "14", "--quiet")
    assert cli.exit_code == 1
    assert "nothing published (rejected)" in cli.stderr and "rejected by policy" in cli.stderr
    assert "--on-exceed approve" in cli.stderr
    assert _current(ctx) is None

    # 1. rejected through the API: nothing published, the decision recorded
    thread, out = _run_in_thread(as_of=T1, gates=strict)
    rejected_run = _resume_when_paused(
        ctx, {"approve": False, "operator": "bob", "reason": "too much at once"}
    )
    thread.join(120)
    assert out["result"]["status"] == "rejected", out
    assert "rejected by bob: too much at once" in out["result"]["reason"]
    assert _current(ctx) is None
    assert _scalar(ctx, "select count(*) from leverloop.lever_state") == 0

    # 2. the same change, approved through the API: published with who/when/why
    thread, out = _run_in_thread(as_of=T1, gates=strict)
    approved_run = _resume_when_paused(
        ctx, {"approve": True, "operator": "alice", "reason": "reviewed the table"}
    )
    thread.join(120)
    assert approved_run != rejected_run
    assert out["result"]["status"] == "published" and out["result"]["version"] == 1, out
    head = _current(ctx)
    assert head.verdict == "approved"
    assert head.gate_report["approval"]["decided_by"] == "alice"
    assert head.gate_report["approval"]["comment"] == "reviewed the table"
    assert not head.gate_report["limits"]["within_limits"]
    with ctx.engine.connect() as conn:
        decisions = conn.execute(
            sa.text(
                "select decision, decided_by, decided_at from leverloop.approvals order by requested_at"
            )
        ).all()
    assert [(d.decision, d.decided_by) for d in decisions] == [
        ("rejected", "policy"),
        ("rejected", "bob"),
        ("approved", "alice"),
    ]
    assert all(d.decided_at is not None for d in decisions)

    # 3. nobody answers: the timeout rejects
    write_outcomes(ctx.engine, sim, since=T1, until=T2)
    result = _loop(as_of=T2, gates=strict.model_copy(update={"approval_timeout_seconds": 3}))
    assert result["status"] == "rejected" and "timeout" in result["reason"]
    assert _current(ctx).version == 1


def test_shadow_mode_stores_would_apply_versions_and_leaves_the_pm_s_config(ctx: Context, sim):
    _published_v1(ctx, sim)
    write_outcomes(ctx.engine, sim, since=T1, until=T2)

    result = _loop(as_of=T2, gates=APPROVE.model_copy(update={"shadow": True}))

    assert result["status"] == "shadow" and result["version"] == 2
    head = _current(ctx)
    assert head.version == 1  # the PM still reads v1
    with ctx.engine.connect() as conn:
        shadow = configs.get(conn, 2)
    assert shadow.shadow and shadow.parent_version == 1 and shadow.verdict == "shadow"
    assert _loop(as_of=T2, gates=APPROVE)["status"] == "no_new_evidence"  # lever state moved on


def test_rollback_publishes_the_old_content_as_a_new_pinned_version(ctx: Context, sim):
    _published_v1(ctx, sim)
    write_outcomes(ctx.engine, sim, since=T1, until=T2)
    assert _loop(as_of=T2, gates=APPROVE)["version"] == 2

    history = _cli("config", "history")
    assert "v2" in history.stdout and "current" in history.stdout
    diff = _cli("config", "diff", "1", "2")
    assert diff.exit_code == 0 and "changed" in diff.stdout

    rolled = _cli("config", "rollback", "1", "--reason", "v2 looks wrong", "--by", "carol")
    assert rolled.exit_code == 0, rolled.stdout
    head = _current(ctx)
    with ctx.engine.connect() as conn:
        v1 = configs.get(conn, 1)
    assert head.version == 3 and head.parent_version == 2
    assert head.content_hash == v1.content_hash and head.verdict == "rollback"
    assert head.gate_report["approval"]["decided_by"] == "carol"
    assert head.gate_report["approval"]["comment"] == "v2 looks wrong"
    same = _cli("config", "rollback", "1", "--reason", "again", catch=True)
    assert "has the same content as the current v3; nothing to do" in str(same.exception)

    # the rollback is pinned: the next learned change is not auto-published
    write_outcomes(ctx.engine, sim, since=T2, until=SIM.end)
    loose = GatePolicy(
        max_levers_changed=10_000,
        max_step_scale=100,
        min_support=1,
        significance=1,
        on_exceed="reject",
    )
    result = _loop(as_of=SIM.end, gates=loose)
    assert result["status"] == "rejected" and "operator's rollback" in result["reason"]
    assert "rejected by policy: on_exceed=reject" in result["reason"]
    assert _current(ctx).version == 3
