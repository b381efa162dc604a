"""Daily edge series: each pattern's daily mean R/R against its segment's, per scope (root or one regime)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

PatternKey = tuple[str, str, str]  # (module, pattern_key, action_category)


@dataclass(frozen=True)
class DailySeries:
    key: PatternKey
    regime: str  # '*' for the root scope
    day: np.ndarray  # days since the first day of the panel (int)
    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray  # within-day variance of the pattern's R/R
    hold: np.ndarray  # mean hold hours
    segment_n: np.ndarray
    segment_mean: np.ndarray
    segment_var: np.ndarray
    segment_hold: np.ndarray

    @property
    def delta(self) -> np.ndarray:
        return self.mean - self.segment_mean

    def total_n(self) -> int:
        return int(self.n.sum())


def _var(sum_x: np.ndarray, sum_x2: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sum_x / n
        return np.where(
            n > 1, np.maximum(sum_x2 / n - mean * mean, 0.0) * n / np.maximum(n - 1, 1), np.nan
        )


def build_series(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[dict[tuple[PatternKey, str], DailySeries], datetime | None]:
    """Group mart rows into series keyed by ((module, pattern, category), regime); day 0 is the first day."""
    rows = list(rows)
    if not rows:
        return {}, None
    first = min(r["day"] for r in rows)
    grouped: dict[tuple[PatternKey, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        grouped.setdefault(
            ((r["module"], r["pattern_key"], r["action_category"]), r["regime"]), []
        ).append(r)
    out = {}
    for (key, regime), members in grouped.items():
        members.sort(key=lambda r: r["day"])

        def col(name: str, members=members) -> np.ndarray:
            return np.array([float(r[name]) for r in members])

        n, sn = col("n"), col("segment_n")
        out[(key, regime)] = DailySeries(
            key=key,
            regime=regime,
            day=np.array([(r["day"] - first).days for r in members]),
            n=n,
            mean=col("sum_rr") / n,
            var=_var(col("sum_rr"), col("sum_rr2"), n),
            hold=col("sum_hold_hours") / n,
            segment_n=sn,
            segment_mean=col("segment_sum_rr") / sn,
            segment_var=_var(col("segment_sum_rr"), col("segment_sum_rr2"), sn),
            segment_hold=col("segment_sum_hold_hours") / sn,
        )
    return out, first
