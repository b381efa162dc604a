"""Lessons: one per (module, pattern_key, action_category, scope) cell, with an auditable lifecycle.

    candidate ──(support, significant after FDR, specific)──► active
        ▲                                                      │ evidence weakens (q > q_exit),
        │                                                      ▼ support fades, or no evidence
    disabled ◄──(its levers decayed back to neutral)────── decaying ──(significant again)──► active
        ▲
        └── by monitoring (the override did not help) or an operator: stays disabled

* **support**: ``n_eff >= min_n_eff`` (effective sample size under recency weighting);
* **significant after FDR**: Benjamini-Hochberg q-values over the supported cells of the
  lattice, stratified by (module, scope depth): the few root cells of a module form one
  stratum, its many depth-1 and depth-2 cells others. Stratified BH keeps the false discovery
  rate of the whole lattice at ``fdr_q`` while the thousands of nested sub-scope tests do not
  drown the power of the root-level ones. ``q <= fdr_q`` activates; an active lesson stays
  active until ``q > fdr_q_exit`` (hysteresis, so runs sampling the evidence at different
  moments do not flip it on and off);
* **specific**: a cell below the root must differ from its parents' shrunk estimate
  (``|t_vs_parent| >= child_min_t``); otherwise its parent's lesson already covers it and the
  runtime's most-specific match falls back to that.

Every lesson carries the reason for its current status (why it is a candidate, why it was
disabled), and every transition is an event: both are queryable.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from leverloop.domain.scope import canonical_json, scope_key


class LessonStatus(StrEnum):
    CANDIDATE = "candidate"
    ACTIVE = "active"
    DECAYING = "decaying"
    DISABLED = "disabled"


class DisabledBy(StrEnum):
    DECAY = "decay"
    MONITOR = "monitor"
    OPERATOR = "operator"


@dataclass(frozen=True)
class LessonPolicy:
    min_n_eff: float = 30.0
    fdr_q: float = 0.05
    fdr_q_exit: float = 0.20
    child_min_t: float = 2.0
    min_halflife_hours: float = 24.0


def lesson_id(module: str, pattern_key: str, category: str, scope: Mapping[str, str]) -> str:
    """Stable across runs and processes: derived from the cell's key only."""
    text = "\x1f".join((module, pattern_key, category, canonical_json(scope)))
    return f"ls_{hashlib.sha1(text.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class CellEvidence:
    """What the marts say about one cell this run (the lesson's evidence)."""

    module: str
    pattern_key: str
    action_category: str
    scope: dict[str, str]
    n: int
    n_eff: float
    edge: float  # edge_raw_regime: what the capital rule acts on
    confidence: float
    p_value: float
    t_vs_parent: float
    scope_depth: int
    edge_sd: float = 0.0  # posterior sd of `edge`

    @property
    def lesson_id(self) -> str:
        return lesson_id(self.module, self.pattern_key, self.action_category, self.scope)


@dataclass(frozen=True)
class Lesson:
    lesson_id: str
    module: str
    pattern_key: str
    action_category: str
    scope: dict[str, str]
    status: LessonStatus
    reason: str
    decay_halflife_hours: float
    first_seen_at: datetime
    status_since: datetime
    last_evidence_at: datetime | None = None
    disabled_by: DisabledBy | None = None
    strength: float = 0.0

    @property
    def publishes(self) -> bool:
        return self.status in (LessonStatus.ACTIVE, LessonStatus.DECAYING)

    @property
    def key(self) -> tuple:
        return (self.module, self.pattern_key, self.action_category, scope_key(self.scope))


@dataclass(frozen=True)
class LessonEvent:
    lesson_id: str
    from_status: LessonStatus | None
    to_status: LessonStatus
    reason: str
    evidence: dict[str, Any]


def bh_qvalues(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN counts as 1."""
    m = len(p_values)
    if m == 0:
        return []
    clean = [p if math.isfinite(p) else 1.0 for p in p_values]
    order = sorted(range(m), key=lambda i: clean[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, clean[i] * m / rank)
        q[i] = min(1.0, max(0.0, running))
    return q


def _qualifies(
    ev: CellEvidence, q: float, *, staying: bool, policy: LessonPolicy
) -> tuple[bool, str]:
    if not (math.isfinite(ev.edge) and math.isfinite(ev.n_eff)):
        return False, "evidence is not finite"
    if ev.n_eff < policy.min_n_eff:
        return False, f"too little support: n_eff {ev.n_eff:.0f} < {policy.min_n_eff:.0f}"
    limit = policy.fdr_q_exit if staying else policy.fdr_q
    if q > limit:
        return False, f"not significant after FDR: q {q:.3g} > {limit:g}"
    min_t = policy.child_min_t / 2 if staying else policy.child_min_t
    if ev.scope_depth > 0 and not abs(ev.t_vs_parent) >= min_t:
        return (
            False,
            f"not different from its parent scope: |t_vs_parent| {abs(ev.t_vs_parent):.2f} < {min_t:g}",
        )
    return True, f"q {q:.3g} <= {limit:g}, n_eff {ev.n_eff:.0f}, edge {ev.edge:+.3f}"


def classify(
    evidence: Sequence[CellEvidence],
    prior: Mapping[str, Lesson],
    *,
    verdicts: Mapping[str, tuple[str, str]],
    halflives: Mapping[tuple[str, str, str], float],
    as_of: datetime,
    default_halflife_hours: float,
    policy: LessonPolicy,
) -> tuple[dict[str, Lesson], list[LessonEvent], dict[str, float]]:
    """Next status of every lesson. ``verdicts``: lesson_id -> (verdict, reason) from monitoring;
    ``halflives``: (module, pattern_key, category) -> fitted half-life (v5.2)."""
    strata: dict[tuple[str, int], list[CellEvidence]] = {}
    for ev in evidence:
        if math.isfinite(ev.n_eff) and ev.n_eff >= policy.min_n_eff:
            strata.setdefault((ev.module, ev.scope_depth), []).append(ev)
    qs: dict[str, float] = {}
    for members in strata.values():
        q_values = bh_qvalues([ev.p_value for ev in members])
        qs.update(zip((ev.lesson_id for ev in members), q_values, strict=True))
    out: dict[str, Lesson] = {}
    events: list[LessonEvent] = []

    def move(
        lesson: Lesson, status: LessonStatus, reason: str, ev: CellEvidence | None, **extra: Any
    ) -> Lesson:
        changed = (
            status is not lesson.status
            or extra.get("disabled_by", lesson.disabled_by) != lesson.disabled_by
        )
        new = replace(
            lesson,
            status=status,
            reason=reason,
            status_since=as_of if changed else lesson.status_since,
            **extra,
        )
        if changed:  # a new lesson starts as a candidate: no event unless it activates at once
            events.append(
                LessonEvent(
                    lesson.lesson_id,
                    lesson.status if lesson.lesson_id in prior else None,
                    status,
                    reason,
                    _evidence_json(ev, qs.get(lesson.lesson_id)),
                )
            )
        return new

    seen: set[str] = set()
    for ev in evidence:
        lid = ev.lesson_id
        seen.add(lid)
        halflife = halflives.get(
            (ev.module, ev.pattern_key, ev.action_category), default_halflife_hours
        )
        lesson = prior.get(lid) or Lesson(
            lesson_id=lid,
            module=ev.module,
            pattern_key=ev.pattern_key,
            action_category=ev.action_category,
            scope=dict(ev.scope),
            status=LessonStatus.CANDIDATE,
            reason="new",
            decay_halflife_hours=halflife,
            first_seen_at=as_of,
            status_since=as_of,
        )
        lesson = replace(lesson, last_evidence_at=as_of, decay_halflife_hours=halflife)
        q = qs.get(lid, 1.0)
        verdict = verdicts.get(lid)
        if lesson.status is LessonStatus.DISABLED and lesson.disabled_by in (
            DisabledBy.MONITOR,
            DisabledBy.OPERATOR,
        ):
            out[lid] = lesson  # stays disabled until an operator says otherwise
            continue
        if verdict and verdict[0] == "disable":
            out[lid] = move(
                lesson,
                LessonStatus.DISABLED,
                f"monitoring: {verdict[1]}",
                ev,
                disabled_by=DisabledBy.MONITOR,
            )
            continue
        if verdict and verdict[0] == "decay_faster":
            lesson = replace(
                lesson, decay_halflife_hours=max(policy.min_halflife_hours, halflife / 2)
            )
        staying = lesson.status is LessonStatus.ACTIVE
        ok, why = _qualifies(ev, q, staying=staying, policy=policy)
        if ok:
            out[lid] = move(lesson, LessonStatus.ACTIVE, why, ev, disabled_by=None)
        elif lesson.status in (LessonStatus.ACTIVE, LessonStatus.DECAYING):
            out[lid] = move(lesson, LessonStatus.DECAYING, why, ev)
        elif lesson.status is LessonStatus.DISABLED:
            out[lid] = replace(
                lesson, reason=lesson.reason
            )  # decayed out; comes back only when it qualifies
        else:
            out[lid] = move(lesson, LessonStatus.CANDIDATE, why, ev)
    for lid, lesson in prior.items():
        if lid in seen:
            continue
        if lesson.status is LessonStatus.ACTIVE:
            out[lid] = move(lesson, LessonStatus.DECAYING, "no evidence in the window", None)
        elif lesson.status is LessonStatus.CANDIDATE:
            out[lid] = replace(lesson, reason="no evidence in the window")
        else:
            out[lid] = lesson
    return out, events, qs


def disable_decayed(lesson: Lesson, as_of: datetime) -> tuple[Lesson, LessonEvent]:
    reason = "its levers decayed back to neutral"
    new = replace(
        lesson,
        status=LessonStatus.DISABLED,
        reason=reason,
        status_since=as_of,
        disabled_by=DisabledBy.DECAY,
    )
    return new, LessonEvent(lesson.lesson_id, lesson.status, LessonStatus.DISABLED, reason, {})


def _evidence_json(ev: CellEvidence | None, q: float | None) -> dict[str, Any]:
    if ev is None:
        return {}
    return {
        "n": ev.n,
        "n_eff": round(ev.n_eff, 2),
        "edge": round(ev.edge, 5),
        "confidence": round(ev.confidence, 4),
        "p_value": ev.p_value,
        "q_value": q,
        "t_vs_parent": round(ev.t_vs_parent, 3) if math.isfinite(ev.t_vs_parent) else None,
    }
