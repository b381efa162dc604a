"""Override monitoring as a service; ``flows/monitoring.py`` wraps it in a Prefect flow.

    measure  -> per override: R/R of applied vs holdout outcomes over the window, a verdict
    record   -> one row per override in leverloop.override_effects (history, per run)

The next learning-loop run reads the latest verdicts (``store.monitoring.load_verdicts``) and
leaves disabled lessons out of the config it publishes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from leverloop.domain.monitoring import VERDICTS, MonitoringPolicy, OverrideEffect, assess
from leverloop.domain.scope import scope_label
from leverloop.pipeline.context import Context
from leverloop.store import monitoring as store


@dataclass
class MonitoringReport:
    run_id: str
    as_of: datetime
    since: datetime
    effects: list[OverrideEffect]

    def counts(self) -> dict[str, int]:
        counts = Counter(e.verdict for e in self.effects)
        return {v: counts.get(v, 0) for v in VERDICTS}

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "since": self.since.isoformat(),
            "overrides_measured": len(self.effects),
            "verdicts": self.counts(),
            "disabled": sorted(e.lesson_id for e in self.effects if e.verdict == "disable"),
        }

    def table(self) -> list[dict[str, Any]]:
        """Rows for the Prefect table artifact: the most harmful first."""

        def num(value: float | None) -> str:
            return "" if value is None else f"{value:+.3f}"

        ordered = sorted(self.effects, key=lambda e: (e.effect is None, e.effect or 0.0))
        return [
            {
                "lesson": e.lesson_id,
                "pattern": e.pattern_key,
                "category": e.action_category,
                "scope": scope_label(e.scope),
                "n_applied": e.n_applied,
                "n_holdout": e.n_holdout,
                "effect_rr": num(e.effect),
                "ci_low": num(e.ci_low),
                "ci_high": num(e.ci_high),
                "verdict": e.verdict,
                "reason": e.reason,
            }
            for e in ordered
        ]

    def markdown(self) -> str:
        counts = self.counts()
        lines = [
            f"# Override monitoring `{self.run_id[:12]}`",
            "",
            f"- **window**: {self.since.isoformat()} .. {self.as_of.isoformat()}",
            f"- **overrides measured**: {len(self.effects)}: {counts['keep']} keep, "
            f"{counts['decay_faster']} decay faster, {counts['disable']} disable",
        ]
        for e in self.effects:
            if e.verdict == "disable":
                lines.append(
                    f"- **disabled** `{e.lesson_id}` {e.pattern_key}/{e.action_category} "
                    f"{{{scope_label(e.scope)}}}: {e.reason}"
                )
        return "\n".join(lines) + "\n"


def run_monitoring(
    ctx: Context,
    *,
    run_id: str,
    as_of: datetime | None = None,
    lookback_days: int = 28,
    policy: MonitoringPolicy | None = None,
) -> MonitoringReport:
    """Measure every override with outcomes in the window and record the verdicts."""
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    since = as_of - timedelta(days=lookback_days)
    with ctx.engine.begin() as conn:
        previous = store.load_verdicts(conn)
        effects = assess(
            store.load_samples(conn, since, as_of), policy or MonitoringPolicy(), previous
        )
        store.save_effects(conn, run_id, as_of, effects)
    return MonitoringReport(run_id=run_id, as_of=as_of, since=since, effects=effects)
