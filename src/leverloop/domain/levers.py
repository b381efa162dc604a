"""The lever registry: every lever of the PM Learning Lever Map with its bounds.

A lever is addressed by a *path* inside an override's ``levers`` block: top-level levers by
name (``size_mult``), nested ones with a dot (``phase_scaling.S1``,
``signal_thresholds.min_ts_for_add``). The registry is the one place bounds, neutral values,
types, applicable categories and maximum per-publish steps are written down; the pm_config
schema, the engine and the runtime all read them from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

ENTRY_SIDE: frozenset[str] = frozenset({"entry", "add"})
EXIT_SIDE: frozenset[str] = frozenset({"trim", "exit"})
ALL_CATEGORIES: frozenset[str] = ENTRY_SIDE | EXIT_SIDE


class LeverKind(StrEnum):
    MULTIPLIER = "multiplier"  # scales a PM quantity; neutral 1.0
    BARS = "bars"  # integer count of bars; neutral 0
    THRESHOLD = "threshold"  # absolute signal threshold in [0, 1]; neutral = no override


class Family(StrEnum):
    CAPITAL = "capital"  # pattern_strength_overrides[].levers
    TUNING = "tuning"  # pattern_overrides[].levers


@dataclass(frozen=True)
class Lever:
    path: str
    family: Family
    kind: LeverKind
    low: float
    high: float
    neutral: float | None
    categories: frozenset[str]
    max_step: float
    modules: frozenset[str] = frozenset({"pm"})
    description: str = ""

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    def applies_to(self, category: str, module: str = "pm") -> bool:
        return category in self.categories and module in self.modules

    def bound(self, value: float) -> float:
        """Clamp into bounds, continuously; NaN and infinities fall back to neutral (or the low bound)."""
        if value is None or not math.isfinite(value):
            return self.neutral if self.neutral is not None else self.low
        return min(self.high, max(self.low, float(value)))

    def clamp(self, value: float) -> float:
        """A value the PM may be given: within bounds, and whole for bar counts."""
        bounded = self.bound(value)
        return float(round(bounded)) if self.kind is LeverKind.BARS else bounded

    def in_bounds(self, value: float) -> bool:
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return False
        return self.kind is not LeverKind.BARS or float(value).is_integer()


def _m(path, family, low, high, cats, step, desc, modules=frozenset({"pm"})) -> Lever:
    return Lever(path, family, LeverKind.MULTIPLIER, low, high, 1.0, cats, step, modules, desc)


def _b(path, high, cats, step, desc) -> Lever:
    return Lever(
        path, Family.TUNING, LeverKind.BARS, 0, high, 0, cats, step, frozenset({"pm"}), desc
    )


def _t(path, cats, desc) -> Lever:
    return Lever(
        path, Family.TUNING, LeverKind.THRESHOLD, 0.0, 1.0, None, cats, 0.1, frozenset({"pm"}), desc
    )


C, T = Family.CAPITAL, Family.TUNING
LEVERS: tuple[Lever, ...] = (
    # capital allocation (pattern strength)
    _m("size_mult", C, 0.5, 1.5, ALL_CATEGORIES, 0.10, "Scales the final position size fraction"),
    _m(
        "entry_aggression_mult",
        C,
        0.7,
        1.3,
        ENTRY_SIDE,
        0.06,
        "Biases add appetite / mode selection",
    ),
    _m("exit_aggression_mult", C, 0.7, 1.3, EXIT_SIDE, 0.06, "Biases exit assertiveness / trims"),
    _m(
        "alloc_multiplier",
        C,
        0.7,
        1.3,
        ENTRY_SIDE,
        0.06,
        "DM allocation, applied at the end of the DM coefficient pipeline",
        frozenset({"dm"}),
    ),
    # execution tuning
    _b("entry_delay_bars", 12, ENTRY_SIDE, 1, "Wait N bars before first/next add"),
    _m("phase1_frac_mult", T, 0.5, 1.5, ENTRY_SIDE, 0.10, "Scales the first allocation fraction"),
    _m("phase_scaling.S1", T, 0.7, 1.3, ENTRY_SIDE, 0.06, "Bias adds in uptrend state S1"),
    _m("phase_scaling.S2", T, 0.7, 1.3, ENTRY_SIDE, 0.06, "Bias adds in uptrend state S2"),
    _m("phase_scaling.S3", T, 0.7, 1.3, ENTRY_SIDE, 0.06, "Bias adds in uptrend state S3"),
    _t("signal_thresholds.min_ts_for_add", ENTRY_SIDE, "Minimum TS before adding"),
    _t("signal_thresholds.min_dx_for_add", ENTRY_SIDE, "Minimum DX before adding"),
    _t("signal_thresholds.max_edx_for_add", ENTRY_SIDE, "Cap adds when EDX signals exhaustion"),
    _t("signal_thresholds.min_ox_for_trim", EXIT_SIDE, "Minimum OX before trimming"),
    # Trade-management levers apply to every category: on an entry/add override they shape how
    # the position that pattern opened is managed later (the lever map's own example does this).
    _m("trim_delay_mult", T, 0.5, 2.0, ALL_CATEGORIES, 0.15, "Shift trim timing windows"),
    _m("trail_mult", T, 0.7, 1.3, ALL_CATEGORIES, 0.06, "Tighten/loosen the trailing stop"),
    _m("panic_trigger_mult", T, 0.7, 1.3, ALL_CATEGORIES, 0.06, "Emergency-exit sensitivity"),
    _b("wait_n_bars_after_trim", 24, ALL_CATEGORIES, 2, "Trim -> rebuy delay"),
)
REGISTRY: dict[str, Lever] = {lever.path: lever for lever in LEVERS}
CAPITAL_LEVERS: tuple[str, ...] = tuple(lv.path for lv in LEVERS if lv.family is Family.CAPITAL)
TUNING_LEVERS: tuple[str, ...] = tuple(lv.path for lv in LEVERS if lv.family is Family.TUNING)


def lever(path: str) -> Lever:
    try:
        return REGISTRY[path]
    except KeyError:
        raise KeyError(f"unknown lever {path!r}") from None


def flatten_levers(block: dict) -> dict[str, float]:
    """``{"phase_scaling": {"S1": 0.9}, "trail_mult": 1.1}`` -> ``{"phase_scaling.S1": 0.9, "trail_mult": 1.1}``."""
    flat: dict[str, float] = {}
    for key, value in block.items():
        if value is None:
            continue
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                if sub_value is not None:
                    flat[f"{key}.{sub}"] = sub_value
        else:
            flat[key] = value
    return flat


def nest_levers(flat: dict[str, float]) -> dict:
    """Inverse of ``flatten_levers``."""
    block: dict = {}
    for path, value in sorted(flat.items()):
        if "." in path:
            head, tail = path.split(".", 1)
            block.setdefault(head, {})[tail] = value
        else:
            block[path] = value
    return block
