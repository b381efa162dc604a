"""Store-level guarantees the gates rely on: shadow versions, the parent check, the run lock."""

from __future__ import annotations

import psycopg
import pytest

from leverloop.pipeline.publish import RunInProgress, database_lock
from leverloop.store import configs
from leverloop.store.database import Database
from tests.integration.configs import one_lever_config


def test_shadow_versions_are_stored_but_never_current_nor_notified(database: Database):
    listener = psycopg.connect(database.libpq_dsn(), autocommit=True)
    listener.execute(f"listen {configs.NOTIFY_CHANNEL}")
    with database.engine.begin() as conn:
        v1 = configs.publish(conn, one_lever_config(1.1), run_id="r1")
    with database.engine.begin() as conn:
        v2 = configs.publish(conn, one_lever_config(1.2), run_id="r2", shadow=True, parent=1)
    with database.engine.begin() as conn:
        again = configs.publish(conn, one_lever_config(1.2), run_id="r3", shadow=True, parent=1)
        same_as_current = configs.publish(conn, one_lever_config(1.1), run_id="r3", shadow=True)
    assert (v1, v2, again, same_as_current) == (1, 2, None, None)
    with database.engine.connect() as conn:
        assert configs.current(conn).version == 1
        assert [(v.version, v.shadow) for v in configs.history(conn)] == [(2, True), (1, False)]
    notified = [n.payload for n in listener.notifies(timeout=1, stop_after=2)]
    listener.close()
    assert notified == ["1"]


def test_publishing_against_a_stale_parent_fails_and_changes_nothing(database: Database):
    with database.engine.begin() as conn:
        configs.publish(conn, one_lever_config(1.1), run_id="r1")
    stale = pytest.raises(configs.PublishConflict, match="current pm_config is v1, not none")
    with stale, database.engine.begin() as conn:
        configs.publish(conn, one_lever_config(1.3), run_id="r2", parent=None)
    with database.engine.connect() as conn:
        assert [v.version for v in configs.history(conn)] == [1]


def test_the_run_lock_admits_one_holder_and_names_it(database: Database):
    busy = pytest.raises(RunInProgress, match="leverloop-loop first")
    with database_lock(database, "leverloop-loop first", wait_seconds=0), busy:  # noqa: SIM117
        with database_lock(database, "leverloop-loop second", wait_seconds=0.6):
            pass
    with database_lock(database, "leverloop-loop third", wait_seconds=0):
        pass  # released on exit
