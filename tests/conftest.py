"""Shared fixtures: a real PostgreSQL per test (embedded pgserver, or a TCP server), real Prefect.

Databases: one embedded pgserver for the whole session (under the system temp dir, reused
across sessions), and a fresh database created from it for each test that asks. When
``LEVERLOOP_TEST_PG_URL`` names a PostgreSQL server reachable over TCP (CI sets it to the
machine's service), store tests also run against it: the ``backend`` fixture is
parametrized over every backend available, nothing is skipped.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Prefect reads its settings at import: set ours before anything imports it.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault(
    "PREFECT_HOME", str(Path(tempfile.gettempdir()) / f"leverloop-tests-{os.getuid()}" / "prefect")
)
os.environ.pop("LEVERLOOP_DATABASE_URL", None)
os.environ.pop("PREFECT_API_URL", None)

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from leverloop.pipeline.context import Context
from leverloop.settings import Settings
from leverloop.store.database import Database, parse_database_url
from leverloop.store.migrate import upgrade

# Shared CI machines vary in speed: no per-example deadline, no slow-generation failures.
settings.register_profile("leverloop", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("leverloop")

REPO = Path(__file__).resolve().parents[1]
TEST_ROOT = Path(tempfile.gettempdir()) / f"leverloop-tests-{os.getuid()}"


def _backends() -> list[str]:
    return ["embedded", "tcp"] if os.environ.get("LEVERLOOP_TEST_PG_URL") else ["embedded"]


@pytest.fixture(scope="session")
def embedded_admin_url() -> sa.URL:
    from leverloop.store.embedded import embedded_url

    return embedded_url(TEST_ROOT, "postgres")


def _admin_url(backend: str, request: pytest.FixtureRequest) -> sa.URL:
    if backend == "tcp":
        return parse_database_url(os.environ["LEVERLOOP_TEST_PG_URL"])
    return request.getfixturevalue("embedded_admin_url")


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _create_database(admin: sa.URL) -> tuple[sa.URL, sa.Engine]:
    name = f"ll_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'create database "{name}"')
    return admin.set(database=name), engine


def _drop_database(engine: sa.Engine, url: sa.URL) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(f'drop database if exists "{url.database}" with (force)')
    engine.dispose()


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest) -> Iterator[Database]:
    """An empty, migrated database on each available backend."""
    url, admin_engine = _create_database(_admin_url(backend, request))
    db = Database(url=url, embedded=backend == "embedded")
    upgrade(db)
    yield db
    db.dispose()
    _drop_database(admin_engine, url)


@pytest.fixture
def embedded_database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """An empty, migrated database on the embedded server (for dbt and flow tests)."""
    url, admin_engine = _create_database(request.getfixturevalue("embedded_admin_url"))
    db = Database(url=url, embedded=True)
    upgrade(db)
    yield db
    db.dispose()
    _drop_database(admin_engine, url)


def url_text(db: Database) -> str:
    return db.url.render_as_string(hide_password=False)


@pytest.fixture
def ctx(embedded_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """A leverloop context on a fresh embedded database; the environment points flows at it too."""
    monkeypatch.setenv("LEVERLOOP_DATABASE_URL", url_text(embedded_database))
    monkeypatch.setenv("LEVERLOOP_HOME", str(tmp_path / "home"))
    settings = Settings(database_url=url_text(embedded_database), home=tmp_path / "home")
    return Context(settings=settings, db=embedded_database)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (real API, SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
