"""Running the dbt project against leverloop's database.

Inside a Prefect flow, ``PrefectDbtRunner`` turns every dbt node into its own Prefect task
(visible in the UI); outside one, plain ``dbtRunner`` runs in-process. Connection details
reach ``dbt/profiles.yml`` through environment variables (it reads them with ``env_var``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leverloop.domain.outcomes import RR_MAX, RR_MIN
from leverloop.errors import LeverloopError
from leverloop.pipeline.context import Context


class DbtBuildError(LeverloopError):
    pass


@dataclass(frozen=True)
class DbtVars:
    as_of: datetime
    lookback_days: int = 28
    run_id: str | None = None
    # the input gate's validated ingest_seq ceilings: rows landing mid-run wait for the next run
    max_outcome_seq: int | None = None
    max_counterfactual_seq: int | None = None
    meta_history_days: int | None = None  # days of daily series for the v5 refits (dbt default 112)

    def to_json(self) -> str:
        values = {
            "as_of": self.as_of.isoformat(),
            "lookback_days": self.lookback_days,
            # the input contract's bounds, so the staging filter cannot drift from domain/outcomes.py
            "rr_min": RR_MIN,
            "rr_max": RR_MAX,
        }
        if self.run_id:
            values["run_id"] = self.run_id
        if self.max_outcome_seq is not None:
            values["max_outcome_seq"] = self.max_outcome_seq
        if self.max_counterfactual_seq is not None:
            values["max_counterfactual_seq"] = self.max_counterfactual_seq
        if self.meta_history_days is not None:
            values["meta_history_days"] = self.meta_history_days
        return json.dumps(values)


def _prepare(ctx: Context) -> list[str]:
    os.environ.update(ctx.db.dbt_env())
    home = ctx.settings.home_dir
    return [
        "--project-dir",
        str(ctx.settings.dbt_project_dir),
        "--profiles-dir",
        str(ctx.settings.dbt_project_dir),
        "--target-path",
        str(home / "dbt" / "target"),
        "--log-path",
        str(home / "dbt" / "logs"),
    ]


def _in_prefect_run() -> bool:
    try:
        from prefect.context import FlowRunContext, TaskRunContext
    except ImportError:  # pragma: no cover - prefect is a dependency
        return False
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def run_dbt(
    ctx: Context, command: list[str], dbt_vars: DbtVars | None = None, *, quiet: bool = True
) -> Any:
    """Run a dbt command (e.g. ``["build"]``); raise DbtBuildError naming the failed nodes."""
    args = [*command, *_prepare(ctx)]
    if dbt_vars is not None:
        args += ["--vars", dbt_vars.to_json()]
    if _in_prefect_run():
        from dbt_common.events.base_types import EventLevel
        from prefect.settings import get_current_settings
        from prefect_dbt import PrefectDbtRunner, PrefectDbtSettings

        # Prefect's level names ("warning") are not all dbt's ("warn"): map explicitly
        prefect_level = str(get_current_settings().logging.level).upper()
        level = EventLevel.INFO if prefect_level in ("DEBUG", "INFO") else EventLevel.WARN
        settings = PrefectDbtSettings(
            project_dir=ctx.settings.dbt_project_dir,
            profiles_dir=ctx.settings.dbt_project_dir,
            log_level=level,
        )
        runner = PrefectDbtRunner(settings=settings, raise_on_failure=False, disable_assets=True)
        result = runner.invoke(args)
    else:
        from dbt.cli.main import dbtRunner

        result = dbtRunner().invoke([*args, "--quiet"] if quiet else args)
    if not result.success:
        raise DbtBuildError(f"dbt {' '.join(command)} failed: {_failures(result)}")
    return result


def _failures(result: Any) -> str:
    if result.exception is not None:
        return str(result.exception).strip().splitlines()[0]
    failed = []
    for node in getattr(result.result, "results", None) or []:
        status = str(getattr(node, "status", ""))
        if status.lower() in ("error", "fail", "runtimeerr"):
            message = (getattr(node, "message", "") or "").strip().splitlines()
            failed.append(f"{node.node.name} ({status}{': ' + message[0] if message else ''})")
    return "; ".join(failed) or "see the dbt log"


def build_marts(ctx: Context, dbt_vars: DbtVars) -> Any:
    """Build every model and run the data tests on this run's data.

    dbt unit tests check the SQL, not the data: they run in the test suite (and with
    ``leverloop dbt test --select test_type:unit``), not on every turn of the loop.
    """
    return run_dbt(ctx, ["build", "--exclude", "test_type:unit"], dbt_vars)
