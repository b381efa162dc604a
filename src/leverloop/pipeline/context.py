"""The composition root: settings + a reachable, migrated database."""

from __future__ import annotations

from dataclasses import dataclass

from leverloop.settings import Settings, get_settings
from leverloop.store.database import Database, open_database
from leverloop.store.migrate import upgrade


@dataclass
class Context:
    settings: Settings
    db: Database

    @property
    def engine(self):
        return self.db.engine


def open_context(settings: Settings | None = None, *, migrate: bool = True) -> Context:
    settings = settings or get_settings()
    db = open_database(settings)
    if migrate:
        upgrade(db)
    return Context(settings=settings, db=db)
