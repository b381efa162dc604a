"""A ``PmConfig`` compiled, once per version, into the lookup structure the hot path reads.

Matching rule: an override applies to a decision when its ``(pattern_key, action_category)``
equal the decision's and its scope is a subset of the decision's context (every dimension the
override names has the same value in the context). Among the matching overrides of a section
(``pattern_strength_overrides`` or ``pattern_overrides``) the most specific one wins, i.e. the
one whose scope names the most dimensions; between equally specific ones the higher lesson
strength wins, then the smaller scope (its sorted ``(dimension, value)`` pairs compared
lexicographically), then the smaller lesson id: a total, deterministic order.

So a lookup is no scan. Per ``(pattern_key, action_category)`` a ``Cell`` keeps the dimension
combinations its overrides use, most specific first, each with a dict from the tuple of scope
values to the override; resolving a context probes those dicts and stops after the first
level (number of dimensions) that matched. The answer depends only on the context's values of
the dimensions the cell uses, so each cell also memoises it per tuple of those values: a
decision is then one tuple and one dict lookup.

Compiled overrides are immutable and do not depend on the rest of the config, so the watcher
reuses them from one version to the next for entries that did not change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from leverloop.domain.levers import REGISTRY, Family, LeverKind
from leverloop.domain.pm_config import PmConfig

STRENGTH, TUNING = "strength", "tuning"
SECTIONS = {"pattern_strength_overrides": STRENGTH, "pattern_overrides": TUNING}
MEMO_LIMIT = 1024  # distinct context value tuples remembered per cell (bounds memory)

# capital lever -> the action field it scales
SCALED_FIELDS: dict[str, str] = {
    "size_mult": "size_fraction",
    "entry_aggression_mult": "entry_aggression",
    "exit_aggression_mult": "exit_aggression",
}


@dataclass(frozen=True, slots=True, eq=False)
class CompiledOverride:
    """One enabled override of a config version, with its levers clamped by the registry."""

    section: str  # strength | tuning
    module: str
    pattern_key: str
    action_category: str
    scope: tuple[tuple[str, str], ...]
    lesson_id: str
    strength: float
    levers: tuple[tuple[str, float], ...]  # flat lever paths, clamped
    order: tuple  # tie-break between equally specific matches: lower wins
    scales: tuple[tuple[str, float], ...]  # (action field, multiplier) for capital levers
    tuning_values: tuple[tuple[str, Any], ...]  # top-level tuning levers
    tuning_groups: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]  # phase_scaling, ...
    alloc_multiplier: float | None

    def as_json(self) -> dict[str, Any]:
        """The entry an outcome row's ``applied_overrides`` (and telemetry) carries."""
        return {
            "lesson_id": self.lesson_id,
            "section": self.section,
            "module": self.module,
            "pattern_key": self.pattern_key,
            "action_category": self.action_category,
            "scope": dict(self.scope),
            "levers": dict(self.levers),
        }


# A probe: (number of dimensions, the dimension names, value tuple -> override).
# Zero dimensions: the table maps () to the override; one dimension: it maps the bare value.
Probe = tuple[int, tuple[str, ...], dict[Any, CompiledOverride]]
# What a cell resolves a context to: (strength winner, tuning winner, both as a tuple)
Resolved = tuple["CompiledOverride | None", "CompiledOverride | None", tuple]


def _best(probes: tuple[Probe, ...], get: Any) -> CompiledOverride | None:
    best: CompiledOverride | None = None
    best_size = -1
    for size, dims, table in probes:
        if size < best_size:
            break  # a more specific level already matched
        if size == 0:
            hit = table[()]
        elif size == 1:
            hit = table.get(get(dims[0]))
        else:
            hit = table.get(tuple(map(get, dims)))
        if hit is not None and (best is None or hit.order < best.order):
            best, best_size = hit, size
    return best


@dataclass(frozen=True, slots=True)
class Cell:
    """The overrides of one (pattern_key, action_category), ready to resolve contexts."""

    strength: tuple[Probe, ...]
    tuning: tuple[Probe, ...]
    dims: tuple[str, ...]  # every dimension any probe reads
    memo: dict[tuple, Resolved] = field(default_factory=dict)

    def resolve(self, get: Any) -> Resolved:
        """The winning override of each section for a context whose ``.get`` is ``get``."""
        key = tuple(map(get, self.dims))
        found = self.memo.get(key)
        if found is None:
            strength = _best(self.strength, get)
            tuning = _best(self.tuning, get)
            found = (strength, tuning, tuple(ov for ov in (strength, tuning) if ov is not None))
            if len(self.memo) < MEMO_LIMIT:
                self.memo[key] = found
        return found


@dataclass(frozen=True)
class OverrideIndex:
    version: int | None
    content_hash: str | None
    enabled: bool
    regimes: frozenset[str] | None
    pm: dict[tuple[str, str], Cell] = field(default_factory=dict)
    dm: dict[tuple[str, str], Cell] = field(default_factory=dict)  # alloc_multiplier only
    overrides: int = 0


EMPTY_INDEX = OverrideIndex(version=None, content_hash=None, enabled=False, regimes=None)


def _flat_levers(levers: Any) -> Iterable[tuple[str, Any]]:
    """(path, value) of a validated levers model (its fields are its ``__dict__``)."""
    for name, value in levers.__dict__.items():
        if value is None:
            continue
        if isinstance(value, (int, float)):
            yield name, value
        else:  # a group such as phase_scaling (a model of its own)
            for sub, sub_value in value.__dict__.items():
                if sub_value is not None:
                    yield f"{name}.{sub}", sub_value


def compile_entry(section: str, entry: Any) -> CompiledOverride | None:
    """Compile one validated override entry; None when its lesson is disabled or no lever applies.

    Every lever is clamped again by the registry (``Lever.clamp``) and dropped if it does not
    apply to the entry's module and category, whatever the config says.
    """
    if not entry.lesson.enabled:
        return None
    category, module = entry.action_category, entry.module
    levers = []
    for path, value in sorted(_flat_levers(entry.levers)):
        lever = REGISTRY.get(path)
        if lever is None or not lever.applies_to(category, module):
            continue
        clamped = lever.clamp(value)
        levers.append((path, int(clamped) if lever.kind is LeverKind.BARS else clamped))
    if not levers:
        return None
    values, groups = [], {}
    for path, value in levers:
        if REGISTRY[path].family is Family.TUNING:
            head, _, tail = path.partition(".")
            if tail:
                groups[head] = (*groups.get(head, ()), (tail, value))
            else:
                values.append((path, value))
    scope = tuple(sorted(entry.scope.items()))
    return CompiledOverride(
        section=section,
        module=module,
        pattern_key=entry.pattern_key,
        action_category=category,
        scope=scope,
        lesson_id=entry.lesson.id,
        strength=entry.lesson.strength,
        levers=tuple(levers),
        order=(-entry.lesson.strength, scope, entry.lesson.id),
        scales=tuple((SCALED_FIELDS[p], v) for p, v in levers if p in SCALED_FIELDS),
        tuning_values=tuple(values),
        tuning_groups=tuple(groups.items()),
        alloc_multiplier=dict(levers).get("alloc_multiplier"),
    )


def _probes(overrides: list[CompiledOverride]) -> tuple[Probe, ...]:
    tables: dict[tuple[str, ...], dict[Any, CompiledOverride]] = {}
    for ov in overrides:
        dims = tuple(k for k, _ in ov.scope)
        values = tuple(v for _, v in ov.scope)
        key: Any = values[0] if len(dims) == 1 else values
        table = tables.setdefault(dims, {})
        held = table.get(key)
        if held is None or ov.order < held.order:
            table[key] = ov
    ordered = sorted(tables.items(), key=lambda item: (-len(item[0]), item[0]))
    return tuple((len(dims), dims, table) for dims, table in ordered)


def _cell(strength: list[CompiledOverride], tuning: list[CompiledOverride]) -> Cell:
    dims = sorted({k for ov in (*strength, *tuning) for k, _ in ov.scope})
    return Cell(_probes(strength), _probes(tuning), tuple(dims))


def build_index(
    overrides: Iterable[CompiledOverride],
    *,
    version: int | None,
    content_hash: str | None,
    enabled: bool,
    regimes: Iterable[str] | None,
) -> OverrideIndex:
    groups: dict[tuple[str, str, str], tuple[list, list]] = {}
    count = 0
    for ov in overrides:
        count += 1
        if ov.module == "dm" and ov.alloc_multiplier is None:
            continue
        members = groups.setdefault((ov.module, ov.pattern_key, ov.action_category), ([], []))
        members[0 if ov.section == STRENGTH else 1].append(ov)
    pm: dict[tuple[str, str], Cell] = {}
    dm: dict[tuple[str, str], Cell] = {}
    for (module, pattern_key, category), (strength, tuning) in groups.items():
        (dm if module == "dm" else pm)[(pattern_key, category)] = _cell(strength, tuning)
    return OverrideIndex(
        version=version,
        content_hash=content_hash,
        enabled=enabled,
        regimes=None if regimes is None else frozenset(regimes),
        pm=pm,
        dm=dm,
        overrides=count,
    )


def compile_config(
    config: PmConfig, version: int | None, content_hash: str | None = None
) -> OverrideIndex:
    """Compile a validated config. Disabled lessons and levers that do not apply are left out."""
    compiled = (
        compile_entry(section, entry)
        for attr, section in SECTIONS.items()
        for entry in getattr(config, attr)
    )
    return build_index(
        (ov for ov in compiled if ov is not None),
        version=version,
        content_hash=content_hash,
        enabled=config.learning_overrides_enabled,
        regimes=config.learning_overrides_enabled_regimes,
    )
