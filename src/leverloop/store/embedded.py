"""The embedded PostgreSQL (pgserver): one server per data directory, reused across runs.

pgserver keeps the server running after this process exits (``cleanup_mode=None``), so the
next command attaches in milliseconds. Two processes starting it at once are serialised by a
file lock around start-up and database creation.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from leverloop.errors import ConfigurationError


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _runtime_dir_default() -> None:
    # pgserver keeps its inter-process lock in the user runtime dir; without XDG_RUNTIME_DIR
    # platformdirs warns on every start. Give it a private one.
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = Path(os.environ.get("TMPDIR", "/tmp")) / f"leverloop-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def embedded_url(home: Path, dbname: str) -> sa.URL:
    """Start (or attach to) the embedded server under ``home`` and return a psycopg URL to ``dbname``."""
    _runtime_dir_default()
    pgdata = home / "pgdata"
    with _file_lock(home / "pgdata.lock"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pgserver

                server = pgserver.get_server(pgdata, cleanup_mode=None)
        except Exception as exc:  # pgserver raises bare exceptions with long logs
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigurationError(
                f"LEVERLOOP_HOME: cannot start the embedded PostgreSQL in {pgdata}: {first}"
            ) from exc
        info = server.get_postmaster_info()
        socket_dir = str(info.socket_dir) if info.socket_dir else None
        query = {"host": socket_dir} if socket_dir else {}
        host = None if socket_dir else "127.0.0.1"
        port = None if socket_dir else info.port
        admin = sa.URL.create(
            "postgresql+psycopg",
            username="postgres",
            host=host,
            port=port,
            database="postgres",
            query=query,
        )
        _ensure_database(admin, dbname)
    return admin.set(database=dbname)


def _ensure_database(admin_url: sa.URL, dbname: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("select 1 from pg_database where datname = :n"), {"n": dbname}
            ).first()
            if not exists:
                conn.exec_driver_sql(f'create database "{dbname}"')
    finally:
        engine.dispose()
