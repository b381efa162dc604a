"""Where leverloop's PostgreSQL is, and the one engine every adapter shares.

``open_database(settings)`` is the composition root for storage: an explicit
``LEVERLOOP_DATABASE_URL`` wins; without one the embedded pgserver under ``LEVERLOOP_HOME``
is started. Either way the connection is checked up front, so a bad URL or an unreachable
server is one clear line naming the setting instead of a traceback deep in a flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError, OperationalError

from leverloop.errors import ConfigurationError
from leverloop.settings import Settings

_DRIVERS = {
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+psycopg3",
}


def parse_database_url(raw: str) -> sa.URL:
    """Parse a user-supplied PostgreSQL URL into a psycopg (v3) SQLAlchemy URL."""
    try:
        url = sa.make_url(raw.strip())
    except ArgumentError as exc:
        raise ConfigurationError(
            f"LEVERLOOP_DATABASE_URL: cannot parse {raw!r} "
            "(expected postgresql://user:password@host:port/dbname)"
        ) from exc
    if url.drivername not in _DRIVERS:
        raise ConfigurationError(
            f"LEVERLOOP_DATABASE_URL: {url.drivername!r} is not PostgreSQL "
            "(expected postgresql://user:password@host:port/dbname)"
        )
    if not url.database:
        raise ConfigurationError(
            f"LEVERLOOP_DATABASE_URL: no database name in {url.render_as_string()!r}"
        )
    return url.set(drivername="postgresql+psycopg")


@dataclass
class Database:
    """A reachable leverloop database and the ways each adapter needs to address it."""

    url: sa.URL
    embedded: bool
    _engine: sa.Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = sa.create_engine(
                self.url, pool_pre_ping=True, pool_size=5, max_overflow=5
            )
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def host(self) -> str:
        """Host name, or the Unix-socket directory when the URL names one."""
        return str(self.url.query.get("host") or self.url.host or "localhost")

    @property
    def port(self) -> int:
        return int(self.url.port or 5432)

    def dbt_env(self) -> dict[str, str]:
        """Environment for ``dbt/profiles.yml`` (which reads everything through ``env_var``)."""
        return {
            "LEVERLOOP_PGHOST": self.host,
            "LEVERLOOP_PGPORT": str(self.port),
            "LEVERLOOP_PGUSER": self.url.username or "postgres",
            "LEVERLOOP_PGPASSWORD": self.url.password or "",
            "LEVERLOOP_PGDATABASE": str(self.url.database),
        }

    def libpq_dsn(self) -> str:
        """A plain libpq keyword DSN (for raw psycopg connections such as LISTEN)."""
        parts = {
            "host": self.host,
            "port": str(self.port),
            "user": self.url.username or "postgres",
            "dbname": str(self.url.database),
        }
        if self.url.password:
            parts["password"] = self.url.password
        return " ".join(f"{k}='{v}'" for k, v in parts.items())

    def describe(self) -> str:
        where = "embedded pgserver" if self.embedded else "LEVERLOOP_DATABASE_URL"
        return f"{self.url.database} at {self.host}:{self.port} ({where})"


def check_connection(url: sa.URL, setting: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        target = f"{url.query.get('host') or url.host}:{url.port or 5432}/{url.database}"
        raise ConfigurationError(f"{setting}: cannot connect to {target}: {reason}") from exc
    finally:
        engine.dispose()


def open_database(settings: Settings) -> Database:
    if settings.database_url:
        url = parse_database_url(settings.database_url)
        check_connection(url, "LEVERLOOP_DATABASE_URL")
        return Database(url=url, embedded=False)
    from leverloop.store.embedded import embedded_url

    url = embedded_url(settings.home_dir, settings.embedded_dbname)
    check_connection(url, "LEVERLOOP_HOME")
    return Database(url=url, embedded=True)
