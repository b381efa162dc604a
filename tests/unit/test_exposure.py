"""v5.3 exposure cap: a latent factor's members together move a lever no more than one pattern would;
v5.2 half-lives and persistence as the engine applies them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leverloop.domain.engine import EnginePolicy, run_engine
from leverloop.domain.exposure import cap_exposure
from leverloop.domain.lessons import CellEvidence
from leverloop.learning.halflife import HalfLifeFit
from leverloop.learning.refit import PERSISTENCE_RANGE, applied_halflife

T0 = datetime(2026, 2, 1, tzinfo=UTC)
targets_st = st.dictionaries(
    st.integers(0, 30),
    st.one_of(st.floats(-1.0, 1.0), st.sampled_from([math.nan, math.inf, -math.inf])),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(targets=targets_st, group_of=st.lists(st.integers(0, 4), min_size=31, max_size=31))
def test_capped_groups_never_exceed_their_largest_member(targets, group_of):
    groups = {k: group_of[k] for k in targets if group_of[k] > 0}  # group 0: ungrouped
    capped, scales = cap_exposure(targets, groups)
    assert set(capped) == set(targets)
    for key, value in capped.items():
        raw = targets[key] if math.isfinite(targets[key]) else 0.0
        assert math.isfinite(value)
        assert abs(value) <= abs(raw) + 1e-15  # only ever shrinks
        assert value == 0.0 or math.copysign(1, value) == math.copysign(1, raw)  # same direction
        assert 0.0 < scales[key] <= 1.0
        if key not in groups:
            assert value == raw and scales[key] == 1.0
    for group in set(groups.values()):
        keys = [k for k in groups if groups[k] == group]
        raw = [targets[k] if math.isfinite(targets[k]) else 0.0 for k in keys]
        assert abs(sum(capped[k] for k in keys)) <= max(abs(v) for v in raw) + 1e-12
        if len({scales[k] for k in keys}) != 1:  # one common scale per group
            raise AssertionError(scales)


def test_a_lone_member_and_opposite_members_are_not_capped():
    capped, _ = cap_exposure({"a": 0.3, "b": 0.2, "c": -0.25}, {"a": 1, "b": 2, "c": 2})
    assert capped == {"a": 0.3, "b": 0.2, "c": -0.25}


def test_three_duplicates_together_tilt_like_one_pattern():
    capped, scales = cap_exposure({"a": 0.3, "b": 0.3, "c": 0.15}, dict.fromkeys("abc", "f"))
    assert math.isclose(sum(capped.values()), 0.3)
    assert math.isclose(capped["a"] / capped["c"], 2.0)  # relative weights kept
    assert math.isclose(scales["a"], 0.4)


def _cell(pattern: str, edge: float = 0.3) -> CellEvidence:
    return CellEvidence(
        module="pm", pattern_key=pattern, action_category="entry", scope={"regime": "dip"},
        n=4000, n_eff=4000, edge=edge, confidence=1.0, p_value=1e-9, t_vs_parent=5.0,
        scope_depth=1, edge_sd=0.01,
    )  # fmt: skip


def _size_mults(factors=None, persistence=None, halflives=None, days=60):
    evidence = [_cell("pm.a.dup1"), _cell("pm.a.dup2"), _cell("pm.b.single")]
    result, previous = None, T0
    states, lessons = [], {}
    for day in range(1, days + 1):  # daily runs: let the levers settle at their equilibria
        at = T0 + timedelta(days=day)
        result = run_engine(
            evidence, [], states, lessons, as_of=at, previous_as_of=previous,
            policy=EnginePolicy(), factors=factors, persistence=persistence, halflives=halflives,
        )  # fmt: skip
        states, lessons, previous = result.states, result.lessons, at
    return {s.pattern_key: s.value for s in result.states if s.lever == "size_mult"}, result


def test_the_engine_caps_a_duplicate_pair_at_one_patterns_exposure():
    free, _ = _size_mults()
    assert free["pm.a.dup1"] > 1.1 and math.isclose(free["pm.a.dup1"], free["pm.b.single"])
    key = lambda p: ("pm", p, "entry")  # noqa: E731
    capped, result = _size_mults(factors={key("pm.a.dup1"): "fx_1", key("pm.a.dup2"): "fx_1"})
    pair = math.log(capped["pm.a.dup1"]) + math.log(capped["pm.a.dup2"])
    single = math.log(capped["pm.b.single"])
    assert pair <= single + 1e-3  # the pair together tilts no more than the single pattern
    assert pair >= 0.9 * single  # ... and still as much as one pattern with that edge
    assert capped["pm.b.single"] == free["pm.b.single"]  # the unrelated pattern is untouched
    assert any("factor cap" in c.reason for c in result.changes if c.pattern_key == "pm.a.dup1")


def test_persistence_strengthens_and_a_short_halflife_weakens_the_nudge():
    key = lambda p: ("pm", p, "entry")  # noqa: E731
    base, _ = _size_mults()
    strong, _ = _size_mults(persistence={key("pm.b.single"): 1.5})
    weak, _ = _size_mults(persistence={key("pm.b.single"): 0.5})
    assert weak["pm.b.single"] < base["pm.b.single"] < strong["pm.b.single"] <= 1.5


def test_applied_halflife_uses_usable_fits_only_and_bounds_persistence():
    def fit(status, days):
        return HalfLifeFit(status, days, days, days, 0.2, 5.0, 60)

    assert applied_halflife(fit("insufficient", None), 720.0) == (720.0, 1.0)
    assert applied_halflife(fit("no_edge", None), 720.0) == (720.0, 1.0)
    hours, persistence = applied_halflife(fit("fitted", 7.5), 720.0)
    assert hours == 180.0 and persistence == 0.5
    hours, persistence = applied_halflife(fit("fitted", 30.0), 720.0)
    assert hours == 720.0 and persistence == 1.0
    hours, persistence = applied_halflife(fit("persistent", 365.0), 720.0)
    assert hours == 365.0 * 24 and persistence == PERSISTENCE_RANGE[1]
