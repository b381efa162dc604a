"""Shared helpers for the benchmarks: a throwaway database next to leverloop's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from leverloop.settings import get_settings
from leverloop.store.database import Database, open_database
from leverloop.store.migrate import upgrade


@contextmanager
def scratch_database(prefix: str = "bench") -> Iterator[Database]:
    """A new, migrated database on the configured server (embedded by default); dropped afterwards."""
    base = open_database(get_settings())
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        base.url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'create database "{name}"')
    db = Database(url=base.url.set(database=name), embedded=base.embedded)
    try:
        upgrade(db)
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'drop database if exists "{name}" with (force)')
        admin.dispose()
