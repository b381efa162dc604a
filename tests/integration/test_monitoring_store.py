"""Monitoring on a real PostgreSQL: arms from the PM's outcome rows, verdict history, latest verdicts."""

from __future__ import annotations

import random
import statistics
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from leverloop.domain.pm_config import PmConfig
from leverloop.pipeline.context import Context
from leverloop.pipeline.monitoring import run_monitoring
from leverloop.runtime import Runtime, outcome_fields
from leverloop.settings import Settings
from leverloop.store import monitoring
from leverloop.store.database import Database
from leverloop.store.landing import land_rows

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CONFIG = PmConfig.model_validate(
    {
        "pattern_strength_overrides": [
            {
                "pattern_key": "pm.p",
                "action_category": "entry",
                "scope": {"regime": regime},
                "levers": {"size_mult": 1.3},
                "lesson": {"id": f"ls_{regime}", "strength": 0.5, "decay_halflife_hours": 720},
            }
            for regime in ("dip", "chop", "calm")
        ]
    }
)
# true effect of each lesson on R/R when applied
HARMFUL_DIP = {"dip": -1.5, "chop": 0.0, "calm": 0.0}


def _outcomes(
    n: int, rng: random.Random, effect: dict[str, float] = HARMFUL_DIP, start: datetime = T0
) -> list[dict]:
    runtime = Runtime(holdout_fraction=0.3)
    runtime.install(CONFIG, 3)
    rows = []
    for i in range(n):
        regime = ("dip", "chop", "calm")[i % 3]
        context = {"pattern_key": "pm.p", "position_id": f"pos{i}", "regime": regime}
        learning = runtime.apply_pattern_overrides({}, context, "entry")["learning"]
        fields = outcome_fields(learning)
        rr = rng.gauss(0.2, 1.0) + (0.0 if fields["holdout"] else effect[regime])
        closed = start + timedelta(hours=i % 240)
        rows.append(
            {
                "outcome_id": f"o{start:%m%d}-{i}",
                "position_id": context["position_id"],
                "module": "pm",
                "pattern_key": "pm.p",
                "action_category": "entry",
                "scope": {"regime": regime},
                "opened_at": closed - timedelta(hours=1),
                "closed_at": closed,
                "rr": round(rr, 6),
                **fields,
            }
        )
    return rows


def _land(db: Database, rows: list[dict]) -> None:
    with db.engine.begin() as conn:
        land_rows(conn, "trade_outcomes", rows, uuid.uuid4())


def test_samples_are_the_arms_of_each_lesson_within_the_window(database: Database):
    rows = _outcomes(900, random.Random(1))
    stray = {**rows[0], "outcome_id": "late", "closed_at": T0 + timedelta(days=30)}
    unattributed = {**rows[1], "outcome_id": "none", "applied_overrides": None}
    _land(database, [*rows, stray, unattributed])
    with database.engine.connect() as conn:
        samples = monitoring.load_samples(conn, T0 - timedelta(days=1), T0 + timedelta(days=11))
    assert [s.lesson_id for s in samples] == ["ls_calm", "ls_chop", "ls_dip"]
    for s in samples:
        regime = s.scope["regime"]
        assert (s.module, s.pattern_key, s.action_category) == ("pm", "pm.p", "entry")
        for holdout, arm in ((False, s.applied), (True, s.holdout)):
            rr = [
                r["rr"] for r in rows if r["scope"]["regime"] == regime and r["holdout"] == holdout
            ]
            assert arm.n == len(rr) > 30
            assert arm.mean == pytest.approx(statistics.fmean(rr))
            assert arm.var == pytest.approx(statistics.variance(rr))


def test_a_monitoring_run_records_verdicts_and_disable_sticks(database: Database):
    _land(database, _outcomes(1500, random.Random(2)))
    ctx = Context(
        settings=Settings(database_url=database.url.render_as_string(hide_password=False)),
        db=database,
    )
    as_of = T0 + timedelta(days=11)
    first = run_monitoring(ctx, run_id="m1", as_of=as_of, lookback_days=14)
    verdicts = {e.lesson_id: e.verdict for e in first.effects}
    assert verdicts["ls_dip"] == "disable"
    assert verdicts["ls_chop"] != "disable" and verdicts["ls_calm"] != "disable"
    assert first.summary()["disabled"] == ["ls_dip"]
    assert first.table()[0]["lesson"] == "ls_dip"  # the most harmful first
    with database.engine.connect() as conn:
        assert monitoring.load_verdicts(conn) == verdicts
        stored = monitoring.run_effects(conn, "m1")
    assert [e.lesson_id for e in stored] == [row["lesson"] for row in first.table()]
    assert stored[0] == next(e for e in first.effects if e.lesson_id == "ls_dip")

    # later outcomes in which the dip lesson does no harm (as if it had stayed on): a run over
    # them alone still keeps it disabled, while the others get verdicts from the new data
    later = T0 + timedelta(days=20)
    _land(
        database, _outcomes(1500, random.Random(3), {"dip": 0.5, "chop": 0.0, "calm": 0.0}, later)
    )
    second = run_monitoring(ctx, run_id="m2", as_of=later + timedelta(days=10), lookback_days=10)
    effects = {e.lesson_id: e for e in second.effects}
    assert effects["ls_dip"].verdict == "disable" and effects["ls_dip"].ci_low > 0
    assert "remains disabled" in effects["ls_dip"].reason
    with database.engine.connect() as conn:
        history = conn.execute(
            sa.text(
                "select run_id, count(*) from leverloop.override_effects group by run_id order by 1"
            )
        ).all()
        assert monitoring.load_verdicts(conn)["ls_dip"] == "disable"
    assert [tuple(r) for r in history] == [("m1", 3), ("m2", 3)]
