"""The PM hot path: matching, lever application, flags, holdout, isolation from the caller."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from leverloop.domain.levers import REGISTRY, LeverKind
from leverloop.domain.pm_config import PmConfig, StrengthLevers, StrengthOverride
from leverloop.runtime import Runtime, holdout_bucket, is_holdout, outcome_fields
from leverloop.runtime.index import compile_config

ALWAYS = {"position_id": None}  # no position id: never held out


def entry(
    scope: dict[str, str],
    levers: dict[str, Any],
    lesson: str,
    *,
    strength: float = 0.5,
    category: str = "entry",
    pattern: str = "pm.p",
    module: str = "pm",
    enabled: bool = True,
) -> dict[str, Any]:
    return {
        "pattern_key": pattern,
        "action_category": category,
        "module": module,
        "scope": scope,
        "levers": levers,
        "lesson": {
            "id": lesson,
            "strength": strength,
            "decay_halflife_hours": 720,
            "enabled": enabled,
        },
    }


def runtime_for(
    strength: list[dict] = (), tuning: list[dict] = (), *, holdout: float = 0.0, **flags: Any
) -> Runtime:
    config = PmConfig.model_validate(
        {"pattern_strength_overrides": list(strength), "pattern_overrides": list(tuning), **flags}
    )
    runtime = Runtime(holdout_fraction=holdout)
    assert runtime.install(config, 1)
    return runtime


def lessons(result: dict) -> list[str]:
    return [ov.lesson_id for ov in result["learning"]["overrides"]]


def test_the_most_specific_matching_scope_wins_and_ties_break_by_strength_then_scope():
    rt = runtime_for(
        [
            entry({}, {"size_mult": 1.1}, "all"),
            entry({"regime": "dip"}, {"size_mult": 1.2}, "dip"),
            entry(
                {"regime": "dip", "bucket": "micro"}, {"size_mult": 0.9}, "dip_micro", strength=0.3
            ),
            entry(
                {"bucket": "micro", "chain": "sol"}, {"size_mult": 0.8}, "micro_sol", strength=0.6
            ),
            entry({"chain": "sol", "regime": "dip"}, {"size_mult": 0.7}, "sol_dip", strength=0.3),
        ]
    )
    apply = rt.apply_pattern_overrides
    action = {"size_fraction": 0.1}
    base = {"pattern_key": "pm.p", **ALWAYS}
    assert lessons(apply(action, {**base, "regime": "chop"}, "entry")) == ["all"]
    assert lessons(apply(action, {**base, "regime": "dip", "chain": "eth"}, "entry")) == ["dip"]
    assert lessons(apply(action, {**base, "regime": "dip", "bucket": "micro"}, "entry")) == [
        "dip_micro"
    ]
    # three 2-dimension scopes match: the strongest lesson wins
    full = {**base, "regime": "dip", "bucket": "micro", "chain": "sol"}
    assert lessons(apply(action, full, "entry")) == ["micro_sol"]
    # equal strength: the smaller canonical scope JSON wins (bucket < chain)
    rt2 = runtime_for(
        [
            entry({"regime": "dip", "bucket": "micro"}, {"size_mult": 0.9}, "b", strength=0.3),
            entry({"chain": "sol", "regime": "dip"}, {"size_mult": 0.7}, "c", strength=0.3),
        ]
    )
    assert lessons(rt2.apply_pattern_overrides(action, full, "entry")) == ["b"]
    assert apply(action, full, "entry")["size_fraction"] == pytest.approx(0.08)
    # other pattern, other category, missing pattern: nothing applies
    assert lessons(apply(action, {**full, "pattern_key": "pm.q"}, "entry")) == []
    assert lessons(apply(action, full, "add")) == []
    assert lessons(apply(action, {"regime": "dip"}, "entry")) == []


def test_capital_levers_scale_their_own_fields_and_leave_the_callers_action_alone():
    rt = runtime_for(
        [
            entry({}, {"size_mult": 1.5, "entry_aggression_mult": 1.2}, "in"),
            entry({}, {"size_mult": 0.5, "exit_aggression_mult": 0.8}, "out", category="trim"),
        ]
    )
    action = {"size_fraction": 0.1, "entry_aggression": 2, "exit_aggression": 1.0, "note": "x"}
    before = copy.deepcopy(action)
    ctx = {"pattern_key": "pm.p", **ALWAYS}
    entry_out = rt.apply_pattern_overrides(action, ctx, "entry")
    trim_out = rt.apply_pattern_overrides(action, ctx, "trim")
    assert action == before and entry_out is not action
    assert entry_out["size_fraction"] == pytest.approx(0.15)
    assert entry_out["entry_aggression"] == pytest.approx(2.4)
    assert entry_out["exit_aggression"] == 1.0 and entry_out["note"] == "x"
    assert trim_out["size_fraction"] == pytest.approx(0.05)
    assert trim_out["exit_aggression"] == pytest.approx(0.8)
    assert trim_out["entry_aggression"] == 2
    # fields that are not numbers are left as they are
    odd = rt.apply_pattern_overrides(
        {"size_fraction": "0.1", "entry_aggression": True}, ctx, "entry"
    )
    assert odd["size_fraction"] == "0.1" and odd["entry_aggression"] is True


def test_tuning_levers_are_merged_into_a_new_tuning_block():
    rt = runtime_for(
        [entry({}, {"size_mult": 1.2}, "cap")],
        [
            entry(
                {"regime": "dip"},
                {"entry_delay_bars": 2, "phase_scaling": {"S1": 0.9}, "trail_mult": 1.1},
                "tune",
            )
        ],
    )
    tuning = {"phase_scaling": {"S2": 1.0}, "trail_mult": 1.0, "own": 5}
    action = {"size_fraction": 0.1, "tuning": tuning}
    out = rt.apply_pattern_overrides(action, {"pattern_key": "pm.p", "regime": "dip"}, "entry")
    assert lessons(out) == ["cap", "tune"]
    assert out["tuning"] == {
        "phase_scaling": {"S1": 0.9, "S2": 1.0},
        "trail_mult": 1.1,
        "entry_delay_bars": 2,
        "own": 5,
    }
    assert tuning == {"phase_scaling": {"S2": 1.0}, "trail_mult": 1.0, "own": 5}
    no_tuning = rt.apply_pattern_overrides({}, {"pattern_key": "pm.p", "regime": "dip"}, "entry")
    assert no_tuning["tuning"]["phase_scaling"] == {"S1": 0.9}
    # the strength override applies on its own where the tuning one does not match
    chop = rt.apply_pattern_overrides(action, {"pattern_key": "pm.p", "regime": "chop"}, "entry")
    assert lessons(chop) == ["cap"] and chop["tuning"] is tuning


def test_feature_flags_switch_overrides_off_globally_or_per_regime():
    overrides = [entry({}, {"size_mult": 1.4}, "all")]
    action = {"size_fraction": 0.1}
    off = runtime_for(overrides, learning_overrides_enabled=False)
    out = off.apply_pattern_overrides(action, {"pattern_key": "pm.p", "regime": "dip"}, "entry")
    assert out["size_fraction"] == 0.1 and out["learning"]["overrides"] == ()
    assert out["learning"]["pm_config_version"] == 1

    dip_only = runtime_for(overrides, learning_overrides_enabled_regimes=["dip"])
    for regime, size in (("dip", 0.14), ("chop", 0.1), (None, 0.1)):
        ctx = {"pattern_key": "pm.p", "regime": regime}
        assert dip_only.apply_pattern_overrides(action, ctx, "entry")["size_fraction"] == (
            pytest.approx(size)
        )


def test_a_disabled_lesson_gives_way_to_the_next_most_specific_override():
    rt = runtime_for(
        [
            entry({}, {"size_mult": 1.1}, "broad"),
            entry({"regime": "dip"}, {"size_mult": 1.4}, "narrow", enabled=False),
        ]
    )
    out = rt.apply_pattern_overrides(
        {"size_fraction": 1.0}, {"pattern_key": "pm.p", "regime": "dip"}, "entry"
    )
    assert lessons(out) == ["broad"] and out["size_fraction"] == pytest.approx(1.1)


def test_levers_are_clamped_again_when_compiled():
    forged = PmConfig.model_construct(
        learning_overrides_enabled=True,
        learning_overrides_enabled_regimes=None,
        pattern_overrides=[],
        pattern_strength_overrides=[
            StrengthOverride.model_construct(
                pattern_key="pm.p",
                action_category="entry",
                module="pm",
                scope={},
                levers=StrengthLevers.model_construct(
                    size_mult=9.0, entry_aggression_mult=float("nan"), exit_aggression_mult=0.1
                ),
                lesson=PmConfig.model_validate(
                    {"pattern_strength_overrides": [entry({}, {"size_mult": 1.0}, "x")]}
                )
                .pattern_strength_overrides[0]
                .lesson,
            )
        ],
    )
    ov = compile_config(forged, 1).pm[("pm.p", "entry")].strength[0][2][()]
    # out of bounds -> bound; NaN -> neutral; a lever that does not apply to entry -> dropped
    assert dict(ov.levers) == {"size_mult": 1.5, "entry_aggression_mult": 1.0}


def test_holdout_positions_get_nothing_and_carry_what_was_withheld():
    rt = runtime_for([entry({}, {"size_mult": 1.5}, "all")], holdout=0.5)
    held = next(f"pos{i}" for i in range(1000) if holdout_bucket(f"pos{i}") < 0.5)
    live = next(f"pos{i}" for i in range(1000) if holdout_bucket(f"pos{i}") >= 0.5)
    action = {"size_fraction": 0.1}
    out_held = rt.apply_pattern_overrides(
        action, {"pattern_key": "pm.p", "position_id": held}, "entry"
    )
    out_live = rt.apply_pattern_overrides(
        action, {"pattern_key": "pm.p", "position_id": live}, "entry"
    )
    assert out_held["size_fraction"] == 0.1 and out_held["learning"]["holdout"] is True
    assert out_live["size_fraction"] == pytest.approx(0.15)
    assert out_live["learning"]["holdout"] is False
    held_fields, live_fields = (
        outcome_fields(out_held["learning"]),
        outcome_fields(out_live["learning"]),
    )
    assert held_fields["holdout"] and held_fields["applied_overrides"][0]["applied"] is False
    assert held_fields["applied_overrides"][0]["lesson_id"] == "all"
    assert live_fields == {
        "pm_config_version": 1,
        "holdout": False,
        "applied_overrides": [
            {
                "lesson_id": "all",
                "section": "strength",
                "module": "pm",
                "pattern_key": "pm.p",
                "action_category": "entry",
                "scope": {},
                "levers": {"size_mult": 1.5},
                "applied": True,
            }
        ],
    }
    assert outcome_fields(None) == {
        "pm_config_version": None,
        "holdout": False,
        "applied_overrides": None,
    }


def test_holdout_is_stable_across_processes_and_close_to_its_fraction():
    ids = [f"position-{i}" for i in range(20_000)]
    share = sum(is_holdout(p, 0.10) for p in ids) / len(ids)
    assert 0.09 < share < 0.11
    script = "from leverloop.runtime import holdout_bucket; print(repr([holdout_bucket(f'position-{i}') for i in range(50)]))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {repr([holdout_bucket(f"position-{i}") for i in range(50)]) + "\n"}
    assert holdout_bucket("position-1", "other salt") != holdout_bucket("position-1")


def test_errors_return_the_input_untouched_and_are_counted():
    rt = runtime_for(
        [entry({"regime": "dip"}, {"size_mult": 1.5}, "a")], [entry({}, {"trail_mult": 0.9}, "t")]
    )
    bad_tuning = {"size_fraction": 0.1, "tuning": "not a mapping"}
    cases = [
        ("not a mapping", {"pattern_key": "pm.p"}),
        ({"size_fraction": 0.1}, None),
        ({"size_fraction": 0.1}, {"pattern_key": "pm.p", "regime": ["unhashable"]}),
        ({"size_fraction": 0.1}, {"pattern_key": "pm.p", "position_id": {"un": "hashable"}}),
        (bad_tuning, {"pattern_key": "pm.p", "regime": "dip"}),
    ]
    for action, context in cases:
        assert rt.apply_pattern_overrides(action, context, "entry") is action
    assert rt.errors == len(cases) and "TypeError" in rt.last_error
    assert bad_tuning == {"size_fraction": 0.1, "tuning": "not a mapping"}
    assert rt.apply_dm_alloc_multiplier(2.0, None) == 2.0
    assert rt.errors == len(cases) + 1


def test_a_runtime_never_moves_to_an_older_or_the_same_version():
    config = PmConfig.model_validate(
        {"pattern_strength_overrides": [entry({}, {"size_mult": 1.2}, "a")]}
    )
    older = PmConfig()
    rt = Runtime()
    assert rt.version is None
    assert rt.install(config, 5)
    assert not rt.install(older, 4) and not rt.install(older, 5)
    assert rt.version == 5 and rt.index.overrides == 1
    assert rt.install(older, 6) and list(rt.installed) == [5, 6]
    assert rt.wait_for_version(6, timeout=0.01) and not rt.wait_for_version(7, timeout=0.01)


def test_without_a_config_actions_pass_through_with_an_empty_learning_block():
    rt = Runtime()
    out = rt.apply_pattern_overrides(
        {"size_fraction": 0.1}, {"pattern_key": "pm.p", "position_id": "x"}, "entry"
    )
    assert out == {
        "size_fraction": 0.1,
        "learning": {"pm_config_version": None, "holdout": is_holdout("x"), "overrides": ()},
    }


def test_dm_alloc_multiplier_has_its_own_call():
    rt = runtime_for(
        [
            entry(
                {"curator": "c01"}, {"alloc_multiplier": 1.3}, "dm1", pattern="dm.a", module="dm"
            ),
            entry({}, {"size_mult": 1.5}, "pm1", pattern="dm.a"),
        ]
    )
    ctx = {"pattern_key": "dm.a", "curator": "c01", "module": "dm", **ALWAYS}
    assert rt.apply_dm_alloc_multiplier(0.5, ctx) == pytest.approx(0.65)
    assert rt.apply_dm_alloc_multiplier(0.5, {**ctx, "curator": "c02"}) == 0.5
    decision = rt.decide_dm_alloc(ctx)
    assert decision.multiplier == 1.3 and [o.lesson_id for o in decision.learning["overrides"]] == [
        "dm1"
    ]
    # the PM call does not apply DM levers, and the DM call does not apply PM levers
    assert lessons(rt.apply_pattern_overrides({"size_fraction": 1.0}, ctx, "entry")) == ["pm1"]
    assert rt.apply_dm_alloc_multiplier("not a number", ctx) == "not a number"
    held = Runtime(holdout_fraction=1.0)
    held.install_index(rt.index)
    assert held.apply_dm_alloc_multiplier(0.5, {**ctx, "position_id": "p"}) == 0.5
    assert held.decide_dm_alloc({**ctx, "position_id": "p"}).learning["holdout"] is True


def test_importing_the_runtime_pulls_in_no_pipeline_dependency():
    heavy = (
        "prefect",
        "dbt",
        "great_expectations",
        "sqlalchemy",
        "numpy",
        "scipy",
        "pyarrow",
        "alembic",
        "typer",
        "rich",
        "pydantic_settings",
    )
    script = (
        f"import sys, leverloop.runtime; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- fuzz

PATTERNS = ("pm.a", "pm.b")
DIMENSIONS = {"regime": ("dip", "chop"), "bucket": ("micro", "mid"), "chain": ("sol",)}
CATEGORIES = ("entry", "add", "trim", "exit")


@st.composite
def override_entries(draw, section: str) -> dict[str, Any]:
    category = draw(st.sampled_from(CATEGORIES))
    family = "capital" if section == "strength" else "tuning"
    applicable = [
        lv for lv in REGISTRY.values() if lv.family == family and lv.applies_to(category, "pm")
    ]
    chosen = draw(st.lists(st.sampled_from(applicable), min_size=1, unique_by=lambda lv: lv.path))
    flat = {}
    for lv in chosen:
        if lv.kind is LeverKind.BARS:
            flat[lv.path] = draw(st.integers(int(lv.low), int(lv.high)))
        else:
            flat[lv.path] = draw(st.floats(lv.low, lv.high))
    levers: dict[str, Any] = {}
    for path, value in flat.items():
        head, _, tail = path.partition(".")
        if tail:
            levers.setdefault(head, {})[tail] = value
        else:
            levers[path] = value
    dims = draw(st.lists(st.sampled_from(sorted(DIMENSIONS)), unique=True, max_size=3))
    scope = {d: draw(st.sampled_from(DIMENSIONS[d])) for d in dims}
    return entry(
        scope,
        levers,
        draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True)),
        strength=draw(st.floats(0, 1)),
        category=category,
        pattern=draw(st.sampled_from(PATTERNS)),
        enabled=draw(st.sampled_from((True, True, True, False))),
    )


def _unique(entries: list[dict]) -> list[dict]:
    seen, out = set(), []
    for e in entries:
        key = (e["pattern_key"], e["action_category"], tuple(sorted(e["scope"].items())))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


@st.composite
def dm_entries(draw) -> dict[str, Any]:
    dims = draw(st.lists(st.sampled_from(sorted(DIMENSIONS)), unique=True, max_size=2))
    return entry(
        {d: draw(st.sampled_from(DIMENSIONS[d])) for d in dims},
        {"alloc_multiplier": draw(st.floats(0.7, 1.3))},
        draw(st.from_regex(r"dm[a-z]{1,6}", fullmatch=True)),
        strength=draw(st.floats(0, 1)),
        category=draw(st.sampled_from(("entry", "add"))),
        pattern=draw(st.sampled_from(PATTERNS)),
        module="dm",
    )


configs = st.builds(
    lambda strength, tuning, enabled, regimes: PmConfig.model_validate(
        {
            "pattern_strength_overrides": _unique(strength),
            "pattern_overrides": _unique(tuning),
            "learning_overrides_enabled": enabled,
            "learning_overrides_enabled_regimes": regimes,
        }
    ),
    st.lists(override_entries("strength") | dm_entries(), min_size=2, max_size=16),
    st.lists(override_entries("tuning"), min_size=1, max_size=16),
    st.sampled_from((True, True, True, False)),
    st.none() | st.lists(st.sampled_from(DIMENSIONS["regime"]), unique=True),
)
# mapped, so that ``valid | junk`` is two branches and valid values come up half the time
junk = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.lists(st.integers(), max_size=2)
).map(lambda value: value)
numbers = st.floats(min_value=1e-6, max_value=1e6) | st.integers(1, 10**6)
actions = st.fixed_dictionaries(
    {},
    optional={
        "size_fraction": numbers | junk,
        "entry_aggression": numbers | junk,
        "exit_aggression": numbers | junk,
        "tuning": st.none() | st.dictionaries(st.text(max_size=4), junk, max_size=3) | junk,
    },
)
contexts = st.fixed_dictionaries(
    {
        "pattern_key": st.one_of(st.sampled_from(PATTERNS), st.sampled_from(PATTERNS), junk),
        **{d: st.one_of(*[st.sampled_from(v)] * 3, junk) for d, v in DIMENSIONS.items()},
    },
    optional={"position_id": st.text(max_size=6) | junk},
)


@given(configs, actions, contexts, st.sampled_from((*CATEGORIES, "hold")), st.floats(0, 1))
def test_fuzz_never_raises_and_never_leaves_the_bounds(config, action, context, category, holdout):
    rt = Runtime(holdout_fraction=holdout)
    rt.install(config, 1)
    before = repr(action)
    out = rt.apply_pattern_overrides(action, context, category)
    assert repr(action) == before  # the caller's action is never modified
    if out is action:  # the error path
        event("error path")
        assert rt.errors == 1
        return
    learning = out["learning"]
    event("holdout" if learning["holdout"] else f"{len(learning['overrides'])} override(s)")
    assert learning["pm_config_version"] == 1
    for ov in learning["overrides"]:
        assert ov.action_category == category
        for path, value in ov.levers:
            assert REGISTRY[path].in_bounds(value) and REGISTRY[path].applies_to(category)
    if learning["holdout"] or not learning["overrides"]:
        assert repr({k: v for k, v in out.items() if k != "learning"}) == before
        return
    for name in ("size_fraction", "entry_aggression", "exit_aggression"):
        value = action.get(name)
        if type(value) in (int, float) and math.isfinite(value) and value > 0:
            ratio = out[name] / value
            assert 0.5 - 1e-9 <= ratio <= 1.5 + 1e-9
    tuning = next((ov for ov in learning["overrides"] if ov.section == "tuning"), None)
    if tuning is not None:
        for path, value in tuning.levers:
            head, _, tail = path.partition(".")
            delivered = out["tuning"][head][tail] if tail else out["tuning"][head]
            assert delivered == value and REGISTRY[path].in_bounds(delivered)


@given(configs, contexts, numbers)
def test_fuzz_dm_alloc_stays_within_its_bounds(config, context, coefficient):
    rt = Runtime(holdout_fraction=0.0)
    rt.install(config, 1)
    result = rt.apply_dm_alloc_multiplier(coefficient, {**context, "module": "dm"})
    assert 0.7 - 1e-9 <= result / coefficient <= 1.3 + 1e-9
    event("dm multiplier applied" if result != coefficient else "no dm multiplier")
    decision = rt.decide_dm_alloc(context)
    assert all(ov.module == "dm" for ov in decision.learning["overrides"])


def reference_lessons(config: PmConfig, context: dict, category: str) -> list[str]:
    """The matching rule written as a plain scan: the oracle for the compiled index."""
    if not config.learning_overrides_enabled:
        return []
    regimes = config.learning_overrides_enabled_regimes
    if regimes is not None and context.get("regime") not in regimes:
        return []
    winners = []
    for section in (config.pattern_strength_overrides, config.pattern_overrides):
        candidates = [
            e
            for e in section
            if e.module == "pm"
            and e.lesson.enabled
            and e.pattern_key == context.get("pattern_key")
            and e.action_category == category
            and all(context.get(k) == v for k, v in e.scope.items())
        ]
        if candidates:
            best = min(
                candidates,
                key=lambda e: (
                    -len(e.scope),
                    -e.lesson.strength,
                    sorted(e.scope.items()),
                    e.lesson.id,
                ),
            )
            winners.append(best.lesson.id)
    return winners


valid_contexts = st.fixed_dictionaries(
    {"pattern_key": st.sampled_from(PATTERNS)},
    optional={d: st.sampled_from(v) for d, v in DIMENSIONS.items()},
)


@given(configs, st.lists(st.tuples(valid_contexts, st.sampled_from(CATEGORIES)), max_size=30))
def test_the_compiled_index_picks_what_a_plain_scan_picks(config, decisions):
    rt = Runtime(holdout_fraction=0.0)
    rt.install(config, 1)
    for _ in range(2):  # the second pass is answered from each cell's memo
        for context, category in decisions:
            out = rt.apply_pattern_overrides({}, context, category)
            assert lessons(out) == reference_lessons(config, context, category)


def test_a_full_memo_still_answers_correctly(monkeypatch: pytest.MonkeyPatch):
    from leverloop.runtime import index

    monkeypatch.setattr(index, "MEMO_LIMIT", 2)
    rt = runtime_for(
        [entry({"regime": r}, {"size_mult": 1.2}, f"ls_{r}") for r in ("dip", "chop", "calm")]
    )
    for _ in range(2):
        for regime in ("dip", "chop", "calm", "other"):
            out = rt.apply_pattern_overrides({}, {"pattern_key": "pm.p", "regime": regime}, "entry")
            assert lessons(out) == ([] if regime == "other" else [f"ls_{regime}"])
    assert len(rt.index.pm[("pm.p", "entry")].memo) == 2


def test_database_urls_and_home_for_the_runtime(tmp_path, monkeypatch: pytest.MonkeyPatch):
    from leverloop.runtime import libpq_dsn, runtime_dir

    assert libpq_dsn("postgresql+psycopg://u:p@h:5432/db") == "postgresql://u:p@h:5432/db"
    assert libpq_dsn("postgresql://u@/db?host=/tmp") == "postgresql://u@/db?host=/tmp"
    assert libpq_dsn("host=h dbname=db") == "host=h dbname=db"
    monkeypatch.setenv("LEVERLOOP_HOME", str(tmp_path))
    assert runtime_dir() == tmp_path / "runtime"
    assert runtime_dir(tmp_path / "x") == tmp_path / "x" / "runtime"


def test_the_loader_checks_the_whole_config_without_revalidating_reused_entries():
    """Entries are validated one by one; what PmConfig checks across them (unique keys, flags,
    no unknown top-level keys) still rejects a bad version."""
    import json

    from leverloop.runtime.watcher import Fetched, VersionLoader

    entry = {
        "pattern_key": "pm.uptrend.S1.buy_flag",
        "action_category": "entry",
        "scope": {"regime": "dip"},
        "levers": {"size_mult": 1.2},
        "lesson": {"id": "ls_a", "strength": 0.5, "decay_halflife_hours": 720, "enabled": True},
    }
    text = json.dumps(entry)

    def fetched(rest: dict, entries: list[str]) -> Fetched:
        return Fetched(
            1, "h", json.dumps(rest), [("pattern_strength_overrides", t) for t in entries]
        )

    loader = VersionLoader()
    ok = loader.load(fetched({"learning_overrides_enabled": False}, [text]))
    assert ok.index.enabled is False
    loader.keep(ok)
    with pytest.raises(ValueError, match="appears twice"):
        loader.load(fetched({}, [text, text]))  # both entries come from the cache
    with pytest.raises(ValueError, match="surprise"):
        loader.load(fetched({"surprise": 1}, [text]))
    with pytest.raises(ValueError):
        loader.load(fetched({"learning_overrides_enabled_regimes": "dip"}, [text]))
