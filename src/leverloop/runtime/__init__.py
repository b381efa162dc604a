"""What the Position Manager imports: learned overrides applied per decision, in microseconds.

    from leverloop import runtime

    service = runtime.start("postgresql://pm@db/leverloop")   # watcher + telemetry threads
    sized = runtime.apply_pattern_overrides(action, context, "entry")
    ...
    outcome_row.update(runtime.outcome_fields(sized["learning"]))

This package imports only the standard library, ``leverloop.domain`` and (for the config
watcher and the telemetry writer) ``psycopg``: no Prefect, dbt, Great Expectations,
SQLAlchemy or numpy. See the README section "Runtime integration (the PM side)".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leverloop.runtime.core import DmDecision, Runtime, outcome_fields
from leverloop.runtime.holdout import DEFAULT_FRACTION, DEFAULT_SALT, holdout_bucket, is_holdout
from leverloop.runtime.index import CompiledOverride, OverrideIndex, compile_config
from leverloop.runtime.telemetry import TelemetryBuffer, TelemetryWriter
from leverloop.runtime.watcher import ConfigWatcher, libpq_dsn, runtime_dir

__all__ = [
    "DEFAULT_FRACTION",
    "DEFAULT_SALT",
    "CompiledOverride",
    "ConfigWatcher",
    "DmDecision",
    "OverrideIndex",
    "Runtime",
    "RuntimeService",
    "TelemetryBuffer",
    "TelemetryWriter",
    "apply_dm_alloc_multiplier",
    "apply_pattern_overrides",
    "compile_config",
    "decide_dm_alloc",
    "default_runtime",
    "holdout_bucket",
    "is_holdout",
    "libpq_dsn",
    "outcome_fields",
    "runtime_dir",
    "start",
]

_default = Runtime()


def default_runtime() -> Runtime:
    """The process-wide runtime behind the module-level functions."""
    return _default


def apply_pattern_overrides(
    action: Mapping[str, Any], context: Mapping[str, Any], action_category: str
) -> Mapping[str, Any]:
    """Apply the active config's overrides to a PM action; never raises (see ``Runtime``)."""
    return _default.apply_pattern_overrides(action, context, action_category)


def decide_dm_alloc(context: Mapping[str, Any], action_category: str = "entry") -> DmDecision:
    return _default.decide_dm_alloc(context, action_category)


def apply_dm_alloc_multiplier(
    coefficient: float, context: Mapping[str, Any], action_category: str = "entry"
) -> float:
    """``coefficient * alloc_multiplier`` at the end of the DM coefficient pipeline; never raises."""
    return _default.apply_dm_alloc_multiplier(coefficient, context, action_category)


@dataclass
class RuntimeService:
    runtime: Runtime
    watcher: ConfigWatcher
    writer: TelemetryWriter | None

    def stop(self, timeout: float = 5.0) -> None:
        self.watcher.stop(timeout)
        if self.writer is not None:
            self.writer.stop(timeout)
            self.runtime.telemetry = None


def start(
    dsn: str | None = None,
    *,
    runtime: Runtime | None = None,
    home: Path | str | None = None,
    poll_interval: float = 5.0,
    telemetry: bool = True,
    telemetry_capacity: int = 50_000,
    wait: float = 2.0,
) -> RuntimeService:
    """Start hot reload (and the telemetry writer) for ``runtime`` (default: the module's).

    ``dsn`` is a libpq DSN or a ``postgresql://`` URL (default ``$LEVERLOOP_DATABASE_URL``).
    Waits up to ``wait`` seconds for the first read; if the database does not answer by then,
    the PM goes on with the last-known-good config and the watcher keeps retrying.
    """
    dsn = dsn or os.environ.get("LEVERLOOP_DATABASE_URL")
    if not dsn:
        raise ValueError("leverloop.runtime.start: give a dsn or set LEVERLOOP_DATABASE_URL")
    runtime = runtime or _default
    writer = None
    if telemetry:
        runtime.telemetry = TelemetryBuffer(telemetry_capacity)
        writer = TelemetryWriter(runtime.telemetry, libpq_dsn(dsn)).start()
    watcher = ConfigWatcher(runtime, dsn, home=home, poll_interval=poll_interval).start()
    watcher.wait_ready(wait)
    return RuntimeService(runtime=runtime, watcher=watcher, writer=writer)
