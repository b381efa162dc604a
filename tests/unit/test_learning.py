"""v5 meta-learning estimators against synthetic data with a known answer (pure numpy, no I/O).

* ``build_series``: grouping, day offsets, means and sample variances of the mart rows;
* ``fit_half_life`` (5.2): decay rate of ``a * exp(-ln2 t / h) + noise``, shared across parts;
* ``pairwise_corr`` / ``group_factors`` / ``daily_residuals`` (5.3): planted latent groups;
* ``week_pairs`` / ``fit_regime_weights`` (5.1): ``delta_next = delta_now * exp(b + w.z)``.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leverloop.learning.factors import (
    FactorPolicy,
    daily_residuals,
    factor_id,
    group_factors,
    pairwise_corr,
    participation,
)
from leverloop.learning.halflife import HalfLifePolicy, fit_half_life
from leverloop.learning.regime_weights import (
    FACTORS,
    RegimeWeightPolicy,
    WeekPair,
    fit_regime_weights,
    week_pairs,
)
from leverloop.learning.series import DailySeries, build_series

LN2 = math.log(2.0)
FEW = settings(max_examples=25, deadline=None)
SOME = settings(max_examples=40, deadline=None)


# --------------------------------------------------------------------------------------------
# series.build_series
# --------------------------------------------------------------------------------------------


def _row(module, pattern, category, regime, day, rr, seg_rr, hold, seg_hold):
    rr, seg_rr = np.asarray(rr, float), np.asarray(seg_rr, float)
    return {
        "module": module,
        "pattern_key": pattern,
        "action_category": category,
        "regime": regime,
        "day": day,
        "n": rr.size,
        "sum_rr": float(rr.sum()),
        "sum_rr2": float((rr * rr).sum()),
        "sum_hold_hours": float(hold * rr.size),
        "segment_n": seg_rr.size,
        "segment_sum_rr": float(seg_rr.sum()),
        "segment_sum_rr2": float((seg_rr * seg_rr).sum()),
        "segment_sum_hold_hours": float(seg_hold * seg_rr.size),
    }


def _mart(seed: int = 0):
    """Rows of two patterns x two scopes on scattered days, with the raw outcomes behind them."""
    rng = np.random.default_rng(seed)
    first = date(2024, 3, 1)
    raw = {}
    rows = []
    plan = {
        (("mod", "p1", "entry"), "*"): [0, 1, 3, 10],
        (("mod", "p1", "entry"), "bull"): [1, 10],
        (("dm", "p2", "exit"), "*"): [2, 3, 4],
    }
    for (key, regime), offsets in plan.items():
        for off in offsets:
            n = 1 if (key[1], off) == ("p2", 3) else int(rng.integers(2, 9))
            rr = rng.normal(0.3, 1.2, n)
            seg = rng.normal(0.0, 1.0, int(rng.integers(n, 40)))
            hold, seg_hold = float(rng.uniform(1, 50)), float(rng.uniform(1, 50))
            raw[(key, regime, off)] = (rr, seg, hold, seg_hold)
            rows.append(_row(*key, regime, first + timedelta(days=off), rr, seg, hold, seg_hold))
    return rows, raw, plan, first


def test_build_series_of_nothing_is_empty():
    assert build_series([]) == ({}, None)
    assert build_series(iter([])) == ({}, None)


def test_build_series_groups_offsets_and_moments():
    rows, raw, plan, first = _mart()
    random.Random(7).shuffle(rows)
    series, day0 = build_series(rows)
    assert day0 == first
    assert set(series) == set(plan)
    for (key, regime), offsets in plan.items():
        s = series[(key, regime)]
        assert s.key == key and s.regime == regime
        np.testing.assert_array_equal(s.day, offsets)  # sorted, offsets from the panel's first day
        for i, off in enumerate(offsets):
            rr, seg, hold, seg_hold = raw[(key, regime, off)]
            assert s.n[i] == rr.size and s.segment_n[i] == seg.size
            assert s.mean[i] == pytest.approx(rr.mean(), abs=1e-12)
            assert s.segment_mean[i] == pytest.approx(seg.mean(), abs=1e-12)
            assert s.delta[i] == pytest.approx(rr.mean() - seg.mean(), abs=1e-12)
            assert s.hold[i] == pytest.approx(hold) and s.segment_hold[i] == pytest.approx(seg_hold)
            if rr.size > 1:  # sample variance (ddof=1), not the population one
                assert s.var[i] == pytest.approx(rr.var(ddof=1), rel=1e-9)
            else:
                assert math.isnan(s.var[i])
            assert s.segment_var[i] == pytest.approx(seg.var(ddof=1), rel=1e-9)
        assert s.total_n() == sum(raw[(key, regime, off)][0].size for off in offsets)


def test_build_series_day_zero_is_the_first_day_over_all_series():
    """A series starting later keeps its offset from the panel's first day, not from its own."""
    rows, _, _, _ = _mart()
    late = [r for r in rows if r["pattern_key"] == "p2"]
    series, day0 = build_series(late)
    assert day0 == date(2024, 3, 3)
    np.testing.assert_array_equal(series[(("dm", "p2", "exit"), "*")].day, [0, 1, 2])
    series, _ = build_series(rows)
    np.testing.assert_array_equal(series[(("dm", "p2", "exit"), "*")].day, [2, 3, 4])


@FEW
@given(st.randoms(use_true_random=False))
def test_build_series_does_not_depend_on_row_order(rnd):
    rows, _, _, _ = _mart(3)
    reference, _ = build_series(rows)
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    series, _ = build_series(shuffled)
    assert set(series) == set(reference)
    for k, s in series.items():
        for field in ("day", "n", "mean", "var", "hold", "segment_n", "segment_mean"):
            np.testing.assert_array_equal(getattr(s, field), getattr(reference[k], field))


# --------------------------------------------------------------------------------------------
# halflife.fit_half_life
# --------------------------------------------------------------------------------------------


def _decay(rng, *, days=60, n=40, sd=1.0, a=0.4, h=15.0, day_sd=0.0, start=0):
    """One part: daily mean edge ``a * 2^(-t/h)`` seen through ``n`` outcomes of sd ``sd``."""
    t = np.arange(start, start + days, dtype=float)
    counts = np.full(days, float(n))
    level = a * np.exp(-LN2 * t / h) if math.isfinite(h) else np.full(days, a)
    delta = level + rng.normal(0.0, sd / math.sqrt(n), days) + rng.normal(0.0, day_sd, days)
    return t, delta, counts, np.full(days, sd * sd)


def test_half_life_recovers_a_known_decay():
    """60 days, 40 outcomes a day of sd 1, amplitude 0.4, half-life 15 days."""
    truth = 15.0
    fits = [fit_half_life([_decay(np.random.default_rng(seed), h=truth)]) for seed in range(16)]
    assert all(f.status == "fitted" for f in fits)
    estimates = np.array([f.half_life_days for f in fits])
    # sampling error alone puts ~20% of single fits outside +-30% (as for a plain nonlinear
    # least-squares fit knowing the model): judge the ensemble
    assert np.sum(np.abs(estimates / truth - 1.0) <= 0.30) >= 11
    assert abs(np.median(estimates) / truth - 1.0) <= 0.15
    covered = [f.ci_low_days <= truth <= f.ci_high_days for f in fits]
    assert sum(covered) >= 12  # a 90% interval
    for f in fits:
        assert f.ci_low_days <= f.half_life_days <= f.ci_high_days
        assert f.amplitude == pytest.approx(0.4, rel=0.4)
        assert f.amplitude_z >= HalfLifePolicy().min_amplitude_z
        assert f.n_days == 60 and f.usable


@pytest.mark.parametrize("truth", [10.0, 15.0, 40.0])
def test_half_life_is_within_30_percent_with_precise_data(truth):
    for seed in range(4):
        fit = fit_half_life([_decay(np.random.default_rng(seed), n=400, days=90, h=truth)])
        assert fit.status == "fitted"
        assert fit.half_life_days == pytest.approx(truth, rel=0.30)
        assert fit.ci_low_days <= fit.half_life_days <= fit.ci_high_days


def test_half_life_with_day_shocks_still_recovers_the_decay():
    """Outcomes of one day share a shock (s2_day > 0): the estimate and interval stay honest."""
    fits = [
        fit_half_life([_decay(np.random.default_rng(seed), a=0.6, day_sd=0.1)])
        for seed in range(12)
    ]
    assert all(f.status == "fitted" for f in fits)
    assert abs(np.median([f.half_life_days for f in fits]) / 15.0 - 1.0) <= 0.2
    assert sum(f.ci_low_days <= 15.0 <= f.ci_high_days for f in fits) >= 8


def test_a_constant_edge_is_persistent():
    policy = HalfLifePolicy()
    for seed in range(8):
        fit = fit_half_life([_decay(np.random.default_rng(seed), a=0.3, h=math.inf)], policy)
        assert fit.status == "persistent", (seed, fit)
        assert fit.half_life_days == policy.bounds_days[1]
        assert fit.ci_high_days == policy.bounds_days[1]
        assert fit.ci_low_days >= 60.0  # fast decays are excluded
        assert fit.amplitude == pytest.approx(0.3, rel=0.3)
        assert fit.usable


def test_pure_noise_has_no_edge():
    for seed in range(10):
        fit = fit_half_life([_decay(np.random.default_rng(seed), a=0.0)])
        assert fit.status == "no_edge", (seed, fit)
        assert fit.half_life_days is None and fit.ci_low_days is None and fit.ci_high_days is None
        assert fit.amplitude_z < HalfLifePolicy().min_amplitude_z
        assert not fit.usable


def test_exactly_zero_edge_has_no_edge():
    """A pattern whose outcomes are its segment's every day: delta == 0, no edge to decay."""
    t = np.arange(40, dtype=float)
    fit = fit_half_life([(t, np.zeros(40), np.full(40, 30.0), np.ones(40))])
    assert fit.status == "no_edge", fit
    assert not fit.usable


def test_zero_within_day_variance_does_not_crash():
    """Days whose outcomes are all identical (e.g. every trade stopped at -1R) have variance 0."""
    rng = np.random.default_rng(0)
    t, delta, n, _ = _decay(rng, days=40, n=30, a=0.5, h=20.0)
    fit = fit_half_life([(t, delta, n, np.zeros(40))])
    assert fit.status in ("fitted", "persistent", "no_edge")


def test_too_few_days_is_insufficient():
    policy = HalfLifePolicy(min_days=20)
    fit = fit_half_life([_decay(np.random.default_rng(0), days=19, a=2.0)], policy)
    assert fit.status == "insufficient" and fit.n_days == 19 and not fit.usable
    assert fit.half_life_days is None and fit.amplitude is None
    # days without outcomes (n == 0) or without a delta do not count
    t, delta, n, var = _decay(np.random.default_rng(0), days=30, a=2.0)
    delta[:6] = np.nan
    n[6:11] = 0
    fit = fit_half_life([(t, delta, n, var)], policy)
    assert fit.status == "insufficient" and fit.n_days == 19
    # a part with fewer than 3 usable days is dropped altogether
    short = _decay(np.random.default_rng(1), days=2, a=2.0)
    fit = fit_half_life([_decay(np.random.default_rng(0), days=19, a=2.0), short], policy)
    assert fit.status == "insufficient" and fit.n_days == 19
    assert fit_half_life([], policy).status == "insufficient"


def test_two_parts_share_one_decay_rate_with_their_own_amplitudes():
    """Opposite amplitudes (+0.5 in one regime, -0.5 in the other) would cancel under a shared
    amplitude; with one amplitude per part the shared half-life of 20 days comes back."""
    truth = 20.0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        up = _decay(rng, n=80, a=0.5, h=truth)
        down = _decay(rng, n=80, a=-0.5, h=truth)
        fit = fit_half_life([up, down])
        assert fit.status == "fitted", (seed, fit)
        assert fit.half_life_days == pytest.approx(truth, rel=0.30)
        assert fit.ci_low_days <= truth <= fit.ci_high_days
        assert abs(fit.amplitude) == pytest.approx(0.5, rel=0.3)
        assert fit.n_days == 120


def test_an_edge_living_in_one_regime_only_is_found():
    truth = 20.0
    for seed in range(4):
        rng = np.random.default_rng(seed)
        fit = fit_half_life([_decay(rng, n=80, a=0.0), _decay(rng, n=80, a=-0.6, h=truth)])
        assert fit.status == "fitted"
        assert fit.half_life_days == pytest.approx(truth, rel=0.30)
        assert fit.amplitude == pytest.approx(-0.6, rel=0.3)  # the strongest part's level


@FEW
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.05, 20.0) | st.floats(-20.0, -0.05),
    shift=st.integers(0, 200),
)
def test_half_life_is_invariant_to_units_and_time_origin(seed, scale, shift):
    """Scaling the edge (and its variance) or moving day 0 changes amplitudes, not the rate."""
    t, delta, n, var = _decay(np.random.default_rng(seed), a=0.5, h=20.0)
    base = fit_half_life([(t, delta, n, var)])
    scaled = fit_half_life([(t, scale * delta, n, scale * scale * var)])
    shifted = fit_half_life([(t + shift, delta, n, var)])
    for other in (scaled, shifted):
        assert other.status == base.status
        assert other.half_life_days == pytest.approx(base.half_life_days, rel=1e-6)
        assert other.ci_low_days == pytest.approx(base.ci_low_days, rel=1e-6)
        assert other.ci_high_days == pytest.approx(base.ci_high_days, rel=1e-6)
    assert scaled.amplitude == pytest.approx(scale * base.amplitude, rel=1e-6)
    assert shifted.amplitude == pytest.approx(
        base.amplitude * 2.0 ** (shift / base.half_life_days), rel=0.5
    )


@SOME
@given(
    seed=st.integers(0, 2**32 - 1),
    amplitude=st.floats(-2.0, 2.0),
    half_life=st.floats(0.5, 3000.0),
    days=st.integers(20, 120),
    parts=st.integers(1, 3),
    lo=st.floats(2.0, 30.0),
    span=st.floats(1.5, 50.0),
)
def test_half_life_and_interval_stay_inside_the_bounds(
    seed, amplitude, half_life, days, parts, lo, span
):
    policy = HalfLifePolicy(bounds_days=(lo, lo * span), grid=80)
    rng = np.random.default_rng(seed)
    series = []
    for _ in range(parts):
        t, delta, _, _ = _decay(rng, days=days, a=amplitude * rng.uniform(-1, 1), h=half_life)
        n = rng.integers(1, 60, days).astype(float)
        var = np.where(n > 1, rng.uniform(0.2, 3.0, days), np.nan)
        series.append((t, delta, n, var))
    fit = fit_half_life(series, policy)
    assert fit.status in ("fitted", "persistent", "no_edge")
    if fit.status == "no_edge":
        assert fit.half_life_days is None
        return
    low, high = policy.bounds_days
    assert low <= fit.ci_low_days <= fit.half_life_days <= fit.ci_high_days <= high
    if fit.status == "persistent":
        assert fit.half_life_days == high and fit.ci_high_days == high


def test_half_life_does_not_depend_on_the_order_of_days_or_parts():
    rng = np.random.default_rng(11)
    a, b = _decay(rng, a=0.5, h=25.0), _decay(rng, a=-0.3, h=25.0)
    base = fit_half_life([a, b])
    perm = np.random.default_rng(0).permutation(60)
    shuffled = tuple(x[perm] for x in a)
    other = fit_half_life([b, shuffled])
    assert other.status == base.status
    assert other.half_life_days == pytest.approx(base.half_life_days)
    assert (other.ci_low_days, other.ci_high_days) == pytest.approx(
        (base.ci_low_days, base.ci_high_days)
    )
    assert other.amplitude == pytest.approx(base.amplitude)


# --------------------------------------------------------------------------------------------
# factors: pairwise_corr, group_factors, factor_id, participation, daily_residuals
# --------------------------------------------------------------------------------------------


def test_pairwise_corr_known_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    sparse = rng.normal(size=50)
    sparse[10:] = np.nan  # only 10 days in common with anything
    m = np.column_stack([x, 2 * x + 3, -x, np.full(50, 1.5), sparse])
    corr = pairwise_corr(m, min_overlap=20)
    np.testing.assert_allclose(corr, corr.T)
    np.testing.assert_allclose(np.diag(corr), 1.0)
    assert corr[0, 1] == pytest.approx(1.0)
    assert corr[0, 2] == pytest.approx(-1.0)
    assert corr[1, 2] == pytest.approx(-1.0)
    assert (corr[3, :3] == 0).all()  # a constant column has no correlation
    assert (corr[4, :4] == 0).all()  # too few common days
    # with a lower bar the 10 common days count, over those days only
    assert pairwise_corr(m, min_overlap=5)[0, 4] == pytest.approx(
        np.corrcoef(x[:10], sparse[:10])[0, 1]
    )
    # missing days elsewhere: the correlation is over the days both have
    y = 0.5 * x + rng.normal(size=50)
    gaps = y.copy()
    gaps[::3] = np.nan
    ok = np.isfinite(gaps)
    c = pairwise_corr(np.column_stack([x, gaps]), min_overlap=20)[0, 1]
    assert c == pytest.approx(np.corrcoef(x[ok], y[ok])[0, 1])


GROUP_SIZES = (2, 3, 3)
N_INDEPENDENT = 4


def _planted(seed: int, days: int = 150, noise: float = 0.5):
    """Days x patterns: 3 groups sharing a latent daily component (corr ~0.8) + independents."""
    rng = np.random.default_rng(seed)
    cols, keys, truth = [], [], {}
    for g, size in enumerate(GROUP_SIZES):
        latent = rng.normal(size=days)
        for m in range(size):
            key = (f"mod{m % 2}", f"g{g}_p{m}", "entry" if m % 2 else "exit")
            cols.append(latent * rng.uniform(0.5, 2.0) + noise * rng.normal(size=days))
            keys.append(key)
            truth[key] = g
    for i in range(N_INDEPENDENT):
        keys.append(("mod0", f"solo{i}", "add"))
        cols.append(rng.normal(size=days) * rng.uniform(0.5, 2.0))
    matrix = np.column_stack(cols)
    matrix[rng.random(matrix.shape) < 0.05] = np.nan  # scattered missing days
    return keys, matrix, truth


def _groups(members):
    out: dict[str, set] = {}
    for m in members:
        out.setdefault(m.factor_id, set()).add(m.key)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_factors_recovers_planted_groups(seed):
    keys, matrix, truth = _planted(seed)
    members, corr = group_factors(keys, matrix)
    assert corr.shape == (len(keys), len(keys))
    assert sorted(m.key for m in members) == sorted(keys)
    expected = [{k for k, g in truth.items() if g == gi} for gi in range(len(GROUP_SIZES))]
    expected += [{k} for k in keys if k not in truth]
    groups = _groups(members)
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, expected))
    for fid, group in groups.items():
        assert fid == factor_id(sorted(group))
    for m in members:
        assert m.factor_size == len(groups[m.factor_id])
        if m.factor_size > 1:
            assert 0.8 <= m.loading <= 1.0  # positive and high
        else:
            assert m.loading == 1.0


def test_group_factors_respects_min_corr():
    rng = np.random.default_rng(5)
    latent = rng.normal(size=400)
    # two patterns sharing a weak component: correlation ~ 0.3
    m = np.column_stack([latent + 1.5 * rng.normal(size=400), latent + 1.5 * rng.normal(size=400)])
    keys = [("m", "a", "entry"), ("m", "b", "entry")]
    assert 0.2 < pairwise_corr(m, 20)[0, 1] < 0.45
    strict, _ = group_factors(keys, m, FactorPolicy(min_corr=0.5))
    loose, _ = group_factors(keys, m, FactorPolicy(min_corr=0.15))
    assert len(_groups(strict)) == 2
    assert len(_groups(loose)) == 1
    assert all(member.loading > 0 for member in loose)


def test_a_chain_is_not_one_group():
    """A ~ u, B ~ u + v, C ~ v: corr(A, B) ~ corr(B, C) ~ 0.66 but corr(A, C) ~ 0. The average
    correlation of {A, B, C} is ~0.44 < min_corr, so B pairs with one side only (no chaining)."""
    rng = np.random.default_rng(8)
    u, v = rng.normal(size=(2, 300))
    noise = 0.3 * rng.normal(size=(3, 300))
    m = np.column_stack([u + noise[0], u + v + noise[1], v + noise[2]])
    keys = [("m", "A", "entry"), ("m", "B", "entry"), ("m", "C", "entry")]
    groups = sorted(
        map(len, _groups(group_factors(keys, m, FactorPolicy(min_corr=0.5))[0]).values())
    )
    assert groups == [1, 2]
    pair = next(g for g in _groups(group_factors(keys, m)[0]).values() if len(g) == 2)
    assert keys[1] in pair


def test_anti_correlated_patterns_do_not_group():
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    m = np.column_stack([x + 0.3 * rng.normal(size=200), -x + 0.3 * rng.normal(size=200)])
    members, corr = group_factors([("m", "a", "entry"), ("m", "b", "exit")], m)
    assert corr[0, 1] < -0.8
    assert len(_groups(members)) == 2


def test_group_factors_trivial_inputs():
    assert group_factors([], np.empty((10, 0)))[0] == []
    members, corr = group_factors(
        [("m", "a", "entry")], np.random.default_rng(0).normal(size=(30, 1))
    )
    assert [(m.key, m.factor_size, m.loading) for m in members] == [(("m", "a", "entry"), 1, 1.0)]
    assert members[0].factor_id == factor_id([("m", "a", "entry")])
    np.testing.assert_array_equal(corr, np.eye(1))
    keys, matrix = daily_residuals({})
    assert keys == [] and matrix.size == 0


@FEW
@given(seed=st.integers(0, 10**6), rnd=st.randoms(use_true_random=False))
def test_group_factors_does_not_depend_on_pattern_order(seed, rnd):
    keys, matrix, _ = _planted(seed % 50, days=120)
    order = list(range(len(keys)))
    rnd.shuffle(order)
    base = {m.key: m for m in group_factors(keys, matrix)[0]}
    shuffled = {m.key: m for m in group_factors([keys[i] for i in order], matrix[:, order])[0]}
    assert set(base) == set(shuffled)
    for key, m in base.items():
        other = shuffled[key]
        assert (other.factor_id, other.factor_size) == (m.factor_id, m.factor_size)
        assert other.loading == pytest.approx(m.loading, abs=1e-9)


keys_strategy = st.lists(
    st.tuples(
        st.sampled_from(["m1", "m2"]), st.text(max_size=4), st.sampled_from(["entry", "exit"])
    ),
    min_size=1,
    max_size=8,
    unique=True,
)


@SOME
@given(keys=keys_strategy, rnd=st.randoms(use_true_random=False))
def test_factor_id_depends_on_membership_only(keys, rnd):
    shuffled = list(keys)
    rnd.shuffle(shuffled)
    fid = factor_id(keys)
    assert fid == factor_id(shuffled)
    assert fid.startswith("fx_") and len(fid) == 13
    if len(keys) > 1:
        assert factor_id(keys[:-1]) != fid  # a different membership is a different factor


def test_factor_id_does_not_confuse_field_boundaries():
    assert factor_id([("ab", "c", "d")]) != factor_id([("a", "bc", "d")])
    assert factor_id([("a", "b", "c"), ("d", "e", "f")]) != factor_id([("a", "b", "c")])


@SOME
@given(st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=12))
def test_participation_is_between_one_and_the_number_of_members(loadings):
    p = participation(loadings)
    assert 1.0 - 1e-9 <= p <= len(loadings) + 1e-9


def test_participation_known_values():
    assert participation([0.9]) == pytest.approx(1.0)
    assert participation([0.8, 0.8, 0.8, 0.8]) == pytest.approx(4.0)
    assert participation([1.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert participation([1.0, 1.0, 0.0]) == pytest.approx(2.0)
    assert participation([]) == 1.0
    assert participation([0.0, 0.0]) == 1.0


def _daily(key, regime, day, n, delta):
    k = len(day)
    ones = np.ones(k)
    return DailySeries(
        key=key,
        regime=regime,
        day=np.asarray(day),
        n=np.asarray(n, float),
        mean=np.asarray(delta, float),
        var=ones,
        hold=ones,
        segment_n=np.asarray(n, float) * 5,
        segment_mean=np.zeros(k),
        segment_var=ones,
        segment_hold=ones,
    )


def _regime_driven(rng, key, edges, extra, share, total=100):
    """Root and per-regime series of a pattern whose edge is ``edges[regime]`` weighted by the
    day's regime mix (its own outcomes' shares), plus ``extra``."""
    days = np.arange(share.size)
    n = np.full(share.size, float(total))
    bull = rng.binomial(total, share).astype(float)
    mix = bull / n
    delta = edges[0] * mix + edges[1] * (1 - mix) + extra
    out = {(key, "*"): _daily(key, "*", days, n, delta)}
    has = bull > 0
    out[(key, "bull")] = _daily(key, "bull", days[has], bull[has], delta[has])
    has = bull < total
    out[(key, "bear")] = _daily(key, "bear", days[has], (n - bull)[has], delta[has])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_daily_residuals_remove_the_shared_regime_mix(seed):
    """A and B are unrelated but both pay in bull regimes and lose in bear ones, so their raw
    daily edges co-move with the day's regime mix; C and E share trades (a common noise)."""
    rng = np.random.default_rng(seed)
    days = 150
    share = rng.uniform(0.05, 0.95, days)
    shared = rng.normal(size=days)
    a, b, c, e = (("m", x, "entry") for x in "ABCE")
    series = {}
    series.update(_regime_driven(rng, a, (1.0, -1.0), 0.3 * rng.normal(size=days), share))
    series.update(_regime_driven(rng, b, (0.8, -0.6), 0.3 * rng.normal(size=days), share))
    series.update(
        _regime_driven(rng, c, (0.5, -0.2), 0.5 * shared + 0.2 * rng.normal(size=days), share)
    )
    series.update(
        _regime_driven(rng, e, (-0.3, 0.6), 0.5 * shared + 0.2 * rng.normal(size=days), share)
    )
    keys, residuals = daily_residuals(series)
    assert keys == [a, b, c, e]
    assert residuals.shape == (days, 4)
    raw = np.column_stack([series[(k, "*")].delta for k in keys])
    assert pairwise_corr(raw, 20)[0, 1] > 0.5  # the confound is real before residualising
    grouped_raw = _groups(group_factors(keys, raw)[0])
    assert {a, b} in grouped_raw.values()
    corr = pairwise_corr(residuals, 20)
    assert abs(corr[0, 1]) < 0.25
    assert corr[2, 3] > 0.7
    groups = sorted(map(sorted, _groups(group_factors(keys, residuals)[0]).values()))
    assert groups == sorted([[a], [b], [c, e]])


def test_daily_residuals_without_regimes_remove_level_and_trend():
    """DM patterns (root scope only): two unrelated edges with the same drift do not group, and
    a pure level + trend leaves nothing."""
    rng = np.random.default_rng(4)
    days = np.arange(100)
    drift = 0.02 * days
    keys = [("dm", "x", "entry"), ("dm", "y", "entry"), ("dm", "z", "exit")]
    x = 0.3 + drift + 0.2 * rng.normal(size=100)
    y = -0.1 + drift + 0.2 * rng.normal(size=100)
    z = 1.5 - 0.01 * days
    gappy = days[days % 4 != 0]  # y misses every fourth day
    series = {
        (keys[0], "*"): _daily(keys[0], "*", days, np.full(100, 10), x),
        (keys[1], "*"): _daily(keys[1], "*", gappy, np.full(gappy.size, 10), y[gappy]),
        (keys[2], "*"): _daily(keys[2], "*", days, np.full(100, 10), z),
    }
    out_keys, residuals = daily_residuals(series)
    assert out_keys == keys
    assert np.isnan(residuals[days % 4 == 0, 1]).all()
    assert np.isfinite(residuals[gappy, 1]).all()
    np.testing.assert_allclose(residuals[:, 2], 0.0, atol=1e-9)
    raw = np.column_stack([x, np.where(days % 4 != 0, y, np.nan)])
    assert pairwise_corr(raw, 20)[0, 1] > 0.8
    assert abs(pairwise_corr(residuals[:, :2], 20)[0, 1]) < 0.3
    # what is left is the injected noise, centred and detrended
    assert np.corrcoef(residuals[:, 0], x - drift)[0, 1] > 0.99
    assert abs(np.nanmean(residuals[:, 0])) < 1e-9


def test_daily_residuals_exact_regime_model_leaves_nothing():
    """delta = bull edge * bull share + bear edge * bear share + trend, exactly: residual 0."""
    rng = np.random.default_rng(9)
    key = ("m", "p", "trim")
    share = rng.uniform(0.1, 0.9, 60)
    series = _regime_driven(rng, key, (0.7, -0.4), 0.01 * np.arange(60), share)
    keys, residuals = daily_residuals(series)
    assert keys == [key]
    np.testing.assert_allclose(residuals[:, 0], 0.0, atol=1e-9)


# --------------------------------------------------------------------------------------------
# regime_weights: week_pairs, fit_regime_weights
# --------------------------------------------------------------------------------------------


def _week_panel():
    """7 weeks of a bull-regime pattern with a clear edge (+0.5 R/R over its segment), except:
    week 0 has 2 losing days of 7, week 2 has 1 outcome a day (7 < min_n), week 3 trades on 3
    days only, week 5 has no edge at all (its mean is the segment's)."""
    day, n, mean = [], [], []
    for d in range(49):
        week, dow = divmod(d, 7)
        if week == 3 and dow >= 3:
            continue
        day.append(d)
        n.append(1 if week == 2 else 20)
        if week == 5:
            mean.append(0.0)
        elif week == 0 and dow < 2:
            mean.append(-0.2)
        elif week == 0:
            mean.append(0.8)
        else:
            mean.append(0.5)
    k = len(day)
    n = np.array(n, float)
    return DailySeries(
        key=("mod", "pat", "entry"),
        regime="bull",
        day=np.array(day),
        n=n,
        mean=np.array(mean),
        var=np.full(k, 0.25),
        hold=np.full(k, 5.0),
        segment_n=np.full(k, 200.0),
        segment_mean=np.zeros(k),
        segment_var=np.ones(k),
        segment_hold=np.full(k, 10.0),
    )


def test_week_pairs_from_a_persistent_edge():
    s = _week_panel()
    pairs = week_pairs({(s.key, s.regime): s}, min_n=10, min_z=1.5)
    # 0->1 yes; 1->2 and 2->3 no (week 2 has 7 outcomes); 3->4 and 4->5 yes (week 5 is a valid
    # target); 5->6 no (no edge in week 5); 6->7 no (no week 7)
    assert [p.target_week for p in pairs] == [1, 4, 5]
    for p in pairs:
        assert p.regime == "bull" and p.category == "entry"
        assert p.z.shape == (len(FACTORS),)
        assert np.all(np.abs(p.z) <= 1.0)
        assert p.z[1] == pytest.approx(math.tanh(math.log(2.0)))  # holds half the segment's
    first, third, fifth = pairs
    assert first.delta_now == pytest.approx((5 * 0.8 - 2 * 0.2) / 7)
    assert first.delta_next == pytest.approx(0.5)
    assert first.z[0] == pytest.approx(2 * 5 / 7 - 1)  # coherence: 5 of 7 days on the edge's side
    assert first.z[2] == pytest.approx(1.0)  # recurrence: 7 active days
    assert first.weight == pytest.approx(1 / (1 / 140 + 1 / 140))
    assert third.delta_now == pytest.approx(0.5) and third.delta_next == pytest.approx(0.5)
    assert third.z[0] == pytest.approx(1.0)
    assert third.z[2] == pytest.approx(2 * 3 / 7 - 1)  # 3 active days
    assert third.weight == pytest.approx(1 / (1 / 60 + 1 / 140))
    assert fifth.delta_next == pytest.approx(0.0)
    # variance: pooled sd 0.5-ish against the segment's 1 (same daily means: within only)
    sd = math.sqrt(0.25 * 7 * 19 / (140 - 1))
    seg_sd = math.sqrt(1.0 * 7 * 199 / (1400 - 1))
    assert fifth.z[3] == pytest.approx(math.tanh(math.log(seg_sd / sd)))


def test_week_pairs_thresholds():
    s = _week_panel()
    series = {(s.key, s.regime): s}
    # with a low min_n week 2 (7 outcomes) counts again
    assert [p.target_week for p in week_pairs(series, min_n=5)] == [1, 2, 3, 4, 5]
    # a huge min_z leaves nothing: no edge is "material"
    assert week_pairs(series, min_z=1e6) == []


def _pairs(rng, regime, w, count, *, b=-0.2, noise=0.05, weeks=12, categories=("entry", "exit")):
    """Pairs from ``delta_next = delta_now * exp(b + w.z) + noise`` with z uniform in [-1, 1]."""
    out = []
    w = np.asarray(w, float)
    for _ in range(count):
        z = rng.uniform(-1.0, 1.0, len(FACTORS))
        now = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 1.0))
        nxt = now * math.exp(b + float(z @ w)) + float(rng.normal(0.0, noise))
        out.append(
            WeekPair(
                regime=regime,
                category=str(rng.choice(categories)),
                target_week=int(rng.integers(1, weeks + 1)),
                z=z,
                delta_now=now,
                delta_next=nxt,
                weight=float(rng.uniform(5.0, 50.0)),
            )
        )
    return out


W_GLOBAL = np.array([0.6, 0.3, 0.0, -0.5])
W_BULL = np.array([-0.8, 0.8, 0.0, 0.4])
W_THIN = np.array([-1.5, -1.5, 1.5, 1.5])


def _by_regime(fits):
    out = {}
    for f in fits:
        out.setdefault(f.regime, []).append(f)
    return out


def _vec(fit):
    return np.array([fit.weights[f] for f in FACTORS])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regime_weights_recover_known_weights(seed):
    rng = np.random.default_rng(seed)
    policy = RegimeWeightPolicy()
    pairs = (
        _pairs(rng, "*", W_GLOBAL, 400)
        + _pairs(rng, "bull", W_BULL, 400)
        + _pairs(rng, "thin", W_THIN, policy.min_pairs + 2)
        + _pairs(rng, "few", W_THIN, policy.min_pairs - 5)
    )
    fits = _by_regime(fit_regime_weights(pairs, np.zeros(len(FACTORS)), policy))
    assert set(fits) == {"*", "bull", "thin"}  # "few" is below min_pairs: no fit of its own
    for regime, group in fits.items():
        assert sorted(f.category for f in group) == ["entry", "exit"]
        assert sum(f.n_pairs for f in group) == sum(p.regime == regime for p in pairs)
        for f in group:  # one weight vector per regime, pooled over categories
            np.testing.assert_array_equal(_vec(f), _vec(group[0]))
            assert 0.0 <= f.confidence <= 1.0 and f.folds >= 0
            assert np.all(np.abs(_vec(f)) <= policy.bound)
    g = _vec(fits["*"][0])
    # global: from the prior (0) most of the way to the truth, same signs and ordering
    assert np.linalg.norm(g - W_GLOBAL) < 0.3 * np.linalg.norm(W_GLOBAL)
    assert np.sign(g[[0, 1, 3]]).tolist() == np.sign(W_GLOBAL[[0, 1, 3]]).tolist()
    assert abs(g[2]) < 0.1
    assert np.argsort(g).tolist() == np.argsort(W_GLOBAL).tolist()
    # a well-observed regime moves away from the global weights toward its own
    bull = _vec(fits["bull"][0])
    assert np.linalg.norm(bull - W_BULL) < 0.5 * np.linalg.norm(g - W_BULL)
    assert np.sign(bull[[0, 1, 3]]).tolist() == np.sign(W_BULL[[0, 1, 3]]).tolist()
    assert np.argsort(bull).tolist() == np.argsort(W_BULL).tolist()
    assert all(f.confidence >= 0.75 and f.folds >= 4 for f in fits["bull"])
    assert all(f.confidence >= 0.75 for f in fits["*"])  # the fit beats the prior out of sample
    # a thin regime (just above min_pairs) stays near the global weights
    thin = _vec(fits["thin"][0])
    assert np.linalg.norm(thin - g) < 0.3 * np.linalg.norm(W_THIN - g)


def test_more_data_moves_a_regime_further_from_the_global_weights():
    rng = np.random.default_rng(3)
    root = _pairs(rng, "*", W_GLOBAL, 300)
    distances = []
    for count in (35, 120, 800):
        fits = _by_regime(
            fit_regime_weights(root + _pairs(rng, "bull", W_BULL, count), np.zeros(4))
        )
        distances.append(np.linalg.norm(_vec(fits["bull"][0]) - W_BULL))
    assert distances[0] > distances[1] > distances[2]


def test_intercept_absorbs_regression_to_the_mean():
    """No factor predicts persistence (w = 0), every edge halves (b = ln 0.5): the weights go
    from the documented defaults to ~0 instead of mistaking the shrinkage for a factor effect."""
    rng = np.random.default_rng(0)
    prior = np.array([0.30, 0.15, 0.10, 0.15])
    fits = fit_regime_weights(_pairs(rng, "*", np.zeros(4), 600, b=-LN2), prior)
    w = _vec(fits[0])
    assert np.all(np.abs(w) < 0.08)
    assert all(f.confidence >= 0.75 for f in fits)


def test_without_enough_root_pairs_regimes_shrink_toward_the_current_weights():
    rng = np.random.default_rng(1)
    current = np.array([0.3, -0.3, 0.2, 0.1])
    policy = RegimeWeightPolicy()
    pairs = _pairs(rng, "*", W_GLOBAL, policy.min_pairs - 1) + _pairs(
        rng, "thin", W_THIN, policy.min_pairs
    )
    fits = _by_regime(fit_regime_weights(pairs, current, policy))
    assert set(fits) == {"thin"}
    thin = _vec(fits["thin"][0])
    assert np.linalg.norm(thin - current) < 0.3 * np.linalg.norm(W_THIN - current)
    assert fit_regime_weights([], current) == []


@FEW
@given(
    seed=st.integers(0, 2**32 - 1),
    truth=st.lists(st.floats(-6.0, 6.0), min_size=4, max_size=4),
    bound=st.floats(0.2, 2.0),
    ridge=st.floats(0.5, 50.0),
    count=st.integers(30, 150),
)
def test_regime_weights_stay_within_the_bound(seed, truth, bound, ridge, count):
    rng = np.random.default_rng(seed)
    policy = RegimeWeightPolicy(ridge=ridge, bound=bound)
    pairs = _pairs(rng, "*", truth, count, noise=0.2) + _pairs(
        rng, "r", -np.asarray(truth), count, noise=0.2
    )
    fits = fit_regime_weights(pairs, np.zeros(4), policy)
    assert {f.regime for f in fits} == {"*", "r"}
    for f in fits:
        assert set(f.weights) == set(FACTORS)
        assert all(abs(v) <= bound + 1e-9 for v in f.weights.values())
        assert 0.0 <= f.confidence <= 1.0
        assert f.folds >= 0 and f.n_pairs > 0


def test_regime_weights_stay_within_the_bound_when_the_prior_is_outside_it():
    """Stored weights fitted under a wider bound (or edited by hand) must not break a refit."""
    rng = np.random.default_rng(0)
    policy = RegimeWeightPolicy(bound=1.0)
    pairs = _pairs(rng, "*", W_GLOBAL, 100) + _pairs(rng, "bull", W_BULL, 100)
    fits = fit_regime_weights(pairs, np.array([1.5, 0.0, 0.0, 0.0]), policy)
    assert {f.regime for f in fits} == {"*", "bull"}
    for f in fits:
        assert all(abs(v) <= policy.bound + 1e-9 for v in f.weights.values())


# --- refit: the quiet-pattern baseline of the half-life fits ---------------------------------


def test_quiet_deltas_subtract_the_quiet_patterns_mean_without_the_pattern_itself():
    from leverloop.learning.refit import quiet_deltas

    days = np.arange(4)
    fading = ("pm", "pm.a", "entry")
    quiet_1, quiet_2 = ("pm", "pm.b", "entry"), ("pm", "pm.c", "entry")
    other_segment = ("pm", "pm.d", "exit")
    parts = {
        fading: [_daily(fading, "dip", days, [10, 10, 10, 10], [1.0, 0.5, 0.25, 0.125])],
        quiet_1: [_daily(quiet_1, "dip", days, [10, 30, 10, 10], [0.1, 0.2, 0.1, 0.1])],
        quiet_2: [_daily(quiet_2, "dip", days, [30, 10, 10, 10], [0.3, 0.0, 0.1, 0.1])],
        other_segment: [_daily(other_segment, "dip", days, [50] * 4, [5.0] * 4)],
    }
    out = quiet_deltas(parts, {quiet_1, quiet_2, other_segment})
    # the fading pattern against both quiet ones (weighted by their outcomes that day)
    np.testing.assert_allclose(
        out[(fading, "dip")], [1.0 - 0.25, 0.5 - 0.15, 0.25 - 0.1, 0.125 - 0.1]
    )
    # a quiet pattern against the *other* quiet one only, never against itself
    np.testing.assert_allclose(out[(quiet_1, "dip")], [0.1 - 0.3, 0.2 - 0.0, 0.0, 0.0])
    # alone in its segment: no baseline, so no days (NaN) rather than a delta against itself
    assert np.isnan(out[(other_segment, "dip")]).all()
