"""The learning loop's steps as plain functions; ``flows/learning_loop.py`` wires them as Prefect tasks.

    begin_run        -> evidence watermark; is there anything new since the last committed run?
    (dbt build)      -> marts.pattern_edges for this as_of
    compute_candidate-> lever engine over the evidence: next lever state + candidate pm_config
    commit           -> one transaction: lever state + history, and a new config version if it differs
    finish_run       -> the run's record (status, watermark, summary)

Nothing is written to lever state or configs before ``commit``; a crash before it (or a
failed step) leaves the previous state and the current config exactly as they were.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from leverloop import faults
from leverloop.domain.diff import ConfigDiff, diff_configs
from leverloop.domain.engine import (
    CounterfactualEvidence,
    EnginePolicy,
    EngineResult,
    LeverChange,
    run_engine,
)
from leverloop.domain.gates import Evidence, EvidenceKey, evidence_key
from leverloop.domain.lessons import CellEvidence, DisabledBy, LessonStatus
from leverloop.domain.pm_config import PmConfig
from leverloop.domain.scope import scope_label
from leverloop.errors import LeverloopError
from leverloop.learning.refit import MetaFit
from leverloop.pipeline.context import Context
from leverloop.store import configs, learning, lessons, levers, monitoring, runs
from leverloop.store.runs import Watermark


@dataclass(frozen=True)
class RunStart:
    run_id: str
    as_of: datetime
    watermark: Watermark
    previous: Watermark | None

    @property
    def has_new_evidence(self) -> bool:
        return self.watermark.count > 0 and not self.watermark.same_evidence(self.previous)


@dataclass
class Candidate:
    engine: EngineResult
    config: PmConfig
    current_version: int | None
    diff: ConfigDiff
    evidence_cells: int
    evidence: dict[EvidenceKey, Evidence] = field(default_factory=dict)  # what the gates check
    meta: MetaFit | None = None  # the v5 refit this candidate used; committed with it


@dataclass
class RunOutcome:
    run_id: str
    status: str  # published | no_change | no_new_evidence | failed
    as_of: datetime
    version: int | None = None
    parent_version: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def new_run_id() -> str:
    return uuid.uuid4().hex


def begin_run(
    ctx: Context, *, as_of: datetime | None, run_id: str, flow_run_id: str | None
) -> RunStart:
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    with ctx.engine.begin() as conn:
        previous = runs.last_committed(conn)
        if previous is not None and as_of < previous.as_of:
            raise LeverloopError(
                f"as_of {as_of.isoformat()} is before the last committed run's as_of "
                f"{previous.as_of.isoformat()}; the loop only moves forward in time"
            )
        watermark = runs.evidence_watermark(conn, as_of)
        runs.start(conn, run_id, flow_run_id, as_of)
    return RunStart(run_id=run_id, as_of=as_of, watermark=watermark, previous=previous)


def compute_candidate(
    ctx: Context,
    start: RunStart,
    policy: EnginePolicy,
    lookback_days: int,
    meta: MetaFit | None = None,
) -> Candidate:
    """Run the lever engine over this run's marts and, when given, this run's v5 refit
    (half-lives and persistence per pattern, latent factors for the exposure cap).

    The very first run has no previous clock: it integrates from the start of its evidence
    window, with the targets rising from zero (half weight), as if it had watched it arrive.
    """
    with ctx.engine.connect() as conn:
        evidence = levers.load_edge_evidence(conn)
        counterfactuals = levers.load_counterfactual_evidence(conn)
        state = levers.load_state(conn)
        prior_lessons = lessons.load(conn)
        head = configs.current(conn)
        verdicts = monitoring.load_verdicts_with_reasons(conn)
    base = head.config() if head else None
    result = run_engine(
        evidence,
        counterfactuals,
        state,
        prior_lessons,
        as_of=start.as_of,
        previous_as_of=start.previous.as_of
        if start.previous
        else start.as_of - timedelta(days=lookback_days),
        policy=policy,
        learning_overrides_enabled=base.learning_overrides_enabled if base else True,
        enabled_regimes=base.learning_overrides_enabled_regimes if base else None,
        verdicts=verdicts,
        halflives=meta.halflife_hours() if meta else None,
        persistence=meta.persistence() if meta else None,
        factors=meta.factor_of() if meta else None,
    )
    return Candidate(
        engine=result,
        config=result.config,
        current_version=head.version if head else None,
        diff=diff_configs(base, result.config),
        evidence_cells=len(evidence),
        evidence=gate_evidence(evidence, counterfactuals),
        meta=meta,
    )


def gate_evidence(
    evidence: list[CellEvidence], counterfactuals: list[CounterfactualEvidence]
) -> dict[EvidenceKey, Evidence]:
    """Per cell, what backs its levers: outcomes and p-value (capital), counterfactuals (tuning)."""
    out: dict[EvidenceKey, Evidence] = {}
    for ev in evidence:
        out[evidence_key(ev.pattern_key, ev.action_category, ev.scope)] = Evidence(
            n=ev.n, p_value=ev.p_value, edge=ev.edge
        )
    for cf in counterfactuals:
        key = evidence_key(cf.pattern_key, cf.action_category, cf.scope)
        base = out.get(key, Evidence(n=0, p_value=1.0))
        out[key] = replace(base, n_counterfactuals=cf.n_counterfactuals)
    return out


def commit(
    ctx: Context,
    start: RunStart,
    candidate: Candidate,
    *,
    gate_report: dict[str, Any] | None = None,
    shadow: bool = False,
) -> int | None:
    """Persist lever state and, if the config changed, publish it: one transaction.

    ``gate_report`` is the gates' verdict stored with the version; ``shadow`` publishes it as
    a would-apply version that does not become current.
    """
    with ctx.engine.begin() as conn:
        configs.lock_for_publish(conn)
        levers.save_state(
            conn, start.run_id, start.as_of, candidate.engine.states, candidate.engine.changes
        )
        lessons.save(
            conn, start.run_id, start.as_of, candidate.engine.lessons, candidate.engine.events
        )
        if candidate.meta is not None:
            learning.save(conn, start.run_id, start.as_of, candidate.meta)
        version = None
        if not candidate.diff.empty or candidate.current_version is None:
            version = configs.publish(
                conn,
                candidate.config,
                run_id=start.run_id,
                gate_report=gate_report or {"verdict": "auto", "checks": []},
                diff=candidate.diff.to_json(),
                parent=candidate.current_version,
                shadow=shadow,
            )
        runs.finish(
            conn,
            start.run_id,
            ("shadow" if shadow else "published") if version else "no_change",
            watermark=start.watermark,
            published_version=version,
            summary=summary_of(start, candidate, version),
        )
        faults.checkpoint("publish")
    return version


def finish_without_change(
    ctx: Context, start: RunStart, status: str, error: str | None = None
) -> None:
    with ctx.engine.begin() as conn:
        runs.finish(conn, start.run_id, status, watermark=start.watermark, error=error)


def summary_of(start: RunStart, candidate: Candidate, version: int | None) -> dict[str, Any]:
    counts = candidate.diff.counts()
    statuses = {status.value: 0 for status in LessonStatus}
    for lesson in candidate.engine.lessons.values():
        statuses[lesson.status.value] += 1
    return {
        "as_of": start.as_of.isoformat(),
        "evidence_outcomes": start.watermark.count,
        "evidence_cells": candidate.evidence_cells,
        "cells_evaluated": candidate.engine.cells_evaluated,
        "levers_in_state": len(candidate.engine.states),
        "lessons": statuses,
        "overrides": len(candidate.config.pattern_strength_overrides)
        + len(candidate.config.pattern_overrides),
        "levers_added": counts["added"],
        "levers_changed": counts["changed"],
        "levers_removed": counts["removed"],
        "lessons_disabled_by_monitoring": sum(
            1
            for lesson in candidate.engine.lessons.values()
            if lesson.disabled_by is DisabledBy.MONITOR
        ),
        "meta": meta_summary(candidate.meta),
        "version": version,
        "parent_version": candidate.current_version,
    }


def meta_summary(meta: MetaFit | None) -> dict[str, int] | None:
    if meta is None:
        return None
    return {
        "halflives_usable": sum(1 for h in meta.halflives.values() if h.fit.usable),
        "halflives_fitted": sum(1 for h in meta.halflives.values() if h.fit.status == "fitted"),
        "factor_groups": len(meta.factor_groups()),
        "patterns_in_factor_groups": len(meta.factor_of()),
        "regime_weight_fits": len({fit.regime for fit in meta.weights}),
    }


def _moved(change: LeverChange) -> float:
    before = change.value_before if change.value_before is not None else change.value_after or 0.0
    after = change.value_after if change.value_after is not None else change.value_before or 0.0
    return abs(after - before)


def top_changes(changes: list[LeverChange], limit: int = 15) -> list[LeverChange]:
    return sorted(changes, key=_moved, reverse=True)[:limit]


def markdown_report(start: RunStart, candidate: Candidate | None, version: int | None) -> str:
    lines = [f"# Learning loop run `{start.run_id[:12]}`", ""]
    lines.append(f"- **as_of**: {start.as_of.isoformat()}")
    lines.append(
        f"- **evidence**: {start.watermark.count:,} outcomes (ingest seq <= {start.watermark.max_seq:,})"
    )
    if candidate is None:
        lines.append("- **result**: no new evidence since the last committed run; nothing changed")
        return "\n".join(lines) + "\n"
    s = summary_of(start, candidate, version)
    if version:
        lines.append(f"- **published**: pm_config v{version} (parent v{candidate.current_version})")
    else:
        lines.append("- **published**: nothing (the candidate equals the current config)")
    lines.append(
        f"- **levers**: {s['levers_added']} added, {s['levers_changed']} changed, {s['levers_removed']} removed; "
        f"{s['overrides']} overrides in the config; {s['cells_evaluated']:,} cells evaluated"
    )
    lines.append(
        "- **lessons**: " + ", ".join(f"{count} {status}" for status, count in s["lessons"].items())
    )
    if s["meta"]:
        m = s["meta"]
        lines.append(
            f"- **v5 refit**: {m['halflives_usable']} usable half-lives ({m['halflives_fitted']} decaying), "
            f"{m['factor_groups']} latent factors over {m['patterns_in_factor_groups']} patterns, "
            f"factor weights for {m['regime_weight_fits']} regime scopes"
        )
    if s["lessons_disabled_by_monitoring"]:
        lines.append(
            f"- **held back**: {s['lessons_disabled_by_monitoring']} lesson(s) disabled by override monitoring"
        )
    changes = top_changes(candidate.engine.changes)
    if changes:
        lines += [
            "",
            "| pattern | category | scope | lever | before | after | edge_raw | n | why |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c in changes:
            edge = f"{c.edge:+.3f}" if c.edge is not None else "-"
            before = "-" if c.value_before is None else f"{c.value_before:.4f}"
            after = "-" if c.value_after is None else f"{c.value_after:.4f}"
            lines.append(
                f"| {c.pattern_key} | {c.action_category} | {scope_label(c.scope)} | {c.lever} | "
                f"{before} | {after} | {edge} | {c.n or '-'} | {c.reason} |"
            )
    return "\n".join(lines) + "\n"
