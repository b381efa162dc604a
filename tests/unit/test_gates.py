"""Gate rules (pure): properties a wrong limit check would break, for any diff and evidence."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from leverloop.domain.diff import ConfigDiff, LeverDiff
from leverloop.domain.gates import (
    Action,
    Evidence,
    GatePolicy,
    evaluate,
    evidence_key,
    lever_step,
    moves_away_from_neutral,
    next_action,
)
from leverloop.domain.levers import REGISTRY

LEVERS = [
    "size_mult",
    "entry_aggression_mult",
    "trail_mult",
    "entry_delay_bars",
    "signal_thresholds.min_ts_for_add",
]
PATTERNS = ["pm.a", "pm.b", "pm.c"]
SCOPES = [{}, {"regime": "dip"}, {"regime": "dip", "bucket": "micro"}]


@st.composite
def lever_values(draw, path: str) -> float | None:
    lv = REGISTRY[path]
    if draw(st.booleans()) and lv.neutral is not None:
        return None  # absent from the config: neutral
    if lv.kind.value == "bars":
        return float(draw(st.integers(int(lv.low), int(lv.high))))
    return round(draw(st.floats(lv.low, lv.high)), 4)


@st.composite
def lever_diffs(draw) -> LeverDiff:
    path = draw(st.sampled_from(LEVERS))
    before = draw(lever_values(path))
    after = draw(lever_values(path))
    assume(before != after)
    return LeverDiff(
        section="pattern_strength_overrides",
        pattern_key=draw(st.sampled_from(PATTERNS)),
        action_category="entry",
        scope=draw(st.sampled_from(SCOPES)),
        lever=path,
        before=before,
        after=after,
    )


@st.composite
def diffs(draw, max_size: int = 30) -> ConfigDiff:
    items = draw(st.lists(lever_diffs(), max_size=max_size))
    unique = {(d.pattern_key, str(d.scope), d.lever): d for d in items}
    return ConfigDiff(levers=list(unique.values()), flags={})


@st.composite
def evidences(draw) -> dict:
    out = {}
    for pattern in PATTERNS:
        for scope in SCOPES:
            if draw(st.booleans()):
                out[evidence_key(pattern, "entry", scope)] = Evidence(
                    n=draw(st.integers(0, 500)),
                    p_value=draw(st.floats(0, 1)),
                    n_counterfactuals=draw(st.integers(0, 500)),
                )
    return out


policies = st.builds(
    GatePolicy,
    max_levers_changed=st.integers(0, 40),
    max_step_scale=st.floats(0.1, 10),
    material_step=st.floats(0, 1),
    min_support=st.integers(1, 200),
    significance=st.floats(0.001, 1),
)


def _looser(p: GatePolicy, data: st.DataObject) -> GatePolicy:
    return p.model_copy(
        update={
            "max_levers_changed": p.max_levers_changed + data.draw(st.integers(0, 10)),
            "max_step_scale": p.max_step_scale * data.draw(st.floats(1, 5)),
            "min_support": max(1, p.min_support - data.draw(st.integers(0, 50))),
            "significance": min(1.0, p.significance * data.draw(st.floats(1, 5))),
        }
    )


@given(diffs(), evidences(), policies, st.data())
def test_loosening_a_policy_never_turns_auto_publish_into_approval(diff, evidence, policy, data):
    strict = evaluate(diff, evidence, policy, has_parent=True)
    loose = evaluate(diff, evidence, _looser(policy, data), has_parent=True)
    if strict.within_limits:
        assert loose.within_limits


@given(diffs(), evidences(), policies, st.randoms())
def test_the_verdict_does_not_depend_on_the_order_of_the_diff(diff, evidence, policy, rnd):
    shuffled = list(diff.levers)
    rnd.shuffle(shuffled)
    a = evaluate(diff, evidence, policy, has_parent=True)
    b = evaluate(ConfigDiff(shuffled, diff.flags), evidence, policy, has_parent=True)
    assert a.to_json() == b.to_json()


@given(diffs(), evidences(), policies)
def test_step_check_fails_exactly_when_some_lever_moves_more_than_its_limit(diff, evidence, policy):
    verdict = evaluate(diff, evidence, policy, has_parent=True)
    step = next(c for c in verdict.checks if c.name == "lever_step")
    too_far = [
        d for d in diff.levers if lever_step(d) > policy.max_step_scale * REGISTRY[d.lever].max_step
    ]
    assert step.passed == (not too_far)
    material = [
        d for d in diff.levers if lever_step(d) >= policy.material_step * REGISTRY[d.lever].max_step
    ]
    count = next(c for c in verdict.checks if c.name == "levers_changed")
    assert count.observed == len(material) == verdict.material_changes
    assert count.passed == (len(material) <= policy.max_levers_changed)


@given(diffs(), policies)
def test_moves_toward_neutral_need_no_evidence(diff, policy):
    toward = [d for d in diff.levers if not moves_away_from_neutral(d)]
    verdict = evaluate(ConfigDiff(toward, {}), {}, policy, has_parent=True)
    by_name = {c.name: c for c in verdict.checks}
    assert by_name["support"].passed and by_name["significance"].passed


@given(policies)
def test_a_material_move_away_from_neutral_without_enough_evidence_needs_an_operator(policy):
    move = LeverDiff("pattern_strength_overrides", "pm.a", "entry", {}, "size_mult", None, 1.2)
    key = evidence_key("pm.a", "entry", {})
    thin = {key: Evidence(n=policy.min_support - 1, p_value=1e-12)}
    verdict = evaluate(ConfigDiff([move], {}), thin, policy, has_parent=True)
    support = next(c for c in verdict.checks if c.name == "support")
    assert not support.passed and "pm.a/entry {*} size_mult" in support.detail
    assert not verdict.within_limits

    enough = {key: Evidence(n=policy.min_support, p_value=1.0)}
    verdict = evaluate(ConfigDiff([move], {}), enough, policy, has_parent=True)
    significance = next(c for c in verdict.checks if c.name == "significance")
    assert significance.passed == (policy.significance >= 1.0)


@given(policies, st.booleans())
def test_empty_diff_is_within_limits_even_when_pinned(policy, pinned):
    verdict = evaluate(
        ConfigDiff([], {}), {}, policy, has_parent=True, pinned_by_rollback=3 if pinned else None
    )
    assert verdict.within_limits and verdict.material_changes == 0


@given(diffs(max_size=5), evidences())
def test_a_rollback_pins_the_config_until_an_operator_approves(diff, evidence):
    assume(diff.levers)
    loose = GatePolicy(max_levers_changed=1000, max_step_scale=100, min_support=1, significance=1)
    verdict = evaluate(diff, evidence, loose, has_parent=True, pinned_by_rollback=4)
    unpinned = evaluate(diff, evidence, loose, has_parent=True)
    assert not verdict.within_limits
    assert verdict.reasons == [
        *unpinned.reasons,
        "the current config v4 is an operator's rollback; the next learned change needs an operator",
    ]


def test_flag_changes_need_approval_except_on_the_first_publish():
    flags = {"learning_overrides_enabled": (True, False)}
    assert not evaluate(ConfigDiff([], flags), {}, GatePolicy(), has_parent=True).within_limits
    assert evaluate(ConfigDiff([], flags), {}, GatePolicy(), has_parent=False).within_limits


@given(st.booleans(), policies, st.sampled_from(["pause", "reject", "approve"]), st.booleans())
def test_next_action(within, policy, on_exceed, shadow):
    policy = policy.model_copy(update={"on_exceed": on_exceed, "shadow": shadow})
    action = next_action(within, policy)
    if shadow:
        assert action is Action.SHADOW  # shadow never pauses and never moves the pointer
    elif within:
        assert action is Action.PUBLISH
    else:
        assert action.value == on_exceed


@given(diffs(), evidences(), policies)
def test_the_report_is_strict_json(diff, evidence, policy):
    report = evaluate(diff, evidence, policy, has_parent=True).to_json()
    json.dumps(report, allow_nan=False)  # jsonb rejects NaN/Infinity


def test_a_threshold_set_or_withdrawn_counts_as_one_full_step():
    appear = LeverDiff(
        "pattern_overrides", "pm.a", "entry", {}, "signal_thresholds.min_ts_for_add", None, 0.5
    )
    lever = REGISTRY["signal_thresholds.min_ts_for_add"]
    assert lever_step(appear) == lever.max_step and moves_away_from_neutral(appear)
    verdict = evaluate(
        ConfigDiff([appear], {}), {}, GatePolicy(max_step_scale=1.0), has_parent=True
    )
    assert next(c for c in verdict.checks if c.name == "lever_step").passed
    strict = evaluate(ConfigDiff([appear], {}), {}, GatePolicy(max_step_scale=0.5), has_parent=True)
    assert not next(c for c in strict.checks if c.name == "lever_step").passed


def test_tuning_moves_are_backed_by_counterfactuals_not_by_a_p_value():
    move = LeverDiff("pattern_overrides", "pm.a", "entry", {}, "phase1_frac_mult", None, 0.8)
    key = evidence_key("pm.a", "entry", {})
    backed = {key: Evidence(n=0, p_value=1.0, n_counterfactuals=500)}
    thin = {key: Evidence(n=5000, p_value=1e-9, n_counterfactuals=3)}
    policy = GatePolicy()
    checks = {
        c.name: c for c in evaluate(ConfigDiff([move], {}), backed, policy, has_parent=True).checks
    }
    assert checks["support"].passed and checks["significance"].passed
    checks = {
        c.name: c for c in evaluate(ConfigDiff([move], {}), thin, policy, has_parent=True).checks
    }
    assert not checks["support"].passed and "n=3" in checks["support"].detail


@given(st.floats(0.01, 0.5), st.floats(0.5, 30))
def test_the_step_limit_is_a_rate_per_day_since_the_parent(step, days):
    size = REGISTRY["size_mult"]
    move = LeverDiff(
        "pattern_strength_overrides", "pm.a", "entry", {}, "size_mult", 1.0, 1.0 + step
    )
    verdict = evaluate(ConfigDiff([move], {}), {}, GatePolicy(), has_parent=True, elapsed_days=days)
    passed = next(c for c in verdict.checks if c.name == "lever_step").passed
    assert passed == (step <= size.max_step * max(1.0, days))


def test_policy_defaults_and_validation():
    policy = GatePolicy()
    assert (policy.max_levers_changed, policy.max_step_scale, policy.min_support) == (25, 1.0, 30)
    assert (policy.significance, policy.shadow, policy.on_exceed) == (0.05, False, "pause")
    with pytest.raises(ValidationError):
        GatePolicy(on_exceed="ignore")
    with pytest.raises(ValidationError):
        GatePolicy(significance=0)


def test_prefect_yaml_spells_out_the_default_policy():
    from pathlib import Path

    from leverloop.serving import load_deployments

    repo = Path(__file__).resolve().parents[2]
    loop = next(
        d for d in load_deployments(repo / "prefect.yaml") if d["name"] == "learning-loop-hourly"
    )
    assert GatePolicy.model_validate(loop["parameters"]["gates"]) == GatePolicy()
