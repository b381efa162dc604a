"""pm_config versions: immutable rows plus one "current" pointer, flipped atomically.

``publish`` inserts version N+1 (content hash, parent, run id, gate report, diff), moves the
pointer and NOTIFYs ``leverloop_pm_config`` with the version id, all in the caller's
transaction: either everything is visible after commit or nothing is.

A *shadow* version (gate policy ``shadow``) is stored the same way but leaves the pointer and
sends no NOTIFY: the PM never reads it; operators can ``show``/``diff`` it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from types import EllipsisType
from typing import Any

import sqlalchemy as sa

from leverloop.domain.pm_config import PmConfig, parse_config
from leverloop.errors import LeverloopError

NOTIFY_CHANNEL = "leverloop_pm_config"
PUBLISH_LOCK_KEY = 0x1E7E_1002


@dataclass(frozen=True)
class ConfigVersion:
    version: int
    content_hash: str
    parent_version: int | None
    created_at: datetime
    created_by_run_id: str | None
    payload: dict[str, Any]
    gate_report: dict[str, Any] | None
    diff: dict[str, Any] | None
    shadow: bool = False

    def config(self) -> PmConfig:
        return parse_config(self.payload)

    @property
    def verdict(self) -> str:
        return str((self.gate_report or {}).get("verdict") or "-")


class PublishConflict(LeverloopError):
    """The current version moved between computing a candidate and publishing it."""


_COLUMNS = "version, content_hash, parent_version, created_at, created_by_run_id, payload, gate_report, diff, shadow"


def _row(row: Any) -> ConfigVersion:
    return ConfigVersion(**dict(row._mapping))


def current(conn: sa.Connection) -> ConfigVersion | None:
    row = conn.execute(
        sa.text(
            f"select {', '.join('v.' + c.strip() for c in _COLUMNS.split(','))} "
            "from leverloop.pm_config_current c join leverloop.pm_config_versions v using (version)"
        )
    ).first()
    return _row(row) if row else None


def get(conn: sa.Connection, version: int) -> ConfigVersion | None:
    row = conn.execute(
        sa.text(f"select {_COLUMNS} from leverloop.pm_config_versions where version = :v"),
        {"v": version},
    ).first()
    return _row(row) if row else None


def history(conn: sa.Connection, limit: int = 20) -> list[ConfigVersion]:
    rows = conn.execute(
        sa.text(
            f"select {_COLUMNS} from leverloop.pm_config_versions order by version desc limit :n"
        ),
        {"n": limit},
    )
    return [_row(r) for r in rows]


def lock_for_publish(conn: sa.Connection) -> None:
    """Serialise publishers for the rest of the transaction."""
    conn.execute(sa.text("select pg_advisory_xact_lock(:k)"), {"k": PUBLISH_LOCK_KEY})


def publish(
    conn: sa.Connection,
    config: PmConfig,
    *,
    run_id: str | None,
    gate_report: dict[str, Any] | None = None,
    diff: dict[str, Any] | None = None,
    parent: int | EllipsisType | None = ...,
    shadow: bool = False,
) -> int | None:
    """Insert a new version and make it current; None when it equals the current content.

    ``parent``, when given, is the version the candidate was diffed against: publishing fails
    with ``PublishConflict`` if the current version is another one by now. A ``shadow``
    version is stored but not made current (and not published again when it equals the
    newest shadow). Call inside a transaction (``engine.begin()``); the NOTIFY is delivered
    on commit.
    """
    lock_for_publish(conn)
    content_hash = config.content_hash()
    head = current(conn)
    if parent is not ... and (head.version if head else None) != parent:
        now, then = (f"v{v}" if v is not None else "none" for v in (head and head.version, parent))
        raise PublishConflict(
            f"the current pm_config is {now}, not {then} as when this candidate was computed; "
            "nothing was published"
        )
    if head is not None and head.content_hash == content_hash:
        return None
    newest = history(conn, 1)
    if shadow and newest and newest[0].shadow and newest[0].content_hash == content_hash:
        return None
    version = conn.execute(
        sa.text("select coalesce(max(version), 0) + 1 from leverloop.pm_config_versions")
    ).scalar_one()
    conn.execute(
        sa.text(
            """
            insert into leverloop.pm_config_versions
                (version, content_hash, parent_version, created_by_run_id, payload, gate_report,
                 diff, shadow)
            values (:v, :h, :p, :r, cast(:payload as jsonb), cast(:gate as jsonb),
                    cast(:diff as jsonb), :shadow)
            """
        ),
        {
            "v": version,
            "h": content_hash,
            "p": head.version if head else None,
            "r": run_id,
            "payload": config.canonical_json(),
            "gate": json.dumps(gate_report) if gate_report is not None else None,
            "diff": json.dumps(diff) if diff is not None else None,
            "shadow": shadow,
        },
    )
    if shadow:
        return int(version)
    conn.execute(
        sa.text(
            """
            insert into leverloop.pm_config_current (singleton, version, updated_at, updated_by_run_id)
            values (true, :v, now(), :r)
            on conflict (singleton) do update
               set version = excluded.version, updated_at = excluded.updated_at,
                   updated_by_run_id = excluded.updated_by_run_id
            """
        ),
        {"v": version, "r": run_id},
    )
    conn.execute(sa.text("select pg_notify(:ch, :v)"), {"ch": NOTIFY_CHANNEL, "v": str(version)})
    return int(version)
