"""5.2 Alpha half-life: how fast a pattern's edge decays, with an interval.

Model for a pattern's daily edge (its mean R/R minus its segment's that day), in each part
``k`` of its outcomes (each regime: an edge may live in one regime only)::

    delta_kd = a_k * exp(-lambda * t_d) + e_kd,     var(e_kd) = s2_within / n_kd + s2_day

One decay rate per pattern, one level per part.
``s2_day`` is the variance a day adds on top of sampling noise (outcomes of one day share
shocks); it is estimated from the residuals by the method of moments. For each ``lambda`` on a
log grid the best amplitudes ``a_k`` have a closed form (weighted least squares), so the fit is a
profile over ``lambda``; the interval is the profile-likelihood one, ``{lambda :
RSS(lambda) <= RSS_min * (1 + F(1, N-2; level) / (N-2))}``. Half-lives are bounded to a sane
range: an edge that does not decay measurably within it is *persistent*, one whose amplitude
is not distinguishable from zero has *no edge* to decay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LN2 = math.log(2.0)


@dataclass(frozen=True)
class HalfLifePolicy:
    min_days: int = 20  # day observations (summed over the parts) needed to fit at all
    min_amplitude_z: float = 3.0  # |a| / se(a) below this: no edge to decay
    bounds_days: tuple[float, float] = (7.0, 365.0)  # the sane range of half-lives
    level: float = 0.9  # interval coverage
    grid: int = 240


@dataclass(frozen=True)
class HalfLifeFit:
    status: str  # fitted | persistent | no_edge | insufficient
    half_life_days: float | None
    ci_low_days: float | None
    ci_high_days: float | None
    amplitude: float | None
    amplitude_z: float | None
    n_days: int

    @property
    def usable(self) -> bool:
        return self.status in ("fitted", "persistent")


def _profile(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], lam: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """RSS(lambda) summed over the parts, each part with its own amplitude a_k(lambda) (closed
    form), and each amplitude's weighted information, for every lambda of the grid."""
    rss = np.zeros(lam.size)
    amps, infos = [], []
    for t, y, w in parts:
        e = np.exp(-np.outer(lam, t))  # grid x days
        we = e * w
        info = np.einsum("gd,gd->g", we, e)
        a = (we @ y) / info
        resid = y[None, :] - a[:, None] * e
        rss += np.einsum("gd,d->g", resid * resid, w)
        amps.append(a)
        infos.append(info)
    return rss, amps, infos


def fit_half_life(
    series: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    policy: HalfLifePolicy | None = None,
) -> HalfLifeFit:
    """Fit one decay rate shared by several daily series of one pattern, each with its own level.

    ``series``: (t_days, delta, n, within_var) per part, e.g. the pattern's series in each regime
    (an edge may live in one regime only; it still decays at one pattern-wide rate).
    """
    policy = policy or HalfLifePolicy()
    parts_raw = []
    for t_days, delta, n, within_var in series:
        ok = np.isfinite(delta) & (n > 0)
        if ok.sum() >= 3:
            parts_raw.append((t_days[ok].astype(float), delta[ok], n[ok], within_var[ok]))
    total = sum(p[0].size for p in parts_raw)
    if total < policy.min_days:
        return HalfLifeFit("insufficient", None, None, None, None, None, int(total))
    variances = np.concatenate([p[3] for p in parts_raw])
    s2_within = float(np.nanmedian(variances)) if np.isfinite(variances).any() else 1.0
    # days whose outcomes all landed on the same R/R have no within-day spread; a floor keeps
    # the weights finite (the day variance below then carries the noise)
    s2_within = max(s2_within, 1e-6)
    lo_days, hi_days = policy.bounds_days
    lam = np.concatenate(
        [[0.0], np.geomspace(LN2 / (hi_days * 4), LN2 / (lo_days / 4), policy.grid)]
    )
    s2_day = 0.0
    for _ in range(3):  # iterate the day variance with the weights it implies
        parts = [(t, y, 1.0 / (s2_within / n + s2_day)) for t, y, n, _ in parts_raw]
        rss, amps, _ = _profile(parts, lam)
        best = int(np.argmin(rss))
        excess = np.concatenate(
            [
                (y - amps[k][best] * np.exp(-lam[best] * t)) ** 2 - s2_within / n
                for k, (t, y, n, _) in enumerate(parts_raw)
            ]
        )
        s2_day = max(0.0, float(np.mean(excess)))
    parts = [(t, y, 1.0 / (s2_within / n + s2_day)) for t, y, n, _ in parts_raw]
    rss, amps, infos = _profile(parts, lam)
    best = int(np.argmin(rss))
    dof = total - len(parts) - 1
    if dof < 3:
        return HalfLifeFit("insufficient", None, None, None, None, None, int(total))
    sigma2 = rss[best] / dof
    with np.errstate(invalid="ignore", divide="ignore"):  # a perfect fit: sigma2 = 0
        z = [
            float(np.float64(abs(amps[k][best])) / np.sqrt(sigma2 / infos[k][best]))
            for k in range(len(parts))
        ]
    strongest = int(np.nanargmax(z)) if not all(math.isnan(v) for v in z) else 0
    amplitude, amp_z = float(amps[strongest][best]), float(z[strongest])
    # the interval of lambda: profile likelihood
    threshold = rss[best] * (1.0 + stats.f.ppf(policy.level, 1, dof) / dof)
    inside = lam[rss <= threshold]
    if inside.size == 0:  # a degenerate profile (a perfect fit): the interval is the estimate
        inside = lam[best : best + 1]
    lam_lo, lam_hi = float(inside.min()), float(inside.max())
    no_decay_ok = rss[0] <= threshold  # lambda = 0 (no decay at all) is consistent with the data
    if not amp_z >= policy.min_amplitude_z:  # NaN (no residual, no amplitude) counts as no edge
        return HalfLifeFit("no_edge", None, None, None, amplitude, amp_z, int(total))

    def to_days(value: float) -> float:
        return hi_days if value <= LN2 / hi_days else min(hi_days, max(lo_days, LN2 / value))

    half_life = to_days(float(lam[best]))
    status = "persistent" if half_life >= hi_days or no_decay_ok else "fitted"
    return HalfLifeFit(
        status=status,
        half_life_days=hi_days if status == "persistent" else half_life,
        ci_low_days=to_days(lam_hi),
        ci_high_days=hi_days if no_decay_ok else to_days(lam_lo),
        amplitude=amplitude,
        amplitude_z=amp_z,
        n_days=int(total),
    )
