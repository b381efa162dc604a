"""Tuning levers from counterfactual deltas: the explicit mapping table.

Each row says which lever moves, from which signal of ``marts.counterfactual_deltas``, when
(the categories it applies to, an optional pattern filter, and how much R/R a better timing
must have been worth for the signal to count), in which direction, and toward which target.
Targets are then approached with the lesson's half-life like every other lever
(``dynamics.step``), clamped to the registry's bounds and rate-limited by its ``max_step``.
The README renders this table; ``leverloop levers`` prints it.

A cell qualifies for tuning when it has at least ``min_counterfactuals`` counterfactuals and its
scope is at most ``max_depth`` deep; a lever whose rule stops qualifying decays back to neutral
(multipliers, bars) or is withdrawn (thresholds: the PM's own default applies again).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from leverloop.domain.levers import ENTRY_SIDE, EXIT_SIDE, REGISTRY

ENTRY_GAIN = "missed_entry_rr"
EXIT_GAIN = "missed_exit_rr"


@dataclass(frozen=True)
class TuningPolicy:
    min_counterfactuals: int = 200
    max_depth: int = 1
    min_gain_rr: float = 0.05  # a better timing must have been worth this much R/R on average
    publish_epsilon: float = 0.01


@dataclass(frozen=True)
class TuningRule:
    lever: str
    signal: str
    categories: frozenset[str]
    gain: str  # which missed R/R must be material
    direction: str
    target: Callable[[Mapping[str, float]], float]
    target_text: str
    pattern_filter: str | None = None  # regex on pattern_key

    def applies(self, category: str, pattern_key: str, module: str = "pm") -> bool:
        if category not in self.categories or not REGISTRY[self.lever].applies_to(category, module):
            return False
        return (
            self.pattern_filter is None or re.search(self.pattern_filter, pattern_key) is not None
        )


def _phase_state(pattern_key: str) -> str | None:
    match = re.search(r"\.S([123])\.", pattern_key)
    return f"S{match.group(1)}" if match else None


RULES: tuple[TuningRule, ...] = (
    TuningRule(
        "entry_delay_bars", "mean_entry_delay_bars", ENTRY_SIDE, ENTRY_GAIN,
        "enter later when better entries came later",
        lambda s: s["mean_entry_delay_bars"], "round(mean best entry delay)",
    ),
    TuningRule(
        "phase1_frac_mult", "missed_entry_rr", ENTRY_SIDE, ENTRY_GAIN,
        "start smaller the more a better entry was worth",
        lambda s: 1.0 - s["missed_entry_rr"], "1 - missed entry R/R",
    ),
    TuningRule(
        "signal_thresholds.min_ts_for_add", "better_entry_ts", ENTRY_SIDE, ENTRY_GAIN,
        "require the TS seen at the better entries",
        lambda s: s["better_entry_ts"], "mean TS at the better entry",
    ),
    TuningRule(
        "signal_thresholds.min_dx_for_add", "better_entry_dx", ENTRY_SIDE, ENTRY_GAIN,
        "require the DX seen at the better entries",
        lambda s: s["better_entry_dx"], "mean DX at the better entry",
    ),
    TuningRule(
        "signal_thresholds.max_edx_for_add", "better_entry_edx", ENTRY_SIDE, ENTRY_GAIN,
        "cap adds at the EDX seen at the better entries",
        lambda s: s["better_entry_edx"], "mean EDX at the better entry",
    ),
    TuningRule(
        "signal_thresholds.min_ox_for_trim", "better_exit_ox", EXIT_SIDE, EXIT_GAIN,
        "trim at the OX seen at the better exits",
        lambda s: s["better_exit_ox"], "mean OX at the better exit",
    ),
    TuningRule(
        "trim_delay_mult", "mean_exit_delay_bars", frozenset({"trim"}), EXIT_GAIN,
        "trim later when better trims came later",
        lambda s: 1.0 + 0.1 * s["mean_exit_delay_bars"], "1 + 0.1 x mean best exit delay (bars)",
    ),
    TuningRule(
        "wait_n_bars_after_trim", "mean_exit_delay_bars", frozenset({"trim"}), EXIT_GAIN,
        "wait before re-adding after a trim as long as the better exit came later",
        lambda s: s["mean_exit_delay_bars"], "round(mean best exit delay)",
    ),
    TuningRule(
        "trail_mult", "mean_exit_delay_bars", frozenset({"exit"}), EXIT_GAIN,
        "loosen the trail when exits would have been better later",
        lambda s: 1.0 + 0.04 * s["mean_exit_delay_bars"], "1 + 0.04 x mean best exit delay (bars)",
    ),
    TuningRule(
        "panic_trigger_mult", "mean_exit_delay_bars", frozenset({"exit"}), EXIT_GAIN,
        "make emergency exits less sensitive when they fired too early",
        lambda s: 1.0 + 0.04 * s["mean_exit_delay_bars"], "1 + 0.04 x mean best exit delay (bars)",
        pattern_filter=r"panic",
    ),
)  # fmt: skip
RULES_BY_LEVER: dict[str, TuningRule] = {rule.lever: rule for rule in RULES}
assert all(rule.lever in REGISTRY for rule in RULES)
assert all(rule.categories <= REGISTRY[rule.lever].categories for rule in RULES)


def phase_scaling_target(
    pattern_key: str, category: str, edge: float, module: str = "pm"
) -> tuple[str, float] | None:
    """``phase_scaling.S{k}`` for add-side cells of a PM pattern in uptrend state S{k}: its edge,
    bounded to +-0.3, biases adds in that state (1 + edge)."""
    state = _phase_state(pattern_key)
    if state is None or module != "pm" or category not in ENTRY_SIDE or not math.isfinite(edge):
        return None
    return f"phase_scaling.{state}", 1.0 + max(-0.3, min(0.3, edge))


def tuning_targets(
    signals: Mapping[str, float | None],
    *,
    pattern_key: str,
    category: str,
    policy: TuningPolicy,
    module: str = "pm",
) -> dict[str, float]:
    """Lever -> target value for one qualifying cell (levers whose rule does not apply are absent)."""
    out: dict[str, float] = {}
    for rule in RULES:
        if not rule.applies(category, pattern_key, module):
            continue
        gain, signal = signals.get(rule.gain), signals.get(rule.signal)
        if gain is None or signal is None or not (math.isfinite(gain) and math.isfinite(signal)):
            continue
        if gain < policy.min_gain_rr:
            continue
        value = rule.target(signals)  # type: ignore[arg-type]
        if math.isfinite(value):
            out[rule.lever] = REGISTRY[rule.lever].bound(
                value
            )  # bars stay continuous until published
    return out


def describe_rules() -> list[dict[str, str]]:
    """The mapping table as rows (for the README and the CLI)."""
    rows = []
    for rule in RULES:
        lever = REGISTRY[rule.lever]
        rows.append(
            {
                "lever": rule.lever,
                "signal": rule.signal,
                "applies to": ", ".join(sorted(rule.categories))
                + (f" (pattern ~ {rule.pattern_filter})" if rule.pattern_filter else ""),
                "when": f"{rule.gain} >= min_gain_rr",
                "direction": rule.direction,
                "target": rule.target_text,
                "bounds": f"{lever.low:g}..{lever.high:g}",
                "max step/day": f"{lever.max_step:g}",
            }
        )
    rows.append(
        {
            "lever": "phase_scaling.S1|S2|S3",
            "signal": "edge_raw_regime of the cell",
            "applies to": "entry, add (patterns in state S1/S2/S3)",
            "when": "the cell's lesson is active",
            "direction": "add more in states where the pattern's adds earn",
            "target": "1 + clamp(edge, -0.3, 0.3)",
            "bounds": "0.7..1.3",
            "max step/day": "0.06",
        }
    )
    return rows
