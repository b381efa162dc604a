"""Prefect defaults for leverloop processes; call before the first ``import prefect``.

Prefect reads its settings when it is imported, so the CLI (and the test suite) call
``configure_prefect`` first. Existing environment values always win.
"""

from __future__ import annotations

import os

from leverloop.settings import Settings


def configure_prefect(settings: Settings, *, quiet: bool = False) -> None:
    defaults = {
        # a per-project Prefect home: its SQLite database and ephemeral server stay with the project
        "PREFECT_HOME": str(settings.home_dir / "prefect"),
        # no network here: an offline telemetry call errors and locks SQLite at every start
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # the first ephemeral start on a fresh PREFECT_HOME creates its schema (slow)
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
    if quiet:
        defaults["PREFECT_LOGGING_LEVEL"] = "WARNING"
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def server_configured() -> bool:
    return bool(os.environ.get("PREFECT_API_URL"))
