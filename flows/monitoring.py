"""Override monitoring as a Prefect flow. Thin: parameters -> service -> artifacts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from leverloop.domain.monitoring import MonitoringPolicy
from leverloop.pipeline.context import Context, open_context
from leverloop.pipeline.monitoring import MonitoringReport, run_monitoring


@task(name="measure-overrides", cache_policy=NO_CACHE)
def measure_overrides(
    ctx: Context, run_id: str, as_of: datetime | None, lookback_days: int, policy: MonitoringPolicy
) -> MonitoringReport:
    return run_monitoring(
        ctx, run_id=run_id, as_of=as_of, lookback_days=lookback_days, policy=policy
    )


@flow(name="override-monitoring", log_prints=True)
def monitoring(
    as_of: datetime | None = None,
    lookback_days: int = 28,
    confidence: float = 0.95,
    min_n: int = 30,
) -> dict[str, Any]:
    """Measure each override's R/R effect against the holdout; decay or disable the ones that do not help."""
    ctx = open_context()
    report = measure_overrides(
        ctx,
        flow_run.get_id() or uuid.uuid4().hex,
        as_of,
        lookback_days,
        MonitoringPolicy(confidence=confidence, min_n=min_n),
    )
    create_table_artifact(
        report.table(),
        key="override-effects",
        description="Each override's measured R/R effect vs the holdout, with its verdict",
    )
    create_markdown_artifact(report.markdown(), key="override-monitoring-summary")
    summary = report.summary()
    get_run_logger().info(
        "%d overrides measured: %s", summary["overrides_measured"], summary["verdicts"]
    )
    return summary
