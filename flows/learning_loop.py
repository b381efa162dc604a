"""The closed learning loop as a Prefect flow. Thin: parameters -> services -> artifacts.

Runs in Prefect's ephemeral mode when no ``PREFECT_API_URL`` is set, and against a Prefect
server when one is (``leverloop serve`` / ``prefect.yaml``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from leverloop import faults
from leverloop.domain.engine import EnginePolicy
from leverloop.domain.gates import Action, GatePolicy
from leverloop.learning.refit import MetaFit
from leverloop.pipeline import loop, meta, publish
from leverloop.pipeline.context import Context, open_context
from leverloop.pipeline.dbt import DbtVars, build_marts

DEFAULT_GATES = GatePolicy()


@task(name="check-new-evidence", cache_policy=NO_CACHE)
def check_new_evidence(ctx: Context, as_of: datetime | None, run_id: str) -> loop.RunStart:
    return loop.begin_run(ctx, as_of=as_of, run_id=run_id, flow_run_id=flow_run.get_id())


@task(name="refit-meta", cache_policy=NO_CACHE)
def refit_meta(ctx: Context, run_id: str) -> MetaFit:
    """v5 refits (5.1 regime weights, 5.2 half-lives, 5.3 factors), each with its artifact."""
    result = meta.refit_meta(ctx)
    pngs = meta.plot_pngs(result)
    files = meta.save_pngs(pngs, ctx.settings.home_dir / "artifacts" / run_id)
    for key, text, png in (
        ("v5-regime-weights", meta.weights_markdown(result), "regime-weights"),
        ("v5-halflives", meta.halflives_markdown(result), "halflives"),
        ("v5-factor-map", meta.factors_markdown(result), None),
    ):
        note = f"\n\nPlot: `{files[png]}`\n" if png in files else ""
        create_markdown_artifact(text + note, key=key)
        if png in pngs:
            create_image_artifact(meta.data_url(pngs[png]), key=f"{key}-plot")
    return result


@task(name="update-levers", cache_policy=NO_CACHE)
def update_levers(
    ctx: Context, start: loop.RunStart, policy: EnginePolicy, lookback_days: int, fit: MetaFit
) -> loop.Candidate:
    return loop.compute_candidate(ctx, start, policy, lookback_days, meta=fit)


@task(name="input-gate", cache_policy=NO_CACHE)
def input_gate(ctx: Context, start: loop.RunStart) -> publish.Screening:
    return publish.screen_inputs(ctx, start)


@task(name="output-gate", cache_policy=NO_CACHE)
def output_gate(
    ctx: Context, start: loop.RunStart, candidate: loop.Candidate, gates: GatePolicy
) -> publish.Review:
    return publish.review_candidate(ctx, start, candidate, gates)


@task(name="publish-config", cache_policy=NO_CACHE)
def publish_config(
    ctx: Context, start: loop.RunStart, candidate: loop.Candidate, review: publish.Review
) -> int | None:
    return loop.commit(
        ctx,
        start,
        candidate,
        gate_report=review.gate_report(),
        shadow=review.action is Action.SHADOW,
    )


@flow(name="learning-loop", log_prints=True)
def learning_loop(
    as_of: datetime | None = None,
    lookback_days: int = 28,
    gates: GatePolicy = DEFAULT_GATES,
    lock_wait_seconds: float = 300.0,
) -> dict[str, Any]:
    """One turn of the loop: new outcomes -> gates -> dbt marts -> v5 refits -> levers -> gated pm_config.

    Runs one at a time (a second trigger waits up to ``lock_wait_seconds``, then returns
    status ``busy``). ``gates`` is the auto-publish policy (``domain/gates.py``).
    """
    logger = get_run_logger()
    ctx = open_context()
    run_id = flow_run.get_id() or loop.new_run_id()
    try:
        with publish.exclusive_run(ctx, run_id, wait_seconds=lock_wait_seconds):
            return _turn(ctx, run_id, as_of, lookback_days, gates)
    except publish.RunInProgress as exc:
        logger.warning("%s", exc)
        create_markdown_artifact(
            f"# Learning loop: not run\n\n{exc}\n", key="learning-loop-summary"
        )
        return {"status": "busy", "reason": str(exc), "version": None}


def _turn(
    ctx: Context, run_id: str, as_of: datetime | None, lookback_days: int, gates: GatePolicy
) -> dict[str, Any]:
    logger = get_run_logger()
    start = check_new_evidence(ctx, as_of, run_id)
    faults.checkpoint("begun")
    if not start.has_new_evidence:
        loop.finish_without_change(ctx, start, "no_new_evidence")
        create_markdown_artifact(
            loop.markdown_report(start, None, None), key="learning-loop-summary"
        )
        logger.info("No new evidence since the last committed run; nothing to do")
        return {"status": "no_new_evidence", "as_of": start.as_of.isoformat(), "version": None}
    screening: publish.Screening | None = None
    review: publish.Review | None = None
    try:
        screening = input_gate(ctx, start)
        start = screening.start
        if screening.blocked:
            return _stop(ctx, start, screening, None, "blocked", screening.reason())
        if not start.has_new_evidence:
            return _stop(ctx, start, screening, None, "no_new_evidence", None)
        build_marts(
            ctx,
            DbtVars(
                as_of=start.as_of,
                lookback_days=lookback_days,
                run_id=run_id,
                max_outcome_seq=screening.ceiling("trade_outcomes"),
                max_counterfactual_seq=screening.ceiling("counterfactuals"),
            ),
        )
        faults.checkpoint("dbt")
        fit = refit_meta(ctx, run_id)
        faults.checkpoint("meta")
        candidate = update_levers(ctx, start, EnginePolicy(), lookback_days, fit)
        faults.checkpoint("candidate")
        review = output_gate(ctx, start, candidate, gates)
        review.screening = screening
        if review.blocked:
            return _stop(ctx, start, screening, review, "blocked", review.reason())
        if review.action is Action.PAUSE:
            review.decision = publish.await_approval(ctx, start, review)
        elif review.action in (Action.REJECT, Action.APPROVE):
            review.decision = publish.decide_by_policy(ctx, start, review)
        if not review.publishable:
            return _stop(ctx, start, screening, review, "rejected", review.reason())
        version = publish_config(ctx, start, candidate, review)
        faults.checkpoint("committed")
    except BaseException as exc:
        loop.finish_without_change(
            ctx, start, "failed", error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    shadow = review.action is Action.SHADOW and version is not None
    status = "shadow" if shadow else "published" if version else "no_change"
    publish.create_artifacts(
        screening,
        review,
        summary=loop.markdown_report(start, candidate, version),
        status=status,
        reason=None,
    )
    summary = loop.summary_of(start, candidate, version)
    logger.info(
        "as_of %s: %s; %d levers in state",
        start.as_of.isoformat(),
        f"{status} pm_config v{version}" if version else "config unchanged",
        summary["levers_in_state"],
    )
    return {"status": status, "gate_verdict": review.verdict_label, **summary}


def _stop(
    ctx: Context,
    start: loop.RunStart,
    screening: publish.Screening | None,
    review: publish.Review | None,
    status: str,
    reason: str | None,
) -> dict[str, Any]:
    """End a run that commits nothing: the run record, the artifacts and the result say why."""
    loop.finish_without_change(ctx, start, status, error=reason)
    publish.create_artifacts(
        screening,
        review,
        summary=publish.stopped_markdown(start, status),
        status=status,
        reason=reason,
    )
    if reason:
        get_run_logger().warning("nothing published: %s", reason)
    return {"status": status, "reason": reason, "as_of": start.as_of.isoformat(), "version": None}
