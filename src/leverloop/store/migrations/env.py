"""Alembic environment: the engine comes from leverloop (see store/migrate.py), never from an ini file."""

from alembic import context
from sqlalchemy import text

from leverloop.store.migrate import VERSION_TABLE_SCHEMA

MIGRATION_LOCK_KEY = 0x1E7E_1009  # pg_advisory_lock key: one migrator at a time


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        connection.execute(text("select pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        try:
            connection.execute(text(f"create schema if not exists {VERSION_TABLE_SCHEMA}"))
            connection.commit()
            context.configure(
                connection=connection,
                version_table_schema=VERSION_TABLE_SCHEMA,
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("select pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            connection.commit()


if context.is_offline_mode():
    raise SystemExit("leverloop migrations run online only (leverloop db upgrade)")
run_migrations_online()
