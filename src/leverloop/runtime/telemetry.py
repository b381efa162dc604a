"""Override telemetry: recorded on the hot path in O(1), written to PostgreSQL off it.

``TelemetryBuffer.record`` appends one tuple per decision that matched an override to a
bounded deque (no I/O, no waiting); when the buffer is full the item is dropped and counted.
``TelemetryWriter`` drains it from a background thread in batches and COPYs the rows into
``raw.override_telemetry`` (one row per override applied or withheld). If the database is
unreachable the writer keeps one batch to retry and the buffer fills up and drops: the PM
never waits for telemetry. A decision whose rows PostgreSQL refuses is discarded on its own
and counted; it never holds up the others.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

log = logging.getLogger("leverloop.runtime.telemetry")

DEFAULT_CAPACITY = 50_000
COLUMNS = (
    "recorded_at",
    "position_id",
    "outcome_id",
    "pm_config_version",
    "pattern_key",
    "action_category",
    "scope",
    "lesson_id",
    "override_scope",
    "levers",
    "applied",
    "holdout",
    "reason",
)
# context keys that identify the decision rather than describe its situation
RESERVED_CONTEXT_KEYS = frozenset({"pattern_key", "position_id", "outcome_id", "module"})

# (recorded_at epoch seconds, context copy, action_category, version, overrides, holdout)
Item = tuple[float, Mapping[str, Any], str, "int | None", tuple, bool]


class TelemetryBuffer:
    """A bounded, thread-safe FIFO that never blocks its producers."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity <= 0:
            raise ValueError("telemetry capacity must be positive")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[Item] = deque()
        self._lock = threading.Lock()

    def record(self, item: Item) -> None:
        if len(self._items) < self.capacity:
            self._items.append(item)
        else:
            with self._lock:
                self.dropped += 1

    def drain(self, limit: int) -> list[Item]:
        items = self._items
        out: list[Item] = []
        while items and len(out) < limit:
            out.append(items.popleft())
        return out

    def __len__(self) -> int:
        return len(self._items)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def context_scope(context: Mapping[str, Any]) -> dict[str, str]:
    """The scope dimensions of a decision context: scalar values, as strings."""
    scope: dict[str, str] = {}
    for key, value in context.items():
        if key in RESERVED_CONTEXT_KEYS or value is None or not isinstance(key, str):
            continue
        if isinstance(value, bool):
            scope[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            scope[key] = str(value)
    return scope


def telemetry_rows(item: Item) -> list[tuple[Any, ...]]:
    """The ``raw.override_telemetry`` rows of one recorded decision (columns: ``COLUMNS``)."""
    recorded_at, context, category, version, overrides, holdout = item
    when = datetime.fromtimestamp(recorded_at, UTC)
    scope = json.dumps(context_scope(context), sort_keys=True, separators=(",", ":"))
    return [
        (
            when,
            _text(context.get("position_id")),
            _text(context.get("outcome_id")),
            version,
            ov.pattern_key,
            category,
            scope,
            ov.lesson_id,
            json.dumps(dict(ov.scope), sort_keys=True, separators=(",", ":")),
            json.dumps(dict(ov.levers), sort_keys=True, separators=(",", ":")),
            not holdout,
            holdout,
            "holdout" if holdout else "applied",
        )
        for ov in overrides
    ]


class TelemetryWriter:
    """Drains a ``TelemetryBuffer`` into ``raw.override_telemetry`` with COPY, in batches."""

    def __init__(
        self,
        buffer: TelemetryBuffer,
        dsn: str,
        *,
        batch_size: int = 5000,
        flush_interval: float = 1.0,
        connect_timeout: float = 5.0,
        application_name: str = "leverloop-telemetry",
    ) -> None:
        self.buffer = buffer
        self.dsn = dsn
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.connect_timeout = connect_timeout
        self.application_name = application_name
        self.written = 0  # rows
        self.write_errors = 0
        self.discarded = 0  # decisions whose rows PostgreSQL refused (bad data)
        self.last_error: str | None = None
        self._pending: list[Item] = []  # one batch that failed to write, retried first
        self._conn: psycopg.Connection | None = None
        self._io = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TelemetryWriter:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="leverloop-telemetry-writer", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and try one last flush of what is buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()
        with self._io:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()

    def flush(self) -> int:
        """Write everything buffered now; returns rows written (0 when the database is down)."""
        total = 0
        with self._io:
            while True:
                batch = self._pending or self.buffer.drain(self.batch_size)
                self._pending = []
                if not batch:
                    return total
                try:
                    total += self._write(batch)
                except Exception as exc:
                    if self._failed(exc, batch):
                        return total
                    # PostgreSQL refused something in the batch: write it decision by decision
                    # and discard only what is refused, so one bad row never blocks the rest
                    for k, item in enumerate(batch):
                        try:
                            total += self._write([item])
                        except Exception as item_exc:
                            if self._failed(item_exc, batch[k:]):
                                return total
                            self.discarded += 1
                            log.error("telemetry row discarded: %s", self.last_error)

    def _failed(self, exc: Exception, batch: list[Item]) -> bool:
        """Record a failed write; True (batch kept for a retry) when the database is away."""
        self.write_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}".strip()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, OSError)):
            self._pending = batch
            log.warning("telemetry write failed, will retry: %s", self.last_error)
            return True
        return False

    def _write(self, batch: list[Item]) -> int:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn,
                connect_timeout=max(1, round(self.connect_timeout)),
                application_name=self.application_name,
            )
        rows = [row for item in batch for row in telemetry_rows(item)]
        with (
            self._conn.cursor() as cur,
            cur.copy(f"copy raw.override_telemetry ({', '.join(COLUMNS)}) from stdin") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        self._conn.commit()
        self.written += len(rows)
        return len(rows)
