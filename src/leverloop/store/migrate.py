"""Schema migrations (Alembic), run programmatically: ``leverloop db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from leverloop.store.database import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE_SCHEMA = "leverloop"


def _config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = db.engine
    return cfg


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Bring the schema to ``revision``; safe to call concurrently (an advisory lock serialises it)."""
    command.upgrade(_config(db), revision)
    return current_revision(db)


def downgrade(db: Database, revision: str) -> str | None:
    command.downgrade(_config(db), revision)
    return current_revision(db)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table_schema": VERSION_TABLE_SCHEMA})
        return ctx.get_current_revision()


def head_revision() -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()
