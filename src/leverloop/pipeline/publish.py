"""Gated publishing: one run at a time, data-quality gates, the gate policy, operator approval,
rollback, and what the operator sees.

The learning loop calls these around its own steps (``flows/learning_loop.py``)::

    exclusive_run        PostgreSQL advisory lock, then the Prefect global concurrency slot
    screen_inputs        GX input suites over the new batch; a batch failure stops the run,
                         otherwise rule-breaking rows move to quarantine (one transaction)
    (dbt build, lever engine: pipeline/loop.py)
    review_candidate     GX output suite over the candidate's levers, then the gate policy
    await_approval       above the limits: pause for an operator (Prefect UI / API); timeout rejects
    commit               pipeline/loop.py: one transaction with the gate report and the diff

Nothing reaches the current config except through ``loop.commit`` or ``rollback``, both under
the same locks; a run stopped anywhere before that commit leaves the config as it was.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import Field

from leverloop import faults
from leverloop.domain.diff import ConfigDiff, diff_configs
from leverloop.domain.gates import (
    Action,
    Evidence,
    EvidenceKey,
    GatePolicy,
    GateVerdict,
    evaluate,
    evidence_key,
    lever_step,
)
from leverloop.domain.scope import scope_label
from leverloop.errors import LeverloopError
from leverloop.pipeline import loop
from leverloop.pipeline.context import Context
from leverloop.quality import gx as quality
from leverloop.quality.rows import QuarantineResult, quarantine_window
from leverloop.store import configs
from leverloop.store import gates as gate_store
from leverloop.store.database import Database
from leverloop.store.runs import Watermark

LOOP_LOCK_KEY = 0x1E7E_1003  # session-level: held for a whole loop run (or a rollback)
LEASE_SECONDS = 60.0


class RunInProgress(LeverloopError):
    """Another learning-loop run (or a rollback) holds the loop's lock."""


# ---------------------------------------------------------------- one run at a time


def concurrency_limit_name(db: Database) -> str:
    """One Prefect global concurrency limit per leverloop database."""
    where = f"{db.host}:{db.port}/{db.url.database}"
    return f"leverloop-loop-{hashlib.sha1(where.encode()).hexdigest()[:10]}"


def _lock_holder(conn: sa.Connection) -> str:
    row = conn.execute(
        sa.text(
            """
            select a.application_name, a.pid, a.backend_start
              from pg_locks l join pg_stat_activity a on a.pid = l.pid
             where l.locktype = 'advisory' and l.granted
               and l.objid::bigint = (cast(:k as bigint) & 4294967295)
               and l.classid::bigint = (cast(:k as bigint) >> 32) and l.objsubid = 1
             limit 1
            """
        ),
        {"k": LOOP_LOCK_KEY},
    ).first()
    if row is None:
        return "another session"
    return f"{row.application_name or 'a session'} (pid {row.pid}, since {row.backend_start:%Y-%m-%d %H:%M:%S %Z})"


@contextmanager
def database_lock(db: Database, owner: str, *, wait_seconds: float) -> Iterator[None]:
    """The loop's PostgreSQL advisory lock on a dedicated session; released if the process dies."""
    engine = sa.create_engine(
        db.url, poolclass=sa.pool.NullPool, connect_args={"application_name": owner[:63]}
    )
    conn = engine.connect()
    try:
        deadline = time.monotonic() + max(0.0, wait_seconds)
        while True:
            got = conn.execute(
                sa.text("select pg_try_advisory_lock(:k)"), {"k": LOOP_LOCK_KEY}
            ).scalar_one()
            conn.commit()
            if got:
                break
            if time.monotonic() >= deadline:
                holder = _lock_holder(conn)
                raise RunInProgress(
                    f"another learning-loop run holds the loop's lock on {db.url.database}: "
                    f"{holder}; waited {wait_seconds:g}s, nothing was done"
                )
            time.sleep(0.5)
        try:
            yield
        finally:
            conn.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": LOOP_LOCK_KEY})
            conn.commit()
    finally:
        conn.close()
        engine.dispose()


def _ensure_limit(name: str) -> None:
    """Create the global limit (1 slot) if missing; free slots orphaned by a killed run.

    Called while holding the database lock: every live run takes that lock before the slot
    and gives it back after, so a slot still taken now belongs to a process that died (an
    ephemeral Prefect server has no lease reaper to free it).
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it meanwhile
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
            return
        if limit.active_slots:
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(active_slots=0)
            )


@contextmanager
def exclusive_run(ctx: Context, run_id: str, *, wait_seconds: float) -> Iterator[str]:
    """Hold the database lock, then the Prefect global concurrency slot, for a whole run.

    A second trigger waits up to ``wait_seconds`` and then raises ``RunInProgress``; it never
    interleaves with the running one. Yields the Prefect limit's name.
    """
    from prefect.concurrency.sync import concurrency

    with database_lock(ctx.db, f"leverloop-loop {run_id}", wait_seconds=wait_seconds):
        name = concurrency_limit_name(ctx.db)
        _ensure_limit(name)
        with concurrency(
            name,
            occupy=1,
            strict=True,
            timeout_seconds=30,
            lease_duration=LEASE_SECONDS,
            raise_on_lease_renewal_failure=False,  # the database lock is the guarantee
        ):
            faults.checkpoint("locked")
            yield name


# ---------------------------------------------------------------- input gate


@dataclass
class Screening:
    """What the input gate found: the GX report, what it quarantined, the evidence after it."""

    start: loop.RunStart
    report: quality.QualityReport
    quarantined: dict[str, QuarantineResult] = field(default_factory=dict)
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)  # validated ingest_seq ranges

    def ceiling(self, target: str) -> int | None:
        """The highest ingest_seq this run validated: dbt reads nothing above it."""
        window = self.windows.get(target)
        return window[1] if window else None

    @property
    def blocked(self) -> bool:
        return self.report.blocked

    def reason(self) -> str:
        return "input data failed the quality gate: " + " | ".join(self.report.reasons())

    def to_json(self) -> dict[str, Any]:
        return {
            **self.report.to_json(),
            "quarantined": {t: q.reasons for t, q in self.quarantined.items() if q.moved},
        }


def screen_inputs(ctx: Context, start: loop.RunStart) -> Screening:
    """Validate the new batch; quarantine its bad rows unless the batch as a whole failed."""
    now = datetime.now(UTC)
    report = quality.validate_inputs(ctx, start.run_id, as_of=start.as_of, now=now)
    faults.checkpoint("input-gate")
    if report.blocked:
        return Screening(start=start, report=report)
    windows = quality.windows_of(report)
    with ctx.engine.begin() as conn:
        moved = {
            target: quarantine_window(conn, target, lo, hi, now=now, source=f"gate:{start.run_id}")
            for target, (lo, hi) in windows.items()
        }
        faults.checkpoint("quarantine")
        count, max_seq = conn.execute(
            sa.text(
                "select count(*), coalesce(max(ingest_seq), 0) from raw.trade_outcomes "
                "where closed_at <= :as_of and ingest_seq <= :hi"
            ),
            {"as_of": start.as_of, "hi": windows["trade_outcomes"][1]},
        ).one()
    watermark = Watermark(as_of=start.as_of, count=int(count), max_seq=int(max_seq))
    return Screening(
        start=replace(start, watermark=watermark), report=report, quarantined=moved, windows=windows
    )


# ---------------------------------------------------------------- output gate and policy


@dataclass(frozen=True)
class Decision:
    decision: str  # approved | rejected | timeout
    decided_by: str
    decided_at: datetime
    comment: str

    @property
    def approved(self) -> bool:
        return self.decision == "approved"

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat(),
            "comment": self.comment,
        }


@dataclass
class Review:
    """The gates' view of one candidate: output validity, the policy verdict, any decision."""

    policy: GatePolicy
    diff: ConfigDiff
    output: quality.QualityReport
    verdict: GateVerdict
    evidence: dict[EvidenceKey, Evidence]
    screening: Screening | None = None
    decision: Decision | None = None

    @property
    def blocked(self) -> bool:
        return self.output.blocked

    @property
    def action(self) -> Action:
        return self.verdict.action

    @property
    def publishable(self) -> bool:
        if self.blocked:
            return False
        if self.action in (Action.PUBLISH, Action.SHADOW):
            return True
        return self.decision is not None and self.decision.approved

    def reason(self) -> str:
        if self.blocked:
            return "the candidate config failed the output gate: " + " | ".join(
                self.output.reasons()
            )
        limits = "; ".join(self.verdict.reasons)
        d = self.decision
        how = "not decided" if d is None else f"{d.decision} by {d.decided_by}: {d.comment}"
        if d is not None and d.decision == "timeout":
            how = f"not decided in time, a timeout rejects: {d.comment}"
        return f"above the auto-publish limits ({limits}); {how}"

    @property
    def verdict_label(self) -> str:
        """auto | shadow | approved | approved-by-policy | rejected | rejected-by-policy | timeout"""
        if self.action is Action.SHADOW:
            return "shadow"
        if self.decision is None:
            return "auto"
        by_policy = "-by-policy" if self.decision.decided_by == "policy" else ""
        return self.decision.decision + by_policy

    def gate_report(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict_label,
            "policy": self.policy.model_dump(),
            "limits": self.verdict.to_json(),
            "input": self.screening.to_json() if self.screening else None,
            "output": self.output.to_json(),
            "approval": self.decision.to_json() if self.decision else None,
        }


def review_candidate(
    ctx: Context, start: loop.RunStart, candidate: loop.Candidate, policy: GatePolicy
) -> Review:
    """Validate the candidate's levers (GX output suite) and check the policy's limits."""
    with ctx.engine.connect() as conn:
        head = configs.current(conn)
    evidence = candidate.evidence
    parent = head.config() if head else None
    rows = quality.lever_rows(start.run_id, candidate.config, parent, candidate.engine.states)
    output = quality.validate_output(ctx, start.run_id, rows)
    faults.checkpoint("output-gate")
    pinned = head.version if head is not None and head.verdict == "rollback" else None
    elapsed = (
        (start.as_of - start.previous.as_of).total_seconds() / 86400 if start.previous else 1.0
    )
    verdict = evaluate(
        candidate.diff,
        evidence,
        policy,
        has_parent=head is not None,
        pinned_by_rollback=pinned,
        elapsed_days=elapsed,
    )
    return Review(
        policy=policy, diff=candidate.diff, output=output, verdict=verdict, evidence=evidence
    )


# ---------------------------------------------------------------- operator approval


def _approval_input_class():
    from prefect.input import RunInput

    class ApprovalInput(RunInput):
        """An operator's decision on a pm_config change above the auto-publish limits."""

        approve: bool = Field(description="Publish this change to the PM?")
        operator: str = Field(min_length=1, description="Who decides (recorded)")
        reason: str = Field(min_length=1, description="Why (recorded with the version)")

    return ApprovalInput


ApprovalInput = _approval_input_class()


def await_approval(ctx: Context, start: loop.RunStart, review: Review) -> Decision:
    """Pause the flow run until an operator approves or rejects (Prefect UI or API).

    Must be called from the flow. The request and the decision (who, when, why) are stored in
    ``leverloop.approvals`` as they happen; a timeout is recorded as a rejection.
    """
    from prefect import pause_flow_run
    from prefect.exceptions import FlowPauseTimeout
    from prefect.runtime import flow_run

    timeout = review.policy.approval_timeout_seconds
    with ctx.engine.begin() as conn:
        gate_store.request_approval(
            conn, start.run_id, flow_run.get_id(), datetime.now(UTC), review.verdict.reasons
        )
    description = approval_markdown(start, review)
    try:
        answer = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(description=description, approve=False),
            timeout=timeout,
            poll_interval=2 if timeout >= 4 else 1,
            key=f"approval-{start.run_id}",
        )
        decision = Decision(
            "approved" if answer.approve else "rejected",
            answer.operator.strip(),
            datetime.now(UTC),
            answer.reason.strip(),
        )
    except FlowPauseTimeout:
        decision = Decision(
            "timeout", "timeout", datetime.now(UTC), f"no decision within {timeout}s"
        )
    with ctx.engine.begin() as conn:
        _record(conn, start, decision)
    return decision


def _record(conn: sa.Connection, start: loop.RunStart, decision: Decision) -> None:
    gate_store.record_decision(
        conn,
        start.run_id,
        decision=decision.decision,
        decided_by=decision.decided_by,
        decided_at=decision.decided_at,
        comment=decision.comment,
    )


def decide_by_policy(ctx: Context, start: loop.RunStart, review: Review) -> Decision:
    """An above-limit candidate decided by the policy itself (on_exceed reject/approve)."""
    decision = Decision(
        "approved" if review.action is Action.APPROVE else "rejected",
        "policy",
        datetime.now(UTC),
        f"on_exceed={review.policy.on_exceed}",
    )
    with ctx.engine.begin() as conn:
        gate_store.request_approval(
            conn, start.run_id, None, decision.decided_at, review.verdict.reasons
        )
        _record(conn, start, decision)
    return decision


# ---------------------------------------------------------------- rollback


def rollback(ctx: Context, version: int, *, operator: str, reason: str) -> int:
    """Publish version ``version``'s payload again as a new version, after the output gates.

    Validates the payload against the current schema, runs the output suite over it (invalid
    configs are refused), records who rolled back and why, and pins the config: the next
    learned change needs an operator. Takes the loop's database lock (fails fast while a loop
    run is in progress).
    """
    run_id = f"rollback-{uuid.uuid4().hex[:12]}"
    with database_lock(ctx.db, f"leverloop-rollback {run_id}", wait_seconds=5):
        with ctx.engine.connect() as conn:
            target = configs.get(conn, version)
            head = configs.current(conn)
        if target is None:
            raise LeverloopError(f"no pm_config version {version}")
        try:
            config = target.config()
        except ValueError as exc:
            raise LeverloopError(f"v{version} is not a valid pm_config today: {exc}") from None
        if head is not None and head.content_hash == target.content_hash:
            raise LeverloopError(
                f"v{version} has the same content as the current v{head.version}; nothing to do"
            )
        parent = head.config() if head else None
        output = quality.validate_output(ctx, run_id, quality.lever_rows(run_id, config, parent))
        if output.blocked:
            raise LeverloopError(
                f"v{version} fails the output gate, not published: " + " | ".join(output.reasons())
            )
        diff = diff_configs(parent, config)
        report = {
            "verdict": "rollback",
            "rollback_of": version,
            "output": output.to_json(),
            "approval": Decision("approved", operator, datetime.now(UTC), reason).to_json(),
        }
        with ctx.engine.begin() as conn:
            published = configs.publish(
                conn,
                config,
                run_id=run_id,
                gate_report=report,
                diff=diff.to_json(),
                parent=head.version if head else None,
            )
    assert published is not None
    return published


# ---------------------------------------------------------------- what the operator sees


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def changed_lever_rows(review: Review, limit: int = 200) -> list[dict[str, Any]]:
    """Rows of the changed-levers table artifact: before, after, evidence n, edge."""
    items = sorted(review.diff.levers, key=lambda d: -min(lever_step(d), 1e9))[:limit]
    rows = []
    for d in items:
        facts = review.evidence.get(evidence_key(d.pattern_key, d.action_category, d.scope))
        rows.append(
            {
                "pattern": d.pattern_key,
                "category": d.action_category,
                "scope": scope_label(d.scope),
                "lever": d.lever,
                "before": _value(d.before),
                "after": _value(d.after),
                "change": d.kind,
                "evidence_n": facts.n if facts else None,
                "edge": round(facts.edge, 4) if facts and facts.edge is not None else None,
                "p_value": float(f"{facts.p_value:.3g}") if facts else None,
                "counterfactuals": facts.n_counterfactuals if facts else None,
            }
        )
    return rows


def _check_lines(review: Review) -> list[str]:
    lines = ["| check | verdict | detail |", "|---|---|---|"]
    for c in review.verdict.checks:
        lines.append(f"| {c.name} | {'pass' if c.passed else '**exceeds**'} | {c.detail} |")
    return lines


def approval_markdown(start: loop.RunStart, review: Review) -> str:
    counts = review.diff.counts()
    lines = [
        f"### pm_config change above the auto-publish limits (run `{start.run_id[:12]}`)",
        "",
        f"as_of {start.as_of.isoformat()}: {counts['added']} levers added, "
        f"{counts['changed']} changed, {counts['removed']} removed "
        f"({review.verdict.material_changes} material).",
        "",
        *_check_lines(review),
        "",
        "Approve to publish it to the PM, or reject to keep the current config. Your name and "
        "reason are stored with the decision. The table artifact of this run lists every "
        f"changed lever. Without a decision within {review.policy.approval_timeout_seconds}s "
        "the change is rejected.",
    ]
    return "\n".join(lines)


def stopped_markdown(start: loop.RunStart, status: str) -> str:
    """Head of the summary of a run that committed nothing."""
    return (
        f"# Learning loop run `{start.run_id[:12]}`: {status}\n\n"
        f"- **as_of**: {start.as_of.isoformat()}\n"
        f"- **evidence**: {start.watermark.count:,} outcomes\n"
        "- **published**: nothing; the current config is unchanged\n"
    )


def gate_markdown(
    screening: Screening | None, review: Review | None, *, status: str, reason: str | None
) -> str:
    """The gates' part of the run summary: verdicts, the decision, what was quarantined."""
    lines = ["", "## Gates", "", f"- **outcome**: {status}"]
    if reason:
        lines.append(f"- **reason**: {reason}")
    if screening is not None:
        report = screening.report
        lines.append(
            f"- **input gate**: {'failed' if report.blocked else 'passed'} "
            f"({sum(1 for s in report.suites if s.success)}/{len(report.suites)} suites clean)"
        )
        for text in report.reasons():
            lines.append(f"  - blocking: {text}")
        for text in report.warnings():
            lines.append(f"  - warning: {text}")
        for target, moved in screening.quarantined.items():
            if moved.moved:
                codes = ", ".join(f"{c} x{n}" for c, n in sorted(moved.reasons.items()))
                lines.append(f"- **quarantined** from raw.{target}: {moved.moved} rows ({codes})")
    if review is not None:
        counts = review.diff.counts()
        lines.append(
            f"- **diff against the current config**: {counts['added']} levers added, "
            f"{counts['changed']} changed, {counts['removed']} removed "
            f"({review.verdict.material_changes} material); flags changed: "
            f"{', '.join(review.diff.flags) or 'none'} (table artifact: every changed lever)"
        )
        lines.append(f"- **output gate**: {'failed' if review.output.blocked else 'passed'}")
        for text in review.output.reasons():
            lines.append(f"  - blocking: {text}")
        for text in review.output.warnings():
            lines.append(f"  - warning: {text}")
        lines.append(
            f"- **limits**: {'within' if review.verdict.within_limits else 'exceeded'}; "
            f"action `{review.action.value}`"
            + (
                " (shadow: stored as would-apply, the PM's config is unchanged)"
                if review.action is Action.SHADOW
                else ""
            )
        )
        if review.decision is not None:
            d = review.decision
            lines.append(
                f"- **decision**: {d.decision} by {d.decided_by} at {d.decided_at.isoformat()}: {d.comment}"
            )
        lines += ["", *_check_lines(review)]
    docs = review.output if review else screening.report if screening else None
    if docs is not None and docs.data_docs_index:
        lines += ["", f"Data Docs: {docs.data_docs_index}"]
    return "\n".join(lines) + "\n"


def create_artifacts(
    screening: Screening | None,
    review: Review | None,
    *,
    summary: str,
    status: str,
    reason: str | None,
) -> None:
    """Markdown summary (verdicts, diff), table of changed levers, link to the GX Data Docs."""
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    create_markdown_artifact(
        summary + gate_markdown(screening, review, status=status, reason=reason),
        key="learning-loop-summary",
        description="What this run learned, what the gates decided, what was published",
    )
    if review is not None and review.diff.levers:
        create_table_artifact(
            changed_lever_rows(review),
            key="learning-loop-changed-levers",
            description="Levers the candidate changes: before, after, evidence n, edge",
        )
    report = review.output if review else screening.report if screening else None
    if report is not None and report.data_docs_index:
        create_link_artifact(
            report.data_docs_index,
            link_text="Great Expectations Data Docs (this machine)",
            key="learning-loop-data-docs",
            description="Validation results of the input and output suites",
        )
