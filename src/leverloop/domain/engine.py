"""The lever engine: evidence + previous state -> next lessons, lever state, history and pm_config.

Pure: the adapters load the evidence (dbt marts), the previous lever state and lessons (the
database) and persist what comes back. One call is one run of the loop:

1. lessons are classified (``lessons.classify``): FDR-controlled activation with hysteresis,
   monitoring verdicts (disable / decay faster), v5.2 half-lives;
2. capital levers (size_mult, entry/exit_aggression_mult for PM, alloc_multiplier for DM) of
   every active lesson move toward the equilibrium its edge implies (``capital.py``), scaled by
   its pattern's v5.2 persistence and capped per v5.3 latent factor (``exposure.py``); those of
   decaying lessons move back toward 1.0 with the lesson's half-life; a decaying lesson whose
   levers are back at neutral is disabled;
3. tuning levers move toward the targets of the mapping table (``tuning.py``);
4. the config is built from every lever not at neutral, keyed like the lever map says.

Every move uses ``dynamics.step``: bounded, rate-limited, NaN-proof, cadence-invariant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from leverloop.domain import capital
from leverloop.domain.capital import CapitalPolicy
from leverloop.domain.dynamics import is_neutral, step, to_space
from leverloop.domain.exposure import cap_exposure
from leverloop.domain.lessons import (
    CellEvidence,
    DisabledBy,
    Lesson,
    LessonEvent,
    LessonPolicy,
    LessonStatus,
    classify,
    disable_decayed,
    lesson_id,
)
from leverloop.domain.levers import REGISTRY, Family, LeverKind, nest_levers
from leverloop.domain.pm_config import Lesson as LessonBlock
from leverloop.domain.pm_config import PmConfig, StrengthOverride, TuningOverride
from leverloop.domain.scope import canonical_json
from leverloop.domain.tuning import TuningPolicy, phase_scaling_target, tuning_targets

PatternKey = tuple[str, str, str]  # (module, pattern_key, action_category)


@dataclass(frozen=True)
class EnginePolicy:
    capital: CapitalPolicy = field(default_factory=CapitalPolicy)
    lessons: LessonPolicy = field(default_factory=LessonPolicy)
    tuning: TuningPolicy = field(default_factory=TuningPolicy)


@dataclass(frozen=True)
class CounterfactualEvidence:
    module: str
    pattern_key: str
    action_category: str
    scope: dict[str, str]
    scope_depth: int
    n_counterfactuals: int
    signals: dict[str, float | None]

    @property
    def lesson_id(self) -> str:
        return lesson_id(self.module, self.pattern_key, self.action_category, self.scope)


@dataclass(frozen=True)
class LeverState:
    lesson_id: str
    module: str
    pattern_key: str
    action_category: str
    scope: dict[str, str]
    lever: str
    value: float
    target: float  # the lever's target in its space at this as_of (0 = neutral)
    as_of: datetime


@dataclass(frozen=True)
class LeverChange:
    lesson_id: str
    pattern_key: str
    action_category: str
    scope: dict[str, str]
    lever: str
    value_before: float | None
    value_after: float | None
    edge: float | None
    confidence: float | None
    n: int | None
    reason: str


@dataclass
class EngineResult:
    states: list[LeverState]
    lessons: dict[str, Lesson]
    events: list[LessonEvent]
    changes: list[LeverChange]
    config: PmConfig
    q_values: dict[str, float]
    cells_evaluated: int = 0


def capital_levers(module: str, category: str) -> list[str]:
    return [
        path
        for path, lv in REGISTRY.items()
        if lv.family is Family.CAPITAL and lv.applies_to(category, module)
    ]


def _hours(later: datetime, earlier: datetime | None) -> float:
    return 0.0 if earlier is None else max(0.0, (later - earlier).total_seconds() / 3600.0)


def run_engine(
    evidence: list[CellEvidence],
    counterfactuals: list[CounterfactualEvidence],
    states: list[LeverState],
    lessons: Mapping[str, Lesson],
    *,
    as_of: datetime,
    previous_as_of: datetime | None,
    policy: EnginePolicy,
    verdicts: Mapping[str, tuple[str, str]] | None = None,
    halflives: Mapping[PatternKey, float] | None = None,
    persistence: Mapping[PatternKey, float] | None = None,
    factors: Mapping[PatternKey, str] | None = None,
    learning_overrides_enabled: bool = True,
    enabled_regimes: list[str] | None = None,
) -> EngineResult:
    verdicts = verdicts or {}
    persistence = persistence or {}
    factors = factors or {}
    new_lessons, events, q_values = classify(
        evidence,
        lessons,
        verdicts=verdicts,
        halflives=halflives or {},
        as_of=as_of,
        default_halflife_hours=policy.capital.default_halflife_hours,
        policy=policy.lessons,
    )
    by_lever = {(s.lesson_id, s.lever): s for s in states}
    evidence_by_id = {ev.lesson_id: ev for ev in evidence}
    kept: list[LeverState] = []
    changes: list[LeverChange] = []
    strengths: dict[str, float] = {}

    def advance(
        lesson: Lesson,
        path: str,
        target_space: float,
        *,
        first_value: float | None,
        why: str,
        ev: CellEvidence | None,
    ) -> LeverState | None:
        lever = REGISTRY[path]
        prior = by_lever.get((lesson.lesson_id, path))
        if prior is None:
            if first_value is None and target_space == 0.0:
                return None
            start = first_value if first_value is not None else lever.neutral
            before = to_space(lever, start) if first_value is not None else 0.0
            dt = _hours(as_of, previous_as_of)
        else:
            start, before, dt = prior.value, prior.target, _hours(as_of, prior.as_of)
        # a lesson's half-life is how slowly its lever decays once the evidence is gone; while
        # evidence drives it, it approaches its target no slower than the default half-life
        halflife = lesson.decay_halflife_hours
        if before != 0.0 or target_space != 0.0:
            halflife = min(halflife, policy.capital.default_halflife_hours)
        value = step(lever, start, before, target_space, dt, halflife)
        drop = target_space == 0.0 and is_neutral(lever, value, 1e-3)
        if prior is None or abs(value - prior.value) > 1e-12 or drop:
            changes.append(
                LeverChange(
                    lesson.lesson_id,
                    lesson.pattern_key,
                    lesson.action_category,
                    lesson.scope,
                    path,
                    prior.value if prior else None,
                    None if drop else value,
                    ev.edge if ev else None,
                    ev.confidence if ev else None,
                    ev.n if ev else None,
                    "back to neutral" if drop else why,
                )
            )
        if drop:
            return None
        return LeverState(
            lesson.lesson_id,
            lesson.module,
            lesson.pattern_key,
            lesson.action_category,
            dict(lesson.scope),
            path,
            value,
            target_space,
            as_of,
        )

    def withdraw(lesson_key: str, path: str, reason: str) -> None:
        prior = by_lever[(lesson_key, path)]
        changes.append(
            LeverChange(
                lesson_key,
                prior.pattern_key,
                prior.action_category,
                prior.scope,
                path,
                prior.value,
                None,
                None,
                None,
                None,
                reason,
            )
        )

    # -- capital levers ------------------------------------------------------------------
    # first every active lesson's target, then the factor cap across near-duplicates (5.3),
    # then the moves
    capital_targets: dict[tuple[str, str], float] = {}
    factor_groups: dict[tuple[str, str], tuple[str, str, str]] = {}
    for lid, lesson in new_lessons.items():
        ev = evidence_by_id.get(lid)
        if lesson.status is not LessonStatus.ACTIVE or ev is None:
            continue
        pattern = (lesson.module, lesson.pattern_key, lesson.action_category)
        strengths[lid] = capital.evidence_strength(
            ev.edge, ev.confidence, persistence.get(pattern, 1.0), policy.capital, ev.edge_sd
        )
        for path in capital_levers(lesson.module, lesson.action_category):
            capital_targets[(lid, path)] = capital.target(REGISTRY[path], ev.edge, strengths[lid])
            if pattern in factors:
                factor_groups[(lid, path)] = (factors[pattern], canonical_json(lesson.scope), path)
    capital_targets, factor_scales = cap_exposure(capital_targets, factor_groups)

    for lid, lesson in new_lessons.items():
        paths = capital_levers(lesson.module, lesson.action_category)
        if lesson.status is LessonStatus.DISABLED:
            for path in paths:
                if (lid, path) in by_lever:
                    withdraw(lid, path, f"lesson disabled: {lesson.reason}")
            continue
        ev = evidence_by_id.get(lid)
        strengths.setdefault(lid, 0.0)
        produced: list[LeverState] = []
        for path in paths:
            active = (lid, path) in capital_targets
            scale = factor_scales.get((lid, path), 1.0)
            why = "evidence" if active else "decay"
            if scale < 1.0:
                why += f", factor cap x{scale:.2f}"
            state = advance(
                lesson,
                path,
                capital_targets.get((lid, path), 0.0),
                first_value=None,
                why=why,
                ev=ev,
            )
            if state is not None:
                produced.append(state)
        alive = any(
            not is_neutral(REGISTRY[s.lever], s.value, policy.capital.publish_epsilon)
            for s in produced
        )
        if lesson.status is LessonStatus.DECAYING and not alive:
            new_lessons[lid], event = disable_decayed(lesson, as_of)
            events.append(event)
            for state in produced:
                changes.append(
                    LeverChange(lid, lesson.pattern_key, lesson.action_category, lesson.scope, state.lever,
                                state.value, None, None, None, None, "lesson decayed out")
                )  # fmt: skip
            continue
        kept.extend(produced)

    # -- tuning levers ---------------------------------------------------------------------
    tuning_targets_by_id: dict[str, dict[str, float]] = {}
    for cf in counterfactuals:
        if (
            cf.n_counterfactuals < policy.tuning.min_counterfactuals
            or cf.scope_depth > policy.tuning.max_depth
        ):
            continue
        tuning_targets_by_id[cf.lesson_id] = tuning_targets(
            cf.signals,
            pattern_key=cf.pattern_key,
            category=cf.action_category,
            policy=policy.tuning,
            module=cf.module,
        )
    for lid, lesson in new_lessons.items():
        ev = evidence_by_id.get(lid)
        if lesson.status is LessonStatus.ACTIVE and ev is not None:
            phase = phase_scaling_target(
                lesson.pattern_key, lesson.action_category, ev.edge, lesson.module
            )
            if phase is not None:
                tuning_targets_by_id.setdefault(lid, {})[phase[0]] = phase[1]
    tuning_prior = {
        (lid, path) for (lid, path), s in by_lever.items() if REGISTRY[path].family is Family.TUNING
    }
    for lid in sorted(set(tuning_targets_by_id) | {lid for lid, _ in tuning_prior}):
        lesson = new_lessons.get(lid)
        targets = tuning_targets_by_id.get(lid, {})
        paths = set(targets) | {path for l_id, path in tuning_prior if l_id == lid}
        if lesson is None or (
            lesson.status is LessonStatus.DISABLED and lesson.disabled_by is not DisabledBy.DECAY
        ):
            for path in sorted(paths):
                if (lid, path) in by_lever:
                    withdraw(lid, path, "lesson disabled" if lesson else "cell left the lattice")
            continue
        for path in sorted(paths):
            lever = REGISTRY[path]
            if path not in targets:
                if lever.kind is LeverKind.THRESHOLD:
                    withdraw(lid, path, "counterfactual evidence lapsed")
                    continue
                tgt = 0.0
            else:
                tgt = to_space(lever, targets[path])
            first = targets.get(path) if lever.kind is LeverKind.THRESHOLD else None
            state = advance(
                lesson,
                path,
                tgt,
                first_value=first,
                why="counterfactuals" if path in targets else "decay",
                ev=evidence_by_id.get(lid),
            )
            if state is not None:
                kept.append(state)

    # -- lessons' published strength and the config ------------------------------------------
    for lid, strength in strengths.items():
        new_lessons[lid] = replace(new_lessons[lid], strength=round(strength, 2))
    kept.sort(key=lambda s: (s.pattern_key, s.action_category, canonical_json(s.scope), s.lever))
    config = build_config(
        kept,
        new_lessons,
        policy=policy,
        learning_overrides_enabled=learning_overrides_enabled,
        enabled_regimes=enabled_regimes,
    )
    return EngineResult(
        states=kept,
        lessons=new_lessons,
        events=events,
        changes=changes,
        config=config,
        q_values=q_values,
        cells_evaluated=len(evidence),
    )


def published_value(path: str, value: float) -> float | int:
    """What the PM is given: whole bars, other levers to 0.001. The lever state keeps full
    precision; publishing coarser keeps slow drifts from rewriting every entry every run
    (smaller diffs, faster hot reloads in the PM)."""
    lever = REGISTRY[path]
    if lever.kind is LeverKind.BARS:
        return round(lever.clamp(value))
    return round(lever.clamp(value), 3)


def _publishable(path: str, value: float, policy: EnginePolicy) -> bool:
    lever = REGISTRY[path]
    if not math.isfinite(value):
        return False
    if lever.kind is LeverKind.THRESHOLD:
        return True
    if lever.kind is LeverKind.BARS:
        return published_value(path, value) != lever.neutral
    epsilon = (
        policy.capital.publish_epsilon
        if lever.family is Family.CAPITAL
        else policy.tuning.publish_epsilon
    )
    return not is_neutral(lever, value, epsilon)


def build_config(
    states: list[LeverState],
    lessons: Mapping[str, Lesson],
    *,
    policy: EnginePolicy,
    learning_overrides_enabled: bool = True,
    enabled_regimes: list[str] | None = None,
) -> PmConfig:
    """The config the PM should obey for these lever states: non-neutral levers of live lessons."""
    cells: dict[tuple[str, Family], dict[str, float]] = {}
    for state in states:
        lesson = lessons.get(state.lesson_id)
        if lesson is None or lesson.status is LessonStatus.DISABLED:
            continue
        if not _publishable(state.lever, state.value, policy):
            continue
        family = REGISTRY[state.lever].family
        cells.setdefault((state.lesson_id, family), {})[state.lever] = published_value(
            state.lever, state.value
        )
    strength_entries, tuning_entries = [], []
    for (lid, family), levers in cells.items():
        lesson = lessons[lid]
        common = {
            "pattern_key": lesson.pattern_key,
            "action_category": lesson.action_category,
            "module": lesson.module,
            "scope": lesson.scope,
            "levers": nest_levers(levers),
            "lesson": LessonBlock(
                id=lid,
                strength=min(1.0, max(0.0, lesson.strength)),
                decay_halflife_hours=round(lesson.decay_halflife_hours, 1),
                enabled=True,
            ),
        }
        if family is Family.CAPITAL:
            strength_entries.append(StrengthOverride(**common))
        else:
            tuning_entries.append(TuningOverride(**common))
    order = lambda e: (e.pattern_key, e.action_category, canonical_json(e.scope))  # noqa: E731
    return PmConfig(
        learning_overrides_enabled=learning_overrides_enabled,
        learning_overrides_enabled_regimes=enabled_regimes,
        pattern_strength_overrides=sorted(strength_entries, key=order),
        pattern_overrides=sorted(tuning_entries, key=order),
    )
