"""Gate rules: may a candidate ``pm_config`` be published without an operator? Pure: no I/O.

A candidate is *within the limits* of a ``GatePolicy`` when, against the current config:

* ``levers_changed``: at most ``max_levers_changed`` levers change materially (added, changed or
  removed by at least ``material_step`` x the lever's registry ``max_step``);
* ``lever_step``: no lever moves by more than ``max_step_scale`` x its registry ``max_step``
  per day since the parent version (the engine's own rate limit; at least one day's worth). A
  signal threshold being set or withdrawn has no neutral value to measure from and counts as
  one full step;
* ``support`` / ``significance``: every material move *away from neutral* is backed by its
  evidence: a capital lever by a cell with at least ``min_support`` outcomes and a p-value of
  at most ``significance``; a tuning lever by at least ``min_support`` counterfactuals (its
  mapping-table rule, which requires a material missed R/R, stands in for a significance
  test). Moves toward neutral, decay and removals only ever reduce risk and need no evidence;
* ``flags``: ``learning_overrides_enabled`` and its regimes are unchanged;
* ``rollback_pin``: the current version is not an operator's rollback (a rollback stays until
  an operator approves the next learned change, so automation never silently undoes it).

Within the limits the loop publishes. Above them ``on_exceed`` decides: ``pause`` for an
operator's approval (the default), ``reject``, or ``approve`` (recorded as approved by policy,
for simulations such as ``leverloop demo``). ``shadow`` publishes every candidate as a
would-apply version only: it is stored and diffable but never becomes current, so the PM keeps
running the current config unchanged; shadow runs never pause.

Whether a candidate is *valid* at all (bounds, NaN, known levers) is not a policy question:
the output data-quality suite blocks invalid candidates and nobody can approve them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from leverloop.domain.diff import ConfigDiff, LeverDiff
from leverloop.domain.levers import REGISTRY, Family
from leverloop.domain.scope import ScopeKey, scope_key, scope_label

EvidenceKey = tuple[str, str, ScopeKey]  # (pattern_key, action_category, scope)
_LISTED = 8  # offending levers named per check


class GatePolicy(BaseModel):
    """Auto-publish limits. Defaults suit an hourly loop; every field is a flow parameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_levers_changed: int = Field(
        default=25,
        ge=0,
        description="Most levers that may change materially in one automatic publish.",
    )
    max_step_scale: float = Field(
        default=1.0,
        gt=0,
        description="Largest change of one lever in one automatic publish, as a multiple of "
        "the lever's registry max_step (size_mult: 0.10, entry/exit aggression: 0.06).",
    )
    material_step: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="A change smaller than this fraction of max_step is a nudge: it does not "
        "count toward max_levers_changed and needs no evidence check.",
    )
    min_support: int = Field(
        default=30,
        ge=1,
        description="Fewest outcomes behind a lever that moves away from neutral.",
    )
    significance: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="Largest two-sided p-value of the edge behind a lever that moves away "
        "from neutral.",
    )
    shadow: bool = Field(
        default=False,
        description="Publish as would-apply only: the version is stored and diffable but the "
        "current pointer does not move, so the PM keeps its config.",
    )
    on_exceed: Literal["pause", "reject", "approve"] = Field(
        default="pause",
        description="Above the limits: pause for an operator's approval in the Prefect UI, "
        "reject, or approve by policy (recorded as such; for simulations).",
    )
    approval_timeout_seconds: int = Field(
        default=3600,
        ge=1,
        description="How long a paused run waits for an operator; a timeout rejects.",
    )


@dataclass(frozen=True)
class Evidence:
    """The evidence behind one (pattern_key, action_category, scope) cell.

    Capital levers move on the cell's edge (``n`` outcomes, its p-value from the marts);
    tuning levers move on its counterfactuals (``n_counterfactuals``) through the mapping
    table, whose materiality rule stands in for a significance test.
    """

    n: int
    p_value: float
    n_counterfactuals: int = 0
    edge: float | None = None


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    observed: float | None
    limit: float | None
    detail: str
    levers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        finite = {k: _finite(getattr(self, k)) for k in ("observed", "limit")}
        return {**asdict(self), **finite, "levers": list(self.levers)}


class Action(StrEnum):
    PUBLISH = "publish"  # within the limits
    SHADOW = "shadow"  # store as would-apply only
    PAUSE = "pause"  # wait for an operator
    REJECT = "reject"  # above the limits, rejected by policy
    APPROVE = "approve"  # above the limits, approved by policy


@dataclass(frozen=True)
class GateVerdict:
    checks: tuple[Check, ...]
    material_changes: int
    action: Action

    @property
    def within_limits(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "within_limits": self.within_limits,
            "action": self.action.value,
            "material_changes": self.material_changes,
            "checks": [c.to_json() for c in self.checks],
            "reasons": self.reasons,
        }


def _neutral(path: str) -> float | None:
    lever = REGISTRY.get(path)
    return lever.neutral if lever else None


def lever_step(item: LeverDiff) -> float:
    """How far a lever moves in one publish; an absent lever sits at its neutral value.

    A lever without a neutral (a signal threshold) being set or withdrawn counts as one full
    ``max_step``.
    """
    neutral = _neutral(item.lever)
    before = item.before if item.before is not None else neutral
    after = item.after if item.after is not None else neutral
    if before is None or after is None:
        return _max_step(item.lever) if item.lever in REGISTRY else math.inf
    return abs(after - before)


def moves_away_from_neutral(item: LeverDiff) -> bool:
    neutral = _neutral(item.lever)
    if item.after is None:
        return False  # removed: back to neutral
    if neutral is None:
        return True  # a threshold set or moved: a new constraint on the PM
    before = item.before if item.before is not None else neutral
    return abs(item.after - neutral) > abs(before - neutral) or (
        (item.after - neutral) * (before - neutral) < 0
    )


def _is_tuning(path: str) -> bool:
    lever = REGISTRY.get(path)
    return lever is not None and lever.family is Family.TUNING


def _max_step(path: str) -> float:
    lever = REGISTRY.get(path)
    return lever.max_step if lever else 0.0


def _label(item: LeverDiff) -> str:
    return f"{item.pattern_key}/{item.action_category} {{{scope_label(item.scope)}}} {item.lever}"


def evidence_key(pattern_key: str, action_category: str, scope: Mapping[str, str]) -> EvidenceKey:
    return (pattern_key, action_category, scope_key(scope))


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    return shown + (f" and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def evaluate(
    diff: ConfigDiff,
    evidence: Mapping[EvidenceKey, Evidence],
    policy: GatePolicy,
    *,
    has_parent: bool,
    pinned_by_rollback: int | None = None,
    elapsed_days: float = 1.0,
) -> GateVerdict:
    """Check a candidate's diff against the policy and say what the loop should do with it.

    ``max_step`` is a rate (per day, as the engine applies it): a publish that follows its
    parent by ``elapsed_days`` may move a lever ``max_step_scale * max_step * elapsed_days``
    (at least one day's worth) before it needs an operator.
    """
    days = max(1.0, elapsed_days) if math.isfinite(elapsed_days) else 1.0
    material = [
        d for d in diff.levers if lever_step(d) >= policy.material_step * _max_step(d.lever)
    ]
    too_far = sorted(
        (
            d
            for d in diff.levers
            if lever_step(d) > policy.max_step_scale * _max_step(d.lever) * days
        ),
        key=lambda d: (-lever_step(d), _label(d)),
    )
    largest = max(
        (lever_step(d) / ((_max_step(d.lever) or 1.0) * days) for d in diff.levers), default=0.0
    )
    unsupported: list[str] = []
    insignificant: list[str] = []
    for d in sorted(material, key=_label):
        if not moves_away_from_neutral(d):
            continue
        ev = evidence.get(evidence_key(d.pattern_key, d.action_category, d.scope))
        tuning = _is_tuning(d.lever)
        support = (ev.n_counterfactuals if tuning else ev.n) if ev else 0
        if support < policy.min_support:
            unsupported.append(f"{_label(d)} (n={support})")
        elif not tuning and ev.p_value > policy.significance:
            insignificant.append(f"{_label(d)} (p={ev.p_value:.3g})")
    flags = sorted(diff.flags) if has_parent else []

    checks = (
        Check(
            "levers_changed",
            len(material) <= policy.max_levers_changed,
            len(material),
            policy.max_levers_changed,
            f"{len(material)} levers change materially (limit {policy.max_levers_changed})",
        ),
        Check(
            "lever_step",
            not too_far,
            largest,
            policy.max_step_scale,
            f"{len(too_far)} levers move more than {policy.max_step_scale:g} x their max_step: "
            + _listed([f"{_label(d)} {_fmt(d.before)} -> {_fmt(d.after)}" for d in too_far])
            if too_far
            else f"every lever moves at most {policy.max_step_scale:g} x its max_step",
            tuple(_label(d) for d in too_far[:_LISTED]),
        ),
        Check(
            "support",
            not unsupported,
            len(unsupported),
            policy.min_support,
            f"{len(unsupported)} levers move away from neutral on fewer than "
            f"{policy.min_support} outcomes: {_listed(unsupported)}"
            if unsupported
            else f"every move away from neutral has at least {policy.min_support} outcomes",
            tuple(unsupported[:_LISTED]),
        ),
        Check(
            "significance",
            not insignificant,
            len(insignificant),
            policy.significance,
            f"{len(insignificant)} levers move away from neutral on an edge with p > "
            f"{policy.significance:g}: {_listed(insignificant)}"
            if insignificant
            else f"every move away from neutral has p <= {policy.significance:g}",
            tuple(insignificant[:_LISTED]),
        ),
        Check(
            "flags",
            not flags,
            len(flags),
            0,
            f"feature flags change: {', '.join(flags)}" if flags else "feature flags unchanged",
        ),
        Check(
            "rollback_pin",
            pinned_by_rollback is None or diff.empty,
            None,
            None,
            f"the current config v{pinned_by_rollback} is an operator's rollback; the next "
            "learned change needs an operator"
            if pinned_by_rollback is not None
            else "the current config is not a rollback",
        ),
    )
    within = all(c.passed for c in checks)
    return GateVerdict(
        checks=checks, material_changes=len(material), action=next_action(within, policy)
    )


def next_action(within_limits: bool, policy: GatePolicy) -> Action:
    if policy.shadow:
        return Action.SHADOW
    if within_limits:
        return Action.PUBLISH
    return {"pause": Action.PAUSE, "reject": Action.REJECT, "approve": Action.APPROVE}[
        policy.on_exceed
    ]


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "neutral" if value is None else f"{value:g}"
