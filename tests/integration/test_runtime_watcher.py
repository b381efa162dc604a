"""Hot reload and telemetry against a real PostgreSQL, including the faults they must survive."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from leverloop.domain.pm_config import PmConfig
from leverloop.runtime import ConfigWatcher, Runtime, TelemetryBuffer, TelemetryWriter
from leverloop.runtime.watcher import CHANNEL, LAST_GOOD_FILE, read_last_known_good
from leverloop.store import configs
from leverloop.store.database import Database

CONTEXT = {"pattern_key": "pm.p", "regime": "dip", "position_id": None}


def config(size: float, lesson: str = "ls_p") -> PmConfig:
    return PmConfig.model_validate(
        {
            "pattern_strength_overrides": [
                {
                    "pattern_key": "pm.p",
                    "action_category": "entry",
                    "scope": {"regime": "dip"},
                    "levers": {"size_mult": size},
                    "lesson": {"id": lesson, "strength": 0.5, "decay_halflife_hours": 720},
                }
            ]
        }
    )


def publish(db: Database, size: float) -> int:
    with db.engine.begin() as conn:
        version = configs.publish(conn, config(size), run_id="test")
    assert version is not None
    return version


def size_applied(runtime: Runtime) -> float:
    return runtime.apply_pattern_overrides({"size_fraction": 1.0}, CONTEXT, "entry")[
        "size_fraction"
    ]


def until(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_the_notify_channel_is_the_one_publish_uses():
    assert CHANNEL == configs.NOTIFY_CHANNEL


def test_readers_reach_the_latest_version_through_repeated_connection_kills(
    database: Database, tmp_path: Path
):
    app = f"ll-watch-{uuid.uuid4().hex[:8]}"
    runtimes = [Runtime() for _ in range(3)]
    watchers = [
        ConfigWatcher(
            rt,
            database.libpq_dsn(),
            home=tmp_path / str(i),
            poll_interval=0.3,
            max_backoff=0.2,
            application_name=app,
        ).start()
        for i, rt in enumerate(runtimes)
    ]
    done = threading.Event()
    seen: list[list[int | None]] = [[] for _ in runtimes]

    def read(k: int) -> None:
        while not done.is_set():
            seen[k].append(runtimes[k].version)
            time.sleep(0.001)

    kills = 0

    def kill() -> None:
        nonlocal kills
        with psycopg.connect(database.libpq_dsn(), autocommit=True) as conn:
            while not done.is_set():
                kills += conn.execute(
                    "select count(*) filter (where pg_terminate_backend(pid)) "
                    "from pg_stat_activity where application_name = %s",
                    (app,),
                ).fetchone()[0]
                time.sleep(0.03)

    threads = [threading.Thread(target=read, args=(k,)) for k in range(len(runtimes))]
    threads.append(threading.Thread(target=kill))
    for t in threads:
        t.start()
    try:
        versions = []
        for v in range(40):
            versions.append(publish(database, 1.01 + v / 100))
            time.sleep(0.03)
        latest = versions[-1]
        assert all(rt.wait_for_version(latest, timeout=20) for rt in runtimes)
    finally:
        done.set()
        for t in threads:
            t.join()
        for w in watchers:
            w.stop()
    assert latest == 40 and kills >= 10
    for k, rt in enumerate(runtimes):
        observed = [v for v in seen[k] if v is not None]
        assert observed == sorted(observed)  # never backwards, as any reader sees it
        assert list(rt.installed) == sorted(set(rt.installed))
        assert rt.version == latest and size_applied(rt) == pytest.approx(1.4)
        assert watchers[k].connects >= 2  # it was cut off and came back
        assert read_last_known_good(tmp_path / str(k) / "runtime" / LAST_GOOD_FILE)[0] == latest


def _insert_raw_version(db: Database, version: int, payload: str) -> None:
    """What a broken producer might do: bypass publish() and its validation."""
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into leverloop.pm_config_versions (version, content_hash, payload) "
                "values (:v, 'forged', cast(:p as jsonb))"
            ),
            {"v": version, "p": payload},
        )
        conn.execute(sa.text("update leverloop.pm_config_current set version = :v"), {"v": version})
        conn.execute(sa.text("select pg_notify(:c, :v)"), {"c": CHANNEL, "v": str(version)})


def test_a_malformed_config_is_rejected_and_the_last_good_one_stays(
    database: Database, tmp_path: Path
):
    publish(database, 1.2)
    runtime = Runtime()
    watcher = ConfigWatcher(runtime, database.libpq_dsn(), home=tmp_path, poll_interval=0.3).start()
    try:
        assert runtime.wait_for_version(1, timeout=10)
        out_of_bounds = config(1.2).model_dump(mode="json")
        out_of_bounds["pattern_strength_overrides"][0]["levers"]["size_mult"] = 9.0
        _insert_raw_version(database, 2, json.dumps(out_of_bounds))
        assert until(lambda: 2 in watcher.rejected)
        # (one at a time: the watcher reads the current pointer, so it would skip straight to 3)
        _insert_raw_version(database, 3, json.dumps({"pattern_overrides": "not a list"}))
        assert until(lambda: set(watcher.rejected) == {2, 3})
        time.sleep(0.7)  # a few poll cycles: rejected versions are not retried
        assert runtime.version == 1 and size_applied(runtime) == pytest.approx(1.2)
        assert "size_mult" in watcher.rejected[2] and "pattern_overrides" in watcher.rejected[3]
        assert read_last_known_good(tmp_path / "runtime" / LAST_GOOD_FILE)[0] == 1

        assert publish(database, 0.8) == 4  # the next good version is taken
        assert runtime.wait_for_version(4, timeout=10)
        assert size_applied(runtime) == pytest.approx(0.8)
    finally:
        watcher.stop()


def _rename(db: Database, old: str, new: str) -> None:
    admin = sa.create_engine(
        db.url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    with admin.connect() as conn:
        conn.execute(
            sa.text("select pg_terminate_backend(pid) from pg_stat_activity where datname = :d"),
            {"d": old},
        )
        conn.exec_driver_sql(f'alter database "{old}" rename to "{new}"')
    admin.dispose()


def test_a_pm_starting_while_the_database_is_down_runs_on_the_last_known_good_config(
    database: Database, tmp_path: Path
):
    publish(database, 1.3)
    first = Runtime()
    watcher = ConfigWatcher(first, database.libpq_dsn(), home=tmp_path).start()
    assert first.wait_for_version(1, timeout=10)
    watcher.stop()

    name = str(database.url.database)
    database.dispose()
    _rename(database, name, f"{name}_away")  # the database is gone for its clients
    try:
        runtime = Runtime()
        watcher = ConfigWatcher(
            runtime, database.libpq_dsn(), home=tmp_path, poll_interval=0.3, max_backoff=0.2
        ).start()
        assert runtime.version == 1 and watcher.last_good_loaded == 1  # before any connect
        assert size_applied(runtime) == pytest.approx(1.3)
        assert watcher.wait_ready(10) and not watcher.connected
        assert until(lambda: watcher.connection_failures >= 2)

        away = Database(url=database.url.set(database=f"{name}_away"), embedded=database.embedded)
        publish(away, 0.9)  # published while this PM could not see the database
        away.dispose()
    finally:
        _rename(database, f"{name}_away", name)
    try:
        assert runtime.wait_for_version(2, timeout=15)  # it reconnects and catches up
        assert size_applied(runtime) == pytest.approx(0.9)
    finally:
        watcher.stop()


def test_an_unreadable_last_known_good_file_is_ignored(tmp_path: Path):
    path = tmp_path / "runtime" / LAST_GOOD_FILE
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 3, "payload": {"pattern_overrides": 7}}')
    runtime = Runtime()
    watcher = ConfigWatcher(runtime, "host=127.0.0.1 port=1 dbname=none", home=tmp_path)
    assert watcher.load_last_known_good() is None
    assert runtime.version is None and "last-known-good" in (watcher.last_error or "")


def _telemetry(db: Database) -> list[dict]:
    with db.engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.text("select * from raw.override_telemetry order by telemetry_id")
            ).mappings()
        ]


def test_telemetry_is_written_in_batches_off_the_hot_path(database: Database):
    buffer = TelemetryBuffer(capacity=1000)
    runtime = Runtime(holdout_fraction=0.5, telemetry=buffer)
    runtime.install(config(1.4), 7)
    results = []
    for i in range(40):
        context = {
            "pattern_key": "pm.p",
            "regime": "dip",
            "bucket": "micro",
            "position_id": f"p{i}",
            "outcome_id": f"o{i}",
            "module": "pm",
        }
        results.append(runtime.apply_pattern_overrides({"size_fraction": 0.1}, context, "entry"))
    runtime.apply_pattern_overrides({}, {"pattern_key": "pm.other", "position_id": "x"}, "entry")
    assert len(buffer) == 40  # decisions that matched nothing leave no telemetry

    writer = TelemetryWriter(
        buffer, database.libpq_dsn(), flush_interval=0.05, batch_size=7
    ).start()
    try:
        assert until(lambda: writer.written == 40)
    finally:
        writer.stop()
    rows = _telemetry(database)
    assert len(rows) == 40 and len(buffer) == 0
    held = {f"p{i}" for i, r in enumerate(results) if r["learning"]["holdout"]}
    assert 0 < len(held) < 40
    for row in rows:
        assert row["pm_config_version"] == 7 and row["lesson_id"] == "ls_p"
        assert row["scope"] == {"regime": "dip", "bucket": "micro"}
        assert row["override_scope"] == {"regime": "dip"} and row["levers"] == {"size_mult": 1.4}
        assert row["holdout"] == (row["position_id"] in held) and row["applied"] != row["holdout"]
        assert row["reason"] == ("holdout" if row["holdout"] else "applied")
        assert row["outcome_id"] == "o" + row["position_id"][1:]


def test_a_full_buffer_drops_and_counts_and_writing_survives_outages_and_bad_rows(
    database: Database,
):
    buffer = TelemetryBuffer(capacity=5)
    runtime = Runtime(holdout_fraction=0.0, telemetry=buffer)
    runtime.install(config(1.1), 1)
    for i in range(12):
        runtime.apply_pattern_overrides({}, {**CONTEXT, "position_id": f"p{i}"}, "entry")
    assert (len(buffer), buffer.dropped, runtime.errors) == (5, 7, 0)
    assert runtime.stats()["telemetry_dropped"] == 7

    writer = TelemetryWriter(buffer, "host=127.0.0.1 port=1 dbname=none", connect_timeout=1)
    assert writer.flush() == 0 and writer.write_errors == 1  # the database is away
    runtime.apply_pattern_overrides({}, {**CONTEXT, "position_id": "p-late"}, "entry")
    assert buffer.dropped == 7  # the failed batch waits aside; the buffer had room again

    writer.dsn = database.libpq_dsn()  # the database is back
    assert writer.flush() == 6
    for position in ("p-before", "bad\x00id", "p-after"):  # PostgreSQL refuses NUL in text
        runtime.apply_pattern_overrides({}, {**CONTEXT, "position_id": position}, "entry")
    assert writer.flush() == 2 and writer.discarded == 1  # only the bad row is lost
    assert writer.flush() == 0 and writer.discarded == 1  # and it is not retried
    writer.stop()
    assert writer.written == 8
    expected = ["p0", "p1", "p2", "p3", "p4", "p-late", "p-before", "p-after"]
    assert [r["position_id"] for r in _telemetry(database)] == expected


def _summary(index) -> set[tuple]:
    return {
        (
            ov.module,
            ov.section,
            ov.pattern_key,
            ov.action_category,
            ov.scope,
            ov.lesson_id,
            ov.levers,
        )
        for cells in (index.pm, index.dm)
        for cell in cells.values()
        for probes in (cell.strength, cell.tuning)
        for _, _, table in probes
        for ov in table.values()
    }


def _good_payload() -> dict:
    payload = config(1.2).model_dump(mode="json")
    payload["pattern_overrides"] = [
        {
            "pattern_key": "pm.p",
            "action_category": "exit",
            "scope": {"bucket": "micro"},
            "levers": {"trail_mult": 0.9, "signal_thresholds": {"min_ox_for_trim": 0.4}},
            "lesson": {"id": "ls_t", "strength": 0.2, "decay_halflife_hours": 100},
        }
    ]
    payload["learning_overrides_enabled_regimes"] = ["dip"]
    return payload


def _variants() -> list:
    good = _good_payload()
    entry = good["pattern_strength_overrides"][0]
    return [
        good,
        {**good, "learning_overrides_enabled": False},
        {},
        {**good, "pattern_strength_overrides": [entry, entry]},  # duplicate key
        {**good, "pattern_overrides": None},
        {**good, "pattern_overrides": {"not": "a list"}},
        {**good, "unknown_flag": True},
        {**good, "schema_version": 2},
        {**good, "pattern_strength_overrides": [{**entry, "levers": {"size_mult": 1.7}}]},
        {**good, "pattern_strength_overrides": [{**entry, "levers": {"trail_mult": 1.1}}]},
        {**good, "pattern_strength_overrides": [{**entry, "action_category": "hold"}]},
        [good],
        "text",
    ]


def test_the_incremental_loader_accepts_exactly_what_pm_config_accepts(database: Database):
    from leverloop.runtime.index import compile_config
    from leverloop.runtime.watcher import VersionLoader

    variants = _variants()
    with database.engine.begin() as conn:
        for version, payload in enumerate(variants, start=1):
            conn.execute(
                sa.text(
                    "insert into leverloop.pm_config_versions (version, content_hash, payload) "
                    "values (:v, 'h', cast(:p as jsonb))"
                ),
                {"v": version, "p": json.dumps(payload)},
            )
    loader = VersionLoader()
    accepted = []
    with psycopg.connect(database.libpq_dsn(), autocommit=True) as conn:
        for version, payload in enumerate(variants, start=1):
            try:
                expected = PmConfig.model_validate_json(json.dumps(payload))
            except ValueError:
                expected = None
            fetched = loader.fetch(conn, version)
            try:
                loaded = loader.load(fetched)
            except ValueError:
                loaded = None
            assert (loaded is None) == (expected is None), payload
            if loaded is not None:
                accepted.append(version)
                reference = compile_config(expected, version)
                assert _summary(loaded.index) == _summary(reference)
                assert (loaded.index.enabled, loaded.index.regimes) == (
                    reference.enabled,
                    reference.regimes,
                )
                assert PmConfig.model_validate_json(loaded.payload_text()) == expected
    assert accepted == [1, 2, 3]


def test_the_loader_reuses_unchanged_entries_from_the_active_version(database: Database):
    from leverloop.runtime.watcher import VersionLoader

    payload = _good_payload()
    changed = json.loads(json.dumps(payload))
    changed["pattern_strength_overrides"][0]["levers"]["size_mult"] = 1.3
    with database.engine.begin() as conn:
        for version, body in ((1, payload), (2, changed)):
            conn.execute(
                sa.text(
                    "insert into leverloop.pm_config_versions (version, content_hash, payload) "
                    "values (:v, 'h', cast(:p as jsonb))"
                ),
                {"v": version, "p": json.dumps(body)},
            )
    loader = VersionLoader()
    with psycopg.connect(database.libpq_dsn(), autocommit=True) as conn:
        first = loader.load(loader.fetch(conn, 1))
        loader.keep(first)
        second = loader.load(loader.fetch(conn, 2))

    def by_lesson(loaded) -> dict:
        return {ov.lesson_id: ov for _, ov in loaded.entries.values() if ov is not None}

    one, two = by_lesson(first), by_lesson(second)
    assert two["ls_t"] is one["ls_t"]  # unchanged entry: the same compiled object
    assert two["ls_p"] is not one["ls_p"] and dict(two["ls_p"].levers)["size_mult"] == 1.3


def test_start_wires_the_module_functions_to_hot_reload_and_telemetry(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import leverloop.runtime as runtime

    rt = Runtime(holdout_fraction=0.0)
    monkeypatch.setattr(runtime, "_default", rt)  # the module's runtime, fresh for this test
    publish(database, 1.25)
    url = database.url.render_as_string(hide_password=False)  # an SQLAlchemy URL works too
    service = runtime.start(url, home=tmp_path, poll_interval=0.3, wait=10)
    try:
        assert runtime.default_runtime() is rt and rt.version == 1
        out = runtime.apply_pattern_overrides({"size_fraction": 1.0}, CONTEXT, "entry")
        assert out["size_fraction"] == pytest.approx(1.25)
        assert runtime.apply_dm_alloc_multiplier(2.0, CONTEXT) == 2.0  # no DM override
        assert runtime.decide_dm_alloc(CONTEXT).learning["pm_config_version"] == 1
        publish(database, 0.75)
        assert rt.wait_for_version(2, timeout=10)
        out = runtime.apply_pattern_overrides({"size_fraction": 1.0}, CONTEXT, "entry")
        assert out["size_fraction"] == pytest.approx(0.75)
        assert until(lambda: service.writer.written == 2)
    finally:
        service.stop()
    assert rt.telemetry is None
    assert [r["pm_config_version"] for r in _telemetry(database)] == [1, 2]
    assert (tmp_path / "runtime" / LAST_GOOD_FILE).is_file()
