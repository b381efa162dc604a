"""5.3 Orthogonalization: overlapping patterns grouped into latent factors.

Each (module, pattern, category) has a daily edge series. Series of unrelated patterns still
co-move through known structure (which regime a day was in, slow decays), so each series is
first residualised on the day's regime shares and a linear trend; what is left is the day-to-day
variation a pattern shares only with patterns that act on the same trades.

Groups come from average-linkage hierarchical clustering on ``1 - corr`` of those residuals,
cut where the average correlation inside a group falls below ``min_corr``: symmetric in the
patterns (no first-come-first-served), so the grouping does not depend on the order the
patterns arrive in. Each group is a latent factor: its first principal component, with each
member's loading (correlation with it). Factor ids are derived from the members, so a group
keeps its id from run to run as long as its membership does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from leverloop.learning.series import DailySeries, PatternKey


@dataclass(frozen=True)
class FactorPolicy:
    min_corr: float = 0.5
    min_overlap_days: int = 20


@dataclass(frozen=True)
class FactorMember:
    key: PatternKey
    factor_id: str
    loading: float
    factor_size: int


def residualise(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Least-squares residuals of ``values`` (NaN = missing day) on ``design`` (days x columns)."""
    ok = np.isfinite(values)
    out = np.full(values.shape, np.nan)
    if ok.sum() > design.shape[1] + 2:
        beta, *_ = np.linalg.lstsq(design[ok], values[ok], rcond=None)
        out[ok] = values[ok] - design[ok] @ beta
    return out


def pairwise_corr(matrix: np.ndarray, min_overlap: int) -> np.ndarray:
    """Correlation of every pair of columns over their common days (0 where too few)."""
    k = matrix.shape[1]
    corr = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            ok = np.isfinite(matrix[:, i]) & np.isfinite(matrix[:, j])
            if ok.sum() < min_overlap:
                continue
            a, b = matrix[ok, i], matrix[ok, j]
            if a.std() == 0 or b.std() == 0:
                continue
            corr[i, j] = corr[j, i] = float(np.corrcoef(a, b)[0, 1])
    return corr


def factor_id(members: list[PatternKey]) -> str:
    text = "\x1e".join("\x1f".join(m) for m in sorted(members))
    return f"fx_{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def group_factors(
    keys: list[PatternKey], residuals: np.ndarray, policy: FactorPolicy | None = None
) -> tuple[list[FactorMember], np.ndarray]:
    """Latent factors of the residual series (days x patterns). Returns members and the correlations."""
    policy = policy or FactorPolicy()
    if not keys:
        return [], np.eye(0)
    corr = pairwise_corr(residuals, policy.min_overlap_days)
    if len(keys) == 1:
        labels = np.array([1])
    else:
        distance = np.clip(1.0 - corr, 0.0, 2.0)
        np.fill_diagonal(distance, 0.0)
        tree = linkage(squareform(distance, checks=False), method="average")
        labels = fcluster(tree, t=1.0 - policy.min_corr, criterion="distance")
    members: list[FactorMember] = []
    for label in sorted(set(labels)):
        idx = [i for i in range(len(keys)) if labels[i] == label]
        group = [keys[i] for i in idx]
        fid = factor_id(group)
        loadings = _loadings(residuals[:, idx]) if len(idx) > 1 else np.ones(1)
        members.extend(
            FactorMember(keys[i], fid, float(loadings[n]), len(idx)) for n, i in enumerate(idx)
        )
    return members, corr


def _loadings(block: np.ndarray) -> np.ndarray:
    """Correlation of each member with the group's first principal component (days they share)."""
    ok = np.isfinite(block).all(axis=1)
    x = block[ok]
    if x.shape[0] < 3:
        return np.ones(block.shape[1])
    z = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    pc = z @ vt[0]
    loads = np.array([np.corrcoef(z[:, j], pc)[0, 1] for j in range(z.shape[1])])
    return loads if loads.sum() >= 0 else -loads


def participation(loadings: list[float]) -> float:
    """Effective number of distinct patterns in a factor: (sum l)^2 / sum l^2 (1 for one pattern)."""
    total = sum(abs(v) for v in loadings)
    squares = sum(v * v for v in loadings)
    return total * total / squares if squares > 0 else 1.0


def daily_residuals(series: dict[tuple, DailySeries]) -> tuple[list[PatternKey], np.ndarray]:
    """Days x patterns matrix of root-scope daily edges residualised on each pattern's own
    regime mix that day (the share of its outcomes in each regime) and a linear trend."""
    roots = {key: s for (key, regime), s in series.items() if regime == "*"}
    if not roots:
        return [], np.empty((0, 0))
    keys = sorted(roots)
    days = int(max(s.day.max() for s in roots.values())) + 1
    regimes = sorted({regime for (_, regime) in series if regime != "*"})
    out = np.full((days, len(keys)), np.nan)
    trend = np.arange(days) / max(days - 1, 1)
    for j, key in enumerate(keys):
        root = roots[key]
        values = np.full(days, np.nan)
        values[root.day] = root.delta
        shares = np.zeros((days, len(regimes)))
        for k, regime in enumerate(regimes):
            part = series.get((key, regime))
            if part is not None:
                shares[part.day, k] = part.n
        totals = np.zeros(days)
        totals[root.day] = root.n
        if shares.sum() > 0:
            design = np.column_stack([shares / np.maximum(totals, 1)[:, None], trend])
        else:  # no regime dimension (DM): level and trend
            design = np.column_stack([np.ones(days), trend])
        out[:, j] = residualise(values, design)
    return keys, out
