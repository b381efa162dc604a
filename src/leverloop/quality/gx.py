"""Run the GX checkpoints of ``expectations/gx`` against leverloop's database.

Everything is computed as SQL in PostgreSQL: the input suites read the run's new batch from
its snapshot tables ``leverloop.batch_*``; the output suite reads the candidate's levers from
``leverloop.candidate_levers``. Results are stored in ``leverloop.gate_results``
and as GX validation results; Data Docs are built under ``$LEVERLOOP_HOME/gx/data_docs``.

Severity decides what a failure does: ``critical`` expectations block the run, ``warning``
ones are reported (artifact, Data Docs, gate report) and let it go on. An expectation that
cannot even be evaluated (its query fails) blocks.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from leverloop.domain.levers import REGISTRY
from leverloop.domain.outcomes import FUTURE_TOLERANCE
from leverloop.domain.pm_config import PmConfig
from leverloop.pipeline.context import Context
from leverloop.quality.project import (
    INPUT_CHECKPOINT,
    OUTPUT_CHECKPOINT,
    RUNTIME_VARIABLE,
    URL_VARIABLE,
    gx_database_url,
)
from leverloop.settings import Settings
from leverloop.store import gates as gate_store
from leverloop.store.database import Database
from leverloop.store.landing import Target

INPUT_SUITES: dict[str, Target] = {
    "input_trade_outcomes": "trade_outcomes",
    "input_counterfactuals": "counterfactuals",
}
KEEP_RUNS = 100  # validation results (and Data Docs pages) kept per suite
FRESHNESS = timedelta(days=7)  # the newest outcome of a batch closed at most this long before as_of


def runtime_dir(settings: Settings) -> Path:
    return settings.home_dir / "gx"


def data_docs_index(settings: Settings) -> Path:
    return runtime_dir(settings) / "data_docs" / "local_site" / "index.html"


@dataclass(frozen=True)
class Failure:
    suite: str
    check: str
    description: str
    severity: str  # critical | warning | info
    observed: str

    @property
    def blocking(self) -> bool:
        return self.severity == "critical"

    def sentence(self) -> str:
        return f"{self.suite}: expected {self.description}; {self.observed}"


@dataclass
class SuiteResult:
    suite: str
    stage: str
    success: bool
    statistics: dict[str, Any]
    failures: list[Failure]
    data_docs: str | None = None
    target: str | None = None
    lo_seq: int | None = None
    hi_seq: int | None = None

    @property
    def blocking(self) -> bool:
        return any(f.blocking for f in self.failures)

    def record(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "stage": self.stage,
            "target": self.target,
            "lo_seq": self.lo_seq,
            "hi_seq": self.hi_seq,
            "success": self.success,
            "blocking": self.blocking,
            "statistics": self.statistics,
            "failures": [asdict(f) for f in self.failures],
            "data_docs": self.data_docs,
        }


@dataclass
class QualityReport:
    stage: str
    suites: list[SuiteResult] = field(default_factory=list)
    data_docs_index: str | None = None

    @property
    def blocked(self) -> bool:
        return any(s.blocking for s in self.suites)

    @property
    def failures(self) -> list[Failure]:
        return [f for s in self.suites for f in s.failures]

    def reasons(self) -> list[str]:
        return [f.sentence() for f in self.failures if f.blocking]

    def warnings(self) -> list[str]:
        return [f.sentence() for f in self.failures if not f.blocking]

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "blocked": self.blocked,
            "reasons": self.reasons(),
            "warnings": self.warnings(),
            "suites": {
                s.suite: {
                    "success": s.success,
                    "evaluated": s.statistics.get("evaluated_expectations"),
                    "window": [s.lo_seq, s.hi_seq] if s.hi_seq is not None else None,
                }
                for s in self.suites
            },
            "data_docs": self.data_docs_index,
        }


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error(exception: dict[str, Any] | None) -> str | None:
    """The first error message of a result's exception info (flat, or keyed by metric)."""
    if not exception:
        return None
    infos = [exception] if "raised_exception" in exception else list(exception.values())
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            lines = str(info.get("exception_message") or "error").strip().splitlines()
            return lines[0] if lines else "error"
    return None


def _observed(kind: str, result: dict[str, Any], exception: dict[str, Any] | None) -> str:
    error = _error(exception)
    if error:
        return f"could not be evaluated: {error}"
    if kind == "unexpected_rows_expectation":
        return f"its query returned {result.get('observed_value')} offending rows"
    if "unexpected_percent" in result and result.get("element_count") is not None:
        examples = result.get("partial_unexpected_list") or []
        return (
            f"{result.get('unexpected_count')} of {result.get('element_count')} rows "
            f"({result.get('unexpected_percent') or 0:.1f}%) break it"
            + (f", e.g. {_short(examples[:5])}" if examples else "")
        )
    details = result.get("details") or {}
    if "mismatched" in details:
        return f"observed {_short(details['mismatched'])}"
    return f"observed {_short(result.get('observed_value'))}"


class GxRunner:
    """A GX file context bound to one leverloop database for the duration of a run."""

    def __init__(self, settings: Settings, db: Database) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        with warnings.catch_warnings():  # GX's own imports and asset options warn on 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            import great_expectations as gx

        self.settings = settings
        self.context = gx.get_context(
            mode="file",
            project_root_dir=settings.expectations_dir,
            runtime_environment={
                URL_VARIABLE: gx_database_url(db),
                RUNTIME_VARIABLE: str(runtime_dir(settings)),
            },
        )

    def run(self, checkpoint: str, stage: str, parameters: dict[str, Any]) -> QualityReport:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            result = self.context.checkpoints.get(checkpoint).run(expectation_parameters=parameters)
        self._prune()
        self.context.build_data_docs(resource_identifiers=list(result.run_results))
        report = QualityReport(stage=stage, data_docs_index=data_docs_index(self.settings).as_uri())
        for identifier, validation in result.run_results.items():
            failures = []
            for r in validation.results:
                if r.success:
                    continue
                config = r.expectation_config
                failures.append(
                    Failure(
                        suite=validation.suite_name,
                        check=str((config.meta or {}).get("check") or config.type),
                        description=config.description or config.type,
                        severity=str(getattr(config.severity, "value", config.severity)),
                        observed=_observed(config.type, r.result or {}, r.exception_info),
                    )
                )
            urls = self.context.get_docs_sites_urls(
                resource_identifier=identifier, only_if_exists=False
            )
            report.suites.append(
                SuiteResult(
                    suite=validation.suite_name,
                    stage=stage,
                    success=bool(validation.success),
                    statistics=dict(validation.statistics),
                    failures=failures,
                    data_docs=urls[0]["site_url"] if urls else None,
                )
            )
        return report

    def _prune(self, keep: int = KEEP_RUNS) -> None:
        """Keep the newest ``keep`` results per suite (the Data Docs index lists them all)."""
        root = runtime_dir(self.settings)
        results = root / "validations"
        if not results.is_dir():
            return
        for suite in (p for p in results.iterdir() if p.is_dir()):
            runs = sorted(suite.glob("*/*"), key=lambda p: p.name)
            for old in runs[: max(0, len(runs) - keep)]:
                relative = old.relative_to(results)
                shutil.rmtree(old, ignore_errors=True)
                shutil.rmtree(
                    root / "data_docs" / "local_site" / "validations" / relative,
                    ignore_errors=True,
                )

    def close(self) -> None:
        for source in self.context.data_sources.all().values():
            engine = getattr(source.get_execution_engine(), "engine", None)
            if engine is not None:
                engine.dispose()


def _run(ctx: Context, checkpoint: str, stage: str, parameters: dict[str, Any]) -> QualityReport:
    runner = GxRunner(ctx.settings, ctx.db)
    try:
        return runner.run(checkpoint, stage, parameters)
    finally:
        runner.close()


def validate_inputs(ctx: Context, run_id: str, *, as_of: datetime, now: datetime) -> QualityReport:
    """Validate the new batches (everything landed since the last committed run validated)."""
    with ctx.engine.begin() as conn:
        windows = {}
        for suite, target in INPUT_SUITES.items():
            lo, hi = gate_store.window_start(conn, suite), gate_store.window_end(conn, target)
            gate_store.snapshot_batch(conn, target, lo, hi)
            windows[suite] = (target, lo, hi)
    report = _run(
        ctx,
        INPUT_CHECKPOINT,
        "input",
        {
            "latest_closed_at": (now + FUTURE_TOLERANCE).isoformat(),
            "fresh_after": (as_of - FRESHNESS).isoformat(),
        },
    )
    for suite in report.suites:
        if suite.suite in windows:
            suite.target, suite.lo_seq, suite.hi_seq = windows[suite.suite]
    with ctx.engine.begin() as conn:
        gate_store.record_results(conn, run_id, (s.record() for s in report.suites))
    return report


def windows_of(report: QualityReport) -> dict[Target, tuple[int, int]]:
    """``target -> (lo_seq, hi_seq)`` of the batches an input report validated."""
    return {
        s.target: (s.lo_seq, s.hi_seq)  # type: ignore[misc]
        for s in report.suites
        if s.target is not None and s.lo_seq is not None and s.hi_seq is not None
    }


def lever_rows(
    run_id: str,
    config: PmConfig,
    parent: PmConfig | None,
    states: list[Any] = (),  # type: ignore[assignment]
) -> list[dict[str, Any]]:
    """The candidate's levers as rows of ``leverloop.candidate_levers`` (config, then state)."""
    before: dict[tuple, float] = {}
    if parent is not None:
        for section in ("pattern_strength_overrides", "pattern_overrides"):
            for entry in getattr(parent, section):
                for path, value in entry.flat_levers().items():
                    before[(section, *entry.key(), path)] = value
    rows = []

    def row(source, section, pattern_key, category, scope, path, value, value_before):
        lever = REGISTRY.get(path)
        rows.append(
            {
                "run_id": run_id,
                "source": source,
                "section": section,
                "pattern_key": pattern_key,
                "action_category": category,
                "scope": dict(scope),
                "lever": path,
                "kind": lever.kind.value if lever else None,
                "value": value,
                "value_before": value_before,
                "neutral": lever.neutral if lever else None,
                "low": lever.low if lever else None,
                "high": lever.high if lever else None,
                "max_step": lever.max_step if lever else None,
            }
        )

    for section in ("pattern_strength_overrides", "pattern_overrides"):
        for entry in getattr(config, section):
            for path, value in entry.flat_levers().items():
                row(
                    "config",
                    section,
                    entry.pattern_key,
                    entry.action_category,
                    entry.scope,
                    path,
                    value,
                    before.get((section, *entry.key(), path)),
                )
    for s in states:
        row(
            "state",
            "lever_state",
            s.pattern_key,
            s.action_category,
            s.scope,
            s.lever,
            s.value,
            None,
        )
    return rows


def validate_output(ctx: Context, run_id: str, rows: list[dict[str, Any]]) -> QualityReport:
    """Materialise the candidate's levers in SQL and validate them there."""
    with ctx.engine.begin() as conn:
        gate_store.replace_candidate(conn, rows)
    report = _run(ctx, OUTPUT_CHECKPOINT, "output", {})
    with ctx.engine.begin() as conn:
        gate_store.record_results(conn, run_id, (s.record() for s in report.suites))
    return report
