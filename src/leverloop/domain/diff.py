"""What changed between two configs, lever by lever (for artifacts, the CLI and the version row)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from leverloop.domain.pm_config import PmConfig
from leverloop.domain.scope import canonical_json

_FLAGS = ("learning_overrides_enabled", "learning_overrides_enabled_regimes")


@dataclass(frozen=True)
class LeverDiff:
    section: str  # pattern_strength_overrides | pattern_overrides
    pattern_key: str
    action_category: str
    scope: dict[str, str]
    lever: str
    before: float | None  # None: the override did not set this lever (neutral)
    after: float | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "changed"


@dataclass(frozen=True)
class ConfigDiff:
    levers: list[LeverDiff]
    flags: dict[str, tuple[Any, Any]]

    @property
    def empty(self) -> bool:
        return not self.levers and not self.flags

    def counts(self) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "changed": 0}
        for item in self.levers:
            out[item.kind] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "flags": {k: {"before": b, "after": a} for k, (b, a) in self.flags.items()},
            "levers": [{**asdict(d), "kind": d.kind} for d in self.levers],
        }


def _flat(config: PmConfig | None) -> dict[tuple[str, str, str, str, str], float]:
    out: dict[tuple[str, str, str, str, str], float] = {}
    if config is None:
        return out
    for section in ("pattern_strength_overrides", "pattern_overrides"):
        for entry in getattr(config, section):
            for lever, value in entry.flat_levers().items():
                out[
                    (
                        section,
                        entry.pattern_key,
                        entry.action_category,
                        canonical_json(entry.scope),
                        lever,
                    )
                ] = value
    return out


def diff_configs(before: PmConfig | None, after: PmConfig) -> ConfigDiff:
    import json

    old, new = _flat(before), _flat(after)
    levers = []
    for key in sorted(set(old) | set(new)):
        b, a = old.get(key), new.get(key)
        if b != a:
            section, pattern_key, category, scope_text, lever = key
            levers.append(
                LeverDiff(section, pattern_key, category, json.loads(scope_text), lever, b, a)
            )
    flags = {
        name: (getattr(before, name) if before else None, getattr(after, name)) for name in _FLAGS
    }
    flags = {k: v for k, v in flags.items() if before is None or v[0] != v[1]}
    return ConfigDiff(levers=levers, flags=flags)
