"""Store adapters on a real PostgreSQL: migrations, immutable versions, atomic publish + NOTIFY."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
import sqlalchemy as sa

from leverloop.domain.pm_config import PmConfig
from leverloop.store import configs
from leverloop.store.database import Database
from leverloop.store.migrate import current_revision, downgrade, head_revision, upgrade

TABLES = {
    ("raw", "trade_outcomes"),
    ("raw", "counterfactuals"),
    ("raw", "override_telemetry"),
    ("leverloop", "quarantine"),
    ("leverloop", "lever_state"),
    ("leverloop", "lever_state_history"),
    ("leverloop", "pm_config_versions"),
    ("leverloop", "pm_config_current"),
    ("leverloop", "override_effects"),
    ("sim", "ground_truth"),
}


def _tables(db: Database) -> set[tuple[str, str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("select table_schema, table_name from information_schema.tables")
        )
        return {(r[0], r[1]) for r in rows}


def test_migrations_create_the_schema_and_round_trip(database: Database):
    assert current_revision(database) == head_revision()
    assert _tables(database) >= TABLES
    assert upgrade(database) == head_revision()  # idempotent
    downgrade(database, "base")
    assert not (TABLES & _tables(database))
    upgrade(database)
    assert _tables(database) >= TABLES


def test_concurrent_upgrades_from_separate_processes_are_serialised(database: Database):
    downgrade(database, "base")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVERLOOP_")}
    env["LEVERLOOP_DATABASE_URL"] = database.url.render_as_string(hide_password=False)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "leverloop.cli", "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert current_revision(database) == head_revision()
    assert _tables(database) >= TABLES


def _config(size: float) -> PmConfig:
    return PmConfig.model_validate(
        {
            "pattern_strength_overrides": [
                {
                    "pattern_key": "pm.a",
                    "action_category": "entry",
                    "scope": {"regime": "dip"},
                    "levers": {"size_mult": size},
                    "lesson": {"id": "ls_a", "strength": 0.4, "decay_halflife_hours": 720},
                }
            ]
        }
    )


def _libpq(db: Database) -> str:
    return db.libpq_dsn()


def test_publish_is_versioned_deduplicated_and_notified(database: Database):
    listener = psycopg.connect(_libpq(database), autocommit=True)
    listener.execute(f"listen {configs.NOTIFY_CHANNEL}")
    with database.engine.begin() as conn:
        v1 = configs.publish(conn, _config(1.1), run_id="r1")
    with database.engine.begin() as conn:
        same = configs.publish(conn, _config(1.1), run_id="r2")
        v2 = configs.publish(conn, _config(1.2), run_id="r2")
    assert (v1, same, v2) == (1, None, 2)
    with database.engine.connect() as conn:
        head = configs.current(conn)
        assert head is not None and head.version == 2 and head.parent_version == 1
        assert head.config().pattern_strength_overrides[0].flat_levers()["size_mult"] == 1.2
        assert [v.version for v in configs.history(conn)] == [2, 1]
    notified = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    listener.close()
    assert notified == ["1", "2"]


def test_versions_are_immutable_and_a_failed_publish_changes_nothing(database: Database):
    with database.engine.begin() as conn:
        configs.publish(conn, _config(1.1), run_id="r1")
    with pytest.raises(sa.exc.DBAPIError, match="immutable"), database.engine.begin() as conn:
        conn.execute(sa.text("update leverloop.pm_config_versions set payload = '{}'"))
    with pytest.raises(RuntimeError), database.engine.begin() as conn:
        configs.publish(conn, _config(1.3), run_id="r2")
        raise RuntimeError("crash after publish, before commit")
    with database.engine.connect() as conn:
        head = configs.current(conn)
        assert head is not None and head.version == 1
        assert (
            conn.execute(sa.text("select count(*) from leverloop.pm_config_versions")).scalar_one()
            == 1
        )
