"""A synthetic Position Manager / Decision Maker history with a known ground truth.

Everything here is pure numpy: ``simulate(config)`` returns arrays of outcomes plus the truth
behind them, deterministic by seed. The writer (``writer.py``) lands them in the raw tables.

How an outcome's R/R is made::

    rr = segment_base[module, category, regime]      # what any action earns in this situation
       + market_shock[day]                           # shared by everything on that day
       + true_edge(pattern, category, scope, t)      # the planted edge (the thing to learn)
       + style_shock[style_group(pattern), day]      # shared by near-duplicate patterns only
       + noise_sd(pattern) * t5                      # fat-tailed idiosyncratic noise

``true_edge = base_edge * focus_mask(scope) * 2 ** (-(t - start) / half_life)``:

* about 45% of (pattern, category) pairs have ``base_edge == 0`` (no edge at all);
* some edges live in one scope value only (``focus_dim = focus_value``), zero elsewhere;
* half of the non-zero edges decay with a known half-life, the rest persist;
* near-duplicate patterns copy their parent's edge and share its daily style shock, so their
  return series move together while unrelated patterns' do not;
* counterfactuals carry a known best entry/exit delay and signal optimum per pattern.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

REGIMES: tuple[str, ...] = ("trend_up", "chop", "dip", "recover")
PM_DIMENSIONS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    # dimension: (values, probabilities); "regime" is driven by the market clock instead
    "bucket": (("micro", "small", "mid", "large"), (0.35, 0.30, 0.20, 0.15)),
    "A_mode": (("normal", "aggressive", "patient"), (0.60, 0.20, 0.20)),
    "chain": (("sol", "eth", "base", "bsc"), (0.40, 0.25, 0.20, 0.15)),
}
DM_DIMENSIONS: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "curator": (("c01", "c02", "c03", "c04", "c05", "c06"), (0.25, 0.2, 0.2, 0.15, 0.1, 0.1)),
    "chain": (("sol", "eth", "base", "bsc"), (0.40, 0.25, 0.20, 0.15)),
    "mcap_bucket": (("nano", "micro", "small", "mid"), (0.30, 0.30, 0.25, 0.15)),
    "intent": (("momentum", "value", "narrative"), (0.45, 0.25, 0.30)),
}
PM_LATTICE_DIMENSIONS: tuple[str, ...] = ("regime", "bucket", "A_mode", "chain")
DM_LATTICE_DIMENSIONS: tuple[str, ...] = ("curator", "chain", "mcap_bucket", "intent")

# (pattern_key, categories, duplicate_of)
PATTERNS: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("pm.uptrend.S1.buy_flag", ("entry",), None),
    ("pm.uptrend.S1.buy_flag_confirm", ("entry",), "pm.uptrend.S1.buy_flag"),
    ("pm.uptrend.S2.reclaim_ema", ("entry", "add"), None),
    ("pm.uptrend.S2.buy_dip", ("entry", "add"), None),
    ("pm.uptrend.S3.breakout", ("entry", "add"), None),
    ("pm.uptrend.S3.breakout_retest", ("entry", "add"), "pm.uptrend.S3.breakout"),
    ("pm.reversal.S0.capitulation_wick", ("entry",), None),
    ("pm.reversal.S1.higher_low", ("entry",), None),
    ("pm.range.S1.support_bounce", ("entry",), None),
    ("pm.range.S1.mean_revert", ("entry", "exit"), None),
    ("pm.range.S2.range_break", ("entry",), None),
    ("pm.momentum.S2.volume_thrust", ("entry", "add"), None),
    ("pm.momentum.S3.parabolic", ("add", "trim"), None),
    ("pm.downtrend.S0.short_squeeze", ("entry",), None),
    ("pm.add.S1.first_scale", ("add",), None),
    ("pm.add.S2.ts_rising", ("add",), None),
    ("pm.add.S2.dx_pullback", ("add",), None),
    ("pm.add.S3.momentum_cont", ("add",), None),
    ("pm.add.S3.flag_continuation", ("add",), None),
    ("pm.trim.S1.partial_profit", ("trim",), None),
    ("pm.trim.S2.ox_spike", ("trim",), None),
    ("pm.trim.S2.target_hit", ("trim",), None),
    ("pm.trim.S3.extension", ("trim",), None),
    ("pm.trim.S3.extension_wick", ("trim",), "pm.trim.S3.extension"),
    ("pm.trim.S3.edx_fade", ("trim", "exit"), None),
    ("pm.exit.S0.structure_break", ("exit",), None),
    ("pm.exit.S1.panic_drop", ("exit",), None),
    ("pm.exit.S2.ema_loss", ("exit",), None),
    ("pm.exit.S2.time_stop", ("exit",), None),
    ("pm.exit.S3.trail_hit", ("exit", "trim"), None),
    ("pm.exit.S3.trail_hit_tight", ("exit", "trim"), "pm.exit.S3.trail_hit"),
    ("pm.exit.S3.edx_exhaustion", ("exit",), None),
    ("dm.curator.alpha_call", ("entry",), None),
    ("dm.curator.alpha_call_echo", ("entry",), "dm.curator.alpha_call"),
    ("dm.curator.early_call", ("entry",), None),
    ("dm.chain.new_listing", ("entry",), None),
    ("dm.intent.narrative_rotation", ("entry",), None),
    ("dm.mcap.micro_rotation", ("entry",), None),
)

# Mean R/R any action earns, by module, category and regime (the segment baselines).
SEGMENT_BASE: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "pm": {
        "entry": (0.20, -0.05, -0.20, 0.10),
        "add": (0.25, -0.10, -0.25, 0.05),
        "trim": (0.10, 0.05, 0.00, 0.05),
        "exit": (0.00, 0.05, 0.10, 0.00),
    },
    "dm": {
        "entry": (0.15, 0.00, -0.15, 0.05),
        "add": (0, 0, 0, 0),
        "trim": (0, 0, 0, 0),
        "exit": (0, 0, 0, 0),
    },
}
CATEGORIES: tuple[str, ...] = ("entry", "add", "trim", "exit")

# v5.1 ground truth: in these regimes a pattern's edge persists from one week to the next only
# if it is good on this factor (quick holds / low dispersion); a slow or noisy pattern's edge
# reverses every week there. In the other regimes every edge persists, so no factor matters
# more there than it does globally.
REGIME_FACTOR_PLANTS: dict[str, str] = {"dip": "time_efficiency", "chop": "variance"}
BAR_MINUTES = 5


@dataclass(frozen=True)
class SimConfig:
    seed: int = 7
    outcomes: int = 90_000
    days: int = 84
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    dm_share: float = 0.12
    zero_edge_share: float = 0.5
    regime_mean_hours: float = 72.0
    # sd of the daily shock a pattern's outcomes share (near-duplicates share theirs): the
    # reason one day of a pattern's outcomes is weaker evidence than as many independent ones
    style_shock_sd: float = 0.12
    # a near-duplicate pattern fires on this share of its parent's trades, with this much
    # extra noise on the R/R of each (so their return series are strongly correlated)
    duplicate_copy_rate: float = 0.75
    duplicate_noise_sd: float = 0.3
    # plant REGIME_FACTOR_PLANTS (the v5.1 ground truth). Off by default: a weekly-reversing
    # edge averages to about zero over a window, which blurs the edge ground truth the other
    # checks of the default simulation compare with
    plant_regime_factors: bool = False

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class Arm:
    """One (pattern, action_category) with its planted truth."""

    pattern_key: str
    category: str
    module: str
    base_edge: float
    focus_dim: str | None
    focus_value: str | None
    half_life_hours: float | None
    duplicate_group: str | None
    style_group: int
    weight: float
    noise_sd: float
    hold_mean_hours: float
    best_entry_delay_bars: int
    best_exit_delay_bars: int
    signal_optimum: dict[str, float]

    @property
    def is_duplicate(self) -> bool:
        return self.duplicate_group is not None and self.duplicate_group != self.pattern_key

    def params(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "noise_sd": self.noise_sd,
            "hold_mean_hours": self.hold_mean_hours,
            "style_group": self.style_group,
            "signal_optimum": self.signal_optimum,
        }


@dataclass
class Simulation:
    config: SimConfig
    arms: list[Arm]
    regime_starts: np.ndarray  # hours from start where a regime begins
    regime_labels: list[str]
    # per-outcome arrays, sorted by closed_at
    arm_index: np.ndarray
    closed_hours: np.ndarray
    hold_hours: np.ndarray
    scope_values: dict[str, np.ndarray]  # dimension -> array of value strings ("" when absent)
    rr: np.ndarray
    true_edge: np.ndarray
    expected_rr: np.ndarray
    return_pct: np.ndarray
    max_drawdown_pct: np.ndarray
    size_fraction: np.ndarray
    counterfactuals: dict[str, np.ndarray] = field(default_factory=dict)
    position_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))

    @property
    def n(self) -> int:
        return int(self.arm_index.size)

    def outcome_ids(self) -> np.ndarray:
        seed = self.config.seed
        return np.array([f"sim{seed}-{i:09d}" for i in range(self.n)], dtype=object)

    def position_ids(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Position of each outcome: an entry, its adds, trims and exit share one; a
        near-duplicate's outcome belongs to the same position as the trade it copies."""
        seed = self.config.seed
        index = self.position_index if rows is None else self.position_index[rows]
        return np.array([f"sim{seed}-pos{i:08d}" for i in index], dtype=object)

    def closed_at(self, index: int) -> datetime:
        return self.config.start + timedelta(hours=float(self.closed_hours[index]))

    def regime_at(self, hours: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.regime_starts, hours, side="right") - 1
        return np.asarray(self.regime_labels, dtype=object)[
            np.clip(idx, 0, len(self.regime_labels) - 1)
        ]

    def module_of(self) -> np.ndarray:
        return np.array([a.module for a in self.arms], dtype=object)[self.arm_index]

    def scope_dicts(self) -> list[dict[str, str]]:
        dims = list(self.scope_values)
        cols = [self.scope_values[d] for d in dims]
        return [
            {d: str(c[i]) for d, c in zip(dims, cols, strict=True) if c[i]} for i in range(self.n)
        ]


def _regime_path(
    rng: np.random.Generator, hours: float, mean_hours: float
) -> tuple[np.ndarray, list[str]]:
    starts, labels = [0.0], [str(rng.choice(REGIMES))]
    t = 0.0
    while True:
        t += float(rng.exponential(mean_hours)) + 6.0
        if t >= hours:
            break
        nxt = [r for r in REGIMES if r != labels[-1]]
        starts.append(t)
        labels.append(str(rng.choice(nxt)))
    return np.asarray(starts), labels


def _build_arms(rng: np.random.Generator, config: SimConfig) -> list[Arm]:
    arms: list[Arm] = []
    by_key: dict[tuple[str, str], Arm] = {}
    style_of: dict[str, int] = {}
    # a duplicate group is only interesting (double counting!) when its edge is real
    duplicate_parents = {dup for _, _, dup in PATTERNS if dup}
    for pattern_key, categories, duplicate_of in PATTERNS:
        module = pattern_key.split(".", 1)[0]
        style_of[pattern_key] = style_of[duplicate_of] if duplicate_of else len(style_of)
        weight = float(rng.gamma(2.0, 1.0)) + 0.3
        for category in categories:
            best_entry = int(rng.integers(0, 7))
            best_exit = int(rng.integers(0, 7))
            optimum = {
                s: round(float(rng.uniform(0.25, 0.85)), 3) for s in ("ts", "ox", "dx", "edx")
            }
            if duplicate_of:
                parent = by_key[(duplicate_of, category)]
                arm = Arm(
                    pattern_key=pattern_key,
                    category=category,
                    module=module,
                    base_edge=parent.base_edge,
                    focus_dim=parent.focus_dim,
                    focus_value=parent.focus_value,
                    half_life_hours=parent.half_life_hours,
                    duplicate_group=duplicate_of,
                    style_group=style_of[pattern_key],
                    weight=parent.weight * float(rng.uniform(0.6, 0.9)),
                    noise_sd=parent.noise_sd,
                    hold_mean_hours=parent.hold_mean_hours * float(rng.uniform(0.9, 1.1)),
                    best_entry_delay_bars=parent.best_entry_delay_bars,
                    best_exit_delay_bars=parent.best_exit_delay_bars,
                    signal_optimum=parent.signal_optimum,
                )
                arms.append(arm)
                # mark the parent as a member of its own group
                parent_index = arms.index(parent)
                arms[parent_index] = by_key[(duplicate_of, category)] = _with_group(
                    parent, duplicate_of
                )
                continue
            if rng.random() < config.zero_edge_share and pattern_key not in duplicate_parents:
                base_edge = 0.0
            else:
                base_edge = float(rng.choice((-1.0, 1.0)) * rng.uniform(0.15, 0.5))
            focus_dim = focus_value = None
            if base_edge != 0.0 and rng.random() < 0.35:
                dims = dict(PM_DIMENSIONS if module == "pm" else DM_DIMENSIONS)
                if module == "pm":
                    dims["regime"] = (REGIMES, (0.25,) * 4)
                focus_dim = str(rng.choice(sorted(dims)))
                values, _ = dims[focus_dim]
                focus_value = str(rng.choice(values[:3]))  # the commoner values, so it is learnable
                base_edge *= 1.5  # an edge that lives in a slice is sharper there
            half_life = None
            if base_edge != 0.0 and rng.random() < 0.5:
                half_life = float(rng.uniform(10, 40) * 24)
            hold_mean = float(
                rng.uniform(4, 48) if category in ("entry", "add") else rng.uniform(1, 12)
            )
            arm = Arm(
                pattern_key=pattern_key,
                category=category,
                module=module,
                base_edge=round(base_edge, 4),
                focus_dim=focus_dim,
                focus_value=focus_value,
                half_life_hours=None if half_life is None else round(half_life, 1),
                duplicate_group=None,
                style_group=style_of[pattern_key],
                weight=weight / len(categories),
                noise_sd=float(rng.uniform(0.5, 1.5)),
                hold_mean_hours=hold_mean,
                best_entry_delay_bars=best_entry,
                best_exit_delay_bars=best_exit,
                signal_optimum=optimum,
            )
            arms.append(arm)
            by_key[(pattern_key, category)] = arm
    return _balance(_orthogonal_traits(rng, _alternate_signs(rng, arms)), config.days)


def _orthogonal_traits(rng: np.random.Generator, arms: list[Arm]) -> list[Arm]:
    """Give the persistent-edge patterns hold times and dispersions from a balanced 2 x 2 design
    (quick/slow x steady/noisy), so the regime plants on time efficiency and on variance are
    not confounded with each other across the few patterns they act on."""
    from dataclasses import replace

    out = list(arms)
    for side, quick, slow in (
        (("entry", "add"), (4.0, 12.0), (30.0, 48.0)),
        (("trim", "exit"), (1.0, 3.0), (8.0, 12.0)),
    ):
        members = [
            i
            for i, a in enumerate(out)
            if a.category in side
            and a.base_edge != 0
            and a.half_life_hours is None
            and not a.is_duplicate
        ]
        design = [(h, v) for h in (0, 1) for v in (0, 1)] * (len(members) // 4 + 1)
        rng.shuffle(design)
        for i, (h, v) in zip(members, design, strict=False):
            hold = float(rng.uniform(*(slow if h else quick)))
            noise = float(rng.uniform(1.2, 1.5) if v else rng.uniform(0.5, 0.8))
            out[i] = replace(out[i], hold_mean_hours=hold, noise_sd=noise)
    for i, arm in enumerate(out):  # duplicates follow their parent
        if arm.is_duplicate:
            parent = next(
                a
                for a in out
                if a.pattern_key == arm.duplicate_group and a.category == arm.category
            )
            out[i] = replace(
                arm, hold_mean_hours=parent.hold_mean_hours * 1.05, noise_sd=parent.noise_sd
            )
    return out


def _alternate_signs(rng: np.random.Generator, arms: list[Arm]) -> list[Arm]:
    """Give each (module, category) both winners and losers: signs alternate in random order."""
    from dataclasses import replace

    out = list(arms)
    sign_of: dict[tuple[str, str], float] = {}
    for module in ("pm", "dm"):
        for category in CATEGORIES:
            idx = [
                i
                for i, a in enumerate(out)
                if a.module == module
                and a.category == category
                and a.base_edge != 0
                and a.duplicate_group in (None, a.pattern_key)  # duplicates follow their parent
            ]
            signs = np.resize(np.array([1.0, -1.0]) * rng.choice((1.0, -1.0)), len(idx))
            rng.shuffle(signs)
            for i, sign in zip(idx, signs, strict=True):
                sign_of[(out[i].pattern_key, category)] = float(sign)
    for i, arm in enumerate(out):
        key = (arm.duplicate_group or arm.pattern_key, arm.category)
        if arm.base_edge != 0 and key in sign_of:
            out[i] = replace(arm, base_edge=abs(arm.base_edge) * sign_of[key])
    return out


def _with_group(arm: Arm, group: str) -> Arm:
    from dataclasses import replace

    return replace(arm, duplicate_group=group)


def _mean_presence(arm: Arm, days: int) -> float:
    """Average of focus share x decay factor over the simulated span (the arm's effective edge scale)."""
    focus_share = 1.0
    if arm.focus_dim == "regime":
        focus_share = 1.0 / len(REGIMES)
    elif arm.focus_dim is not None:
        dims = PM_DIMENSIONS if arm.module == "pm" else DM_DIMENSIONS
        values, probs = dims[arm.focus_dim]
        focus_share = probs[values.index(arm.focus_value)]
    span = days * 24.0
    if arm.half_life_hours:
        h = arm.half_life_hours
        decay = h / (span * np.log(2.0)) * (1.0 - 2.0 ** (-span / h))
    else:
        decay = 1.0
    return float(focus_share * decay)


def _balance(arms: list[Arm], days: int) -> list[Arm]:
    """Scale positive or negative edges per (module, category) so their weighted mean is ~0.

    The segment baseline is the mean over all patterns; balancing keeps a zero-edge pattern's
    edge against its baseline near zero, as it is in a real book of many patterns. Duplicates
    share their parent's edge and are scaled with it.
    """
    from dataclasses import replace

    out = list(arms)
    for module in ("pm", "dm"):
        for category in CATEGORIES:
            idx = [i for i, a in enumerate(out) if a.module == module and a.category == category]
            mass = {i: out[i].weight * _mean_presence(out[i], days) * out[i].base_edge for i in idx}
            pos = sum(m for m in mass.values() if m > 0)
            neg = -sum(m for m in mass.values() if m < 0)
            if pos <= 0 or neg <= 0:
                continue
            shrink_positive = pos > neg
            ratio = max((neg / pos) if shrink_positive else (pos / neg), 0.35)
            for i in idx:
                edge = out[i].base_edge
                if (edge > 0 and shrink_positive) or (edge < 0 and not shrink_positive):
                    out[i] = replace(out[i], base_edge=round(edge * ratio, 4))
    return out


def _regime_factor_plants(arms: list[Arm]) -> dict[int, frozenset[str]]:
    """Which arms' edges do not persist in which regimes (see REGIME_FACTOR_PLANTS)."""
    transient: dict[int, set[str]] = {}
    for regime, factor in REGIME_FACTOR_PLANTS.items():
        attribute = {"time_efficiency": "hold_mean_hours", "variance": "noise_sd"}[factor]
        for side in (("entry", "add"), ("trim", "exit")):
            # persistent edges only: a decaying edge keeps its clean decay curve (the v5.2 truth)
            members = [
                i
                for i, a in enumerate(arms)
                if a.category in side
                and a.base_edge != 0
                and not a.is_duplicate
                and a.half_life_hours is None
            ]
            if not members:
                continue
            median = float(np.median([getattr(arms[i], attribute) for i in members]))
            for i in members:
                if getattr(arms[i], attribute) > median:  # slow or noisy: transient in this regime
                    transient.setdefault(i, set()).add(regime)
    for i, arm in enumerate(arms):  # a duplicate behaves like its parent
        if arm.is_duplicate:
            parent = next(
                j
                for j, a in enumerate(arms)
                if a.pattern_key == arm.duplicate_group and a.category == arm.category
            )
            if parent in transient:
                transient[i] = transient[parent]
    return {i: frozenset(r) for i, r in transient.items()}


def simulate(config: SimConfig) -> Simulation:
    rng = np.random.default_rng(config.seed)
    arms = _build_arms(rng, config)
    total_hours = config.days * 24.0
    regime_starts, regime_labels = _regime_path(rng, total_hours, config.regime_mean_hours)
    parent_of = {
        i: next(
            j
            for j, p in enumerate(arms)
            if p.pattern_key == a.duplicate_group and p.category == a.category
        )
        for i, a in enumerate(arms)
        if a.is_duplicate
    }

    # 1. the outcomes of original patterns; near-duplicates fire on (most of) the same trades
    weights = np.array([0.0 if a.is_duplicate else a.weight for a in arms])
    copy_share = sum(weights[parent] for parent in parent_of.values()) * config.duplicate_copy_rate
    base_n = max(1, round(config.outcomes / (1.0 + copy_share / weights.sum())))
    is_dm = rng.random(base_n) < config.dm_share
    pm_arms = np.array([i for i, a in enumerate(arms) if a.module == "pm"])
    dm_arms = np.array([i for i, a in enumerate(arms) if a.module == "dm"])
    arm_index = np.where(
        is_dm,
        rng.choice(dm_arms, size=base_n, p=weights[dm_arms] / weights[dm_arms].sum()),
        rng.choice(pm_arms, size=base_n, p=weights[pm_arms] / weights[pm_arms].sum()),
    )
    closed_hours = np.sort(rng.uniform(0.0, total_hours, size=base_n))
    hold_mean = np.array([a.hold_mean_hours for a in arms])[arm_index]
    hold_hours = np.clip(hold_mean * rng.lognormal(-0.18, 0.6, size=base_n), 0.05, None)
    hold_hours = np.minimum(hold_hours, closed_hours + 24.0 * 14)
    position = np.arange(base_n) // 3
    source = np.arange(base_n)  # which base outcome a row copies (itself for originals)
    copies = [np.empty(0, dtype=int)]
    copy_arm = [np.empty(0, dtype=int)]
    for dup, parent in parent_of.items():
        rows = np.flatnonzero(arm_index == parent)
        chosen = rows[rng.random(rows.size) < config.duplicate_copy_rate]
        copies.append(chosen)
        copy_arm.append(np.full(chosen.size, dup))
    copied, copied_arm = np.concatenate(copies), np.concatenate(copy_arm)
    arm_index = np.concatenate([arm_index, copied_arm])
    closed_hours = np.concatenate(
        [
            closed_hours,
            np.minimum(closed_hours[copied] + rng.uniform(0, 0.25, copied.size), total_hours),
        ]
    )
    hold_hours = np.concatenate(
        [hold_hours, hold_hours[copied] * rng.uniform(0.9, 1.1, copied.size)]
    )
    position = np.concatenate([position, position[copied]])
    source = np.concatenate([source, copied])
    # exactly the requested number of outcomes, in time order
    keep = (
        np.sort(rng.permutation(arm_index.size)[: config.outcomes])
        if arm_index.size > config.outcomes
        else np.arange(arm_index.size)
    )
    order = keep[np.argsort(closed_hours[keep], kind="stable")]
    arm_index, closed_hours, hold_hours = arm_index[order], closed_hours[order], hold_hours[order]
    position, source = position[order], source[order]
    n = arm_index.size
    is_dm = np.array([arms[i].module == "dm" for i in arm_index])

    sim = Simulation(
        config=config,
        arms=arms,
        regime_starts=regime_starts,
        regime_labels=regime_labels,
        arm_index=arm_index,
        closed_hours=closed_hours,
        hold_hours=hold_hours,
        scope_values={},
        rr=np.empty(0),
        true_edge=np.empty(0),
        expected_rr=np.empty(0),
        return_pct=np.empty(0),
        max_drawdown_pct=np.empty(0),
        size_fraction=np.empty(0),
        position_index=position,
    )
    opened_hours = closed_hours - hold_hours
    regime = sim.regime_at(np.maximum(opened_hours, 0.0))

    # 2. situations: a copy is the same trade, so it shares its source's scope
    scope: dict[str, np.ndarray] = {}
    base_scope: dict[str, np.ndarray] = {}
    for dims in (PM_DIMENSIONS, DM_DIMENSIONS):
        for dim, (values, probs) in dims.items():
            if dim not in base_scope:
                base_scope[dim] = rng.choice(
                    np.asarray(values, dtype=object), size=base_n, p=np.asarray(probs)
                )
    scope["regime"] = np.where(is_dm, "", regime).astype(object)
    for dims, mask in ((PM_DIMENSIONS, ~is_dm), (DM_DIMENSIONS, is_dm)):
        for dim in dims:
            current = scope.get(dim, np.full(n, "", dtype=object))
            scope[dim] = np.where(mask, base_scope[dim][source], current).astype(object)
    sim.scope_values = scope

    # 3. the planted edge per outcome
    base_edge = np.array([a.base_edge for a in arms])[arm_index]
    focus_mask = np.ones(n)
    for i, arm in enumerate(arms):
        if arm.focus_dim is None:
            continue
        rows = arm_index == i
        focus_mask[rows] = (scope[arm.focus_dim][rows] == arm.focus_value).astype(float)
    half_life = np.array([a.half_life_hours or np.inf for a in arms])[arm_index]
    decay = np.power(2.0, -closed_hours / half_life)
    # in planted regimes, a slow or noisy pattern's edge does not persist: it reverses every week
    # (from a random starting sign), so this week's edge predicts the opposite next week
    week = (closed_hours // 168).astype(int)
    start_sign = rng.choice((-1.0, 1.0), size=len(arms))
    for i, parent in parent_of.items():
        start_sign[i] = start_sign[parent]
    persistence = np.ones(n)
    plants = _regime_factor_plants(arms) if config.plant_regime_factors else {}
    for i, regimes in plants.items():
        rows = (arm_index == i) & np.isin(regime, list(regimes))
        persistence[rows] = start_sign[i] * np.where(week[rows] % 2 == 0, 1.0, -1.0)
    true_edge = base_edge * focus_mask * decay * persistence

    module = np.array([a.module for a in arms], dtype=object)[arm_index]
    category = np.array([a.category for a in arms], dtype=object)[arm_index]
    regime_idx = {r: k for k, r in enumerate(REGIMES)}
    seg_base = np.zeros(n)
    pm_regime = np.array([regime_idx.get(r, 0) for r in regime])
    for mod in ("pm", "dm"):
        for cat in CATEGORIES:
            rows = (module == mod) & (category == cat)
            if rows.any():
                seg_base[rows] = np.asarray(SEGMENT_BASE[mod][cat])[pm_regime[rows]]

    day = np.minimum((closed_hours // 24).astype(int), config.days - 1)
    market_shock = rng.normal(0.0, 0.08, size=config.days)
    n_styles = max(a.style_group for a in arms) + 1
    style_shock = rng.normal(0.0, config.style_shock_sd, size=(n_styles, config.days))
    style = np.array([a.style_group for a in arms])[arm_index]
    noise_sd = np.array([a.noise_sd for a in arms])[arm_index]
    t5 = rng.standard_t(5, size=base_n) / np.sqrt(5.0 / 3.0)  # unit variance, fat tails
    own = rng.normal(
        0.0, config.duplicate_noise_sd, size=n
    )  # a duplicate's outcome differs a little
    noise = noise_sd * t5[source] + np.where(
        np.array([arms[i].is_duplicate for i in arm_index]), own, 0.0
    )

    expected = seg_base + true_edge
    rr = np.clip(expected + market_shock[day] + style_shock[style, day] + noise, -5.0, 20.0)
    risk_pct = rng.uniform(2.0, 8.0, size=n)

    sim.rr = np.round(rr, 6)
    sim.true_edge = true_edge
    sim.expected_rr = expected
    sim.return_pct = np.round(rr * risk_pct, 6)
    sim.max_drawdown_pct = np.round(np.abs(rng.normal(0.6, 0.3, size=n)) * risk_pct, 6)
    sim.size_fraction = np.round(rng.uniform(0.02, 0.2, size=n), 6)
    sim.counterfactuals = _counterfactuals(rng, arms, arm_index, category)
    return sim


def _counterfactuals(
    rng: np.random.Generator, arms: list[Arm], arm_index: np.ndarray, category: np.ndarray
) -> dict[str, np.ndarray]:
    n = arm_index.size
    entry_side = np.isin(category, ("entry", "add"))
    true_entry = np.array([a.best_entry_delay_bars for a in arms])[arm_index]
    true_exit = np.array([a.best_exit_delay_bars for a in arms])[arm_index]
    jitter_entry = rng.integers(-1, 2, size=n) * (rng.random(n) < 0.4)
    jitter_exit = rng.integers(-1, 2, size=n) * (rng.random(n) < 0.4)
    entry_delay = np.clip(true_entry + jitter_entry, 0, None)
    exit_delay = np.clip(true_exit + jitter_exit, 0, None)
    gain_entry = np.where(entry_side, 0.06 * true_entry, 0.01) + np.abs(rng.normal(0, 0.05, n))
    gain_exit = np.where(~entry_side, 0.06 * true_exit, 0.01) + np.abs(rng.normal(0, 0.05, n))
    out: dict[str, np.ndarray] = {
        "could_enter_better_rr": np.round(gain_entry, 6),
        "best_entry_delay_bars": entry_delay.astype(np.int64),
        "could_exit_better_rr": np.round(gain_exit, 6),
        "best_exit_delay_bars": exit_delay.astype(np.int64),
    }
    for signal in ("ts", "ox", "dx", "edx"):
        optimum = np.array([a.signal_optimum[signal] for a in arms])[arm_index]
        for side in ("entry", "exit"):
            out[f"better_{side}_{signal}"] = np.round(
                np.clip(optimum + rng.normal(0, 0.06, n), 0, 1), 6
            )
    return out
