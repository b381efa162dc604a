"""The published ``pm_config``: the single source of truth for what the PM may be told.

Shape follows the lever map's storage proposal::

    {
      "learning_overrides_enabled": true,
      "learning_overrides_enabled_regimes": null,          # null = every regime
      "pattern_strength_overrides": [ {pattern_key, action_category, scope, levers, lesson} ],
      "pattern_overrides":          [ {pattern_key, action_category, scope, levers, lesson} ]
    }

Lever fields, their bounds and the categories they apply to are generated from the lever
registry (``levers.py``), so the schema and the engine cannot disagree. Any invalid entry is
rejected with a message naming it (``pattern_overrides[2] pm.x.y/entry {regime=dip}: ...``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from leverloop.domain.levers import LEVERS, Family, Lever, LeverKind, flatten_levers
from leverloop.domain.outcomes import ACTION_CATEGORIES
from leverloop.domain.scope import scope_key, scope_label

SCHEMA_VERSION = 1
ActionCategory = Literal["entry", "add", "trim", "exit"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _field(lv: Lever) -> tuple[Any, Any]:
    bounds = {
        "ge": lv.low,
        "le": lv.high,
        "description": f"{lv.description}. Categories: {', '.join(sorted(lv.categories))}",
    }
    if lv.kind is LeverKind.BARS:
        return (int | None, Field(default=None, strict=True, **bounds))
    return (float | None, Field(default=None, allow_inf_nan=False, **bounds))


def _levers_model(name: str, family: Family) -> type[BaseModel]:
    flat = [lv for lv in LEVERS if lv.family is family]
    fields: dict[str, Any] = {}
    groups: dict[str, list[Lever]] = {}
    for lv in flat:
        if "." in lv.path:
            groups.setdefault(lv.path.split(".", 1)[0], []).append(lv)
        else:
            fields[lv.path] = _field(lv)
    for group, members in groups.items():
        sub = create_model(  # type: ignore[call-overload]
            f"{name}_{group}",
            __base__=_Strict,
            **{lv.name: _field(lv) for lv in members},
        )
        fields[group] = (sub | None, None)
    return create_model(name, __base__=_Strict, **fields)  # type: ignore[call-overload]


StrengthLevers = _levers_model("StrengthLevers", Family.CAPITAL)
TuningLevers = _levers_model("TuningLevers", Family.TUNING)


class Lesson(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    strength: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    decay_halflife_hours: float = Field(gt=0.0, le=24 * 365 * 5, allow_inf_nan=False)
    enabled: bool = True


def _entry_label(data: Any) -> str:
    if isinstance(data, BaseModel):
        data = data.model_dump()
    if not isinstance(data, dict):
        return "entry"
    scope = data.get("scope")
    scope_text = scope_label(scope) if isinstance(scope, dict) else "?"
    return f"{data.get('pattern_key', '?')}/{data.get('action_category', '?')} {{{scope_text}}}"


class _Override(_Strict):
    pattern_key: str = Field(min_length=1, max_length=256, pattern=r"^\S+$")
    action_category: ActionCategory
    module: Literal["pm", "dm"] = "pm"
    scope: dict[str, str] = Field(default_factory=dict)
    lesson: Lesson

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_entry(cls, data: Any, handler: Any) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'entry'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ValueError(f"{_entry_label(data)}: {problems}") from None

    @model_validator(mode="after")
    def _levers_fit_category(self) -> _Override:
        levers = flatten_levers(self.levers.model_dump(exclude_none=True))  # type: ignore[attr-defined]
        if not levers:
            raise ValueError(f"{_entry_label(self)}: no levers set")
        from leverloop.domain.levers import REGISTRY

        for path in levers:
            lv = REGISTRY[path]
            if not lv.applies_to(self.action_category, self.module):
                raise ValueError(
                    f"{_entry_label(self)}: lever {path} does not apply to {self.module}/{self.action_category} "
                    f"(allowed: {', '.join(sorted(lv.modules))} / {', '.join(sorted(lv.categories))})"
                )
        return self

    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return (self.pattern_key, self.action_category, scope_key(self.scope))

    def flat_levers(self) -> dict[str, float]:
        return flatten_levers(self.levers.model_dump(exclude_none=True))  # type: ignore[attr-defined]


class StrengthOverride(_Override):
    levers: StrengthLevers  # type: ignore[valid-type]


class TuningOverride(_Override):
    levers: TuningLevers  # type: ignore[valid-type]


class PmConfig(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    learning_overrides_enabled: bool = True
    learning_overrides_enabled_regimes: list[str] | None = Field(
        default=None, description="Regimes in which overrides apply; null means every regime."
    )
    pattern_strength_overrides: list[StrengthOverride] = Field(default_factory=list)
    pattern_overrides: list[TuningOverride] = Field(default_factory=list)

    @field_validator("pattern_strength_overrides", "pattern_overrides")
    @classmethod
    def _unique_keys(cls, entries: list[_Override]) -> list[_Override]:
        seen: set[tuple] = set()
        for entry in entries:
            key = entry.key()
            if key in seen:
                raise ValueError(f"{_entry_label(entry)}: appears twice")
            seen.add(key)
        return entries

    def canonical_json(self) -> str:
        """Sorted, compact JSON: equal configs give equal text (and hash)."""
        return json.dumps(
            self.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":")
        )

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def overrides(self) -> list[_Override]:
        return [*self.pattern_strength_overrides, *self.pattern_overrides]


def json_schema() -> dict[str, Any]:
    return PmConfig.model_json_schema()


def parse_config(payload: Any) -> PmConfig:
    if isinstance(payload, (str, bytes)):
        return PmConfig.model_validate_json(payload)
    return PmConfig.model_validate(payload)


assert set(ACTION_CATEGORIES) == {"entry", "add", "trim", "exit"}
