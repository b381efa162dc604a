"""pm_config: the seed example parses as is; anything out of bounds or out of place is named and rejected."""

from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from leverloop.domain.levers import LEVERS, REGISTRY, flatten_levers, nest_levers
from leverloop.domain.pm_config import PmConfig, json_schema, parse_config

# The storage-shape example from ../shared/seed/PM_Learning_Lever_Map.md section 2.2, verbatim.
SEED_EXAMPLE = """
{"pattern_overrides": [
  {
    "pattern_key": "pm.uptrend.S1.buy_flag",
    "action_category": "entry",
    "scope": {"regime": "recover|dip|micro_leads", "bucket": "micro", "A_mode": "normal"},
    "levers": {
      "entry_delay_bars": 1,
      "phase1_frac_mult": 0.85,
      "phase_scaling": {"S1": 0.9, "S2": 1.05, "S3": 1.1},
      "trim_delay_mult": 1.1,
      "trail_mult": 0.95,
      "panic_trigger_mult": 1.05
    },
    "lesson": {
      "id": "ls_12345",
      "strength": 0.32,
      "decay_halflife_hours": 720,
      "enabled": true
    }
  }
]}
"""


def strength_entry(**levers):
    return {
        "pattern_key": "pm.uptrend.S1.buy_flag",
        "action_category": "entry",
        "scope": {"regime": "dip"},
        "levers": levers,
        "lesson": {"id": "ls_1", "strength": 0.5, "decay_halflife_hours": 720},
    }


def test_seed_example_parses_as_is():
    config = parse_config(SEED_EXAMPLE)
    entry = config.pattern_overrides[0]
    assert entry.flat_levers()["phase_scaling.S2"] == 1.05
    assert entry.lesson.decay_halflife_hours == 720


@pytest.mark.parametrize(
    ("levers", "fragment"),
    [
        ({"size_mult": 1.7}, "size_mult"),
        ({"size_mult": 0.2}, "size_mult"),
        ({"exit_aggression_mult": 1.1}, "does not apply"),
        ({"warp_drive": 1.0}, "warp_drive"),
        ({}, "no levers"),
        ({"size_mult": float("nan")}, "size_mult"),
    ],
)
def test_bad_strength_entries_are_rejected_naming_the_entry(levers, fragment):
    with pytest.raises(ValidationError) as info:
        PmConfig.model_validate({"pattern_strength_overrides": [strength_entry(**levers)]})
    text = str(info.value)
    assert fragment in text
    assert "pm.uptrend.S1.buy_flag/entry" in text


def test_tuning_bounds_and_types_are_enforced():
    doc = json.loads(SEED_EXAMPLE)
    bad = copy.deepcopy(doc)
    bad["pattern_overrides"][0]["levers"]["phase_scaling"]["S3"] = 1.4
    with pytest.raises(ValidationError, match="S3"):
        parse_config(bad)
    bad = copy.deepcopy(doc)
    bad["pattern_overrides"][0]["levers"]["entry_delay_bars"] = 1.5
    with pytest.raises(ValidationError, match="entry_delay_bars"):
        parse_config(bad)
    bad = copy.deepcopy(doc)
    bad["pattern_overrides"][0]["action_category"] = "trim"
    with pytest.raises(ValidationError, match="does not apply"):
        parse_config(bad)


def test_duplicate_keys_are_rejected():
    entry = strength_entry(size_mult=1.1)
    with pytest.raises(ValidationError, match="appears twice"):
        PmConfig.model_validate({"pattern_strength_overrides": [entry, entry]})


def test_content_hash_ignores_key_order_and_changes_with_content():
    a = PmConfig.model_validate({"pattern_strength_overrides": [strength_entry(size_mult=1.1)]})
    b = parse_config(json.loads(a.canonical_json()))
    assert a.content_hash() == b.content_hash()
    c = PmConfig.model_validate({"pattern_strength_overrides": [strength_entry(size_mult=1.2)]})
    assert c.content_hash() != a.content_hash()


def test_json_schema_carries_every_lever_and_its_bounds():
    schema = json.dumps(json_schema())
    for lever in LEVERS:
        assert lever.name in schema
    assert '"maximum": 1.5' in schema and '"minimum": 0.5' in schema


def test_flatten_and_nest_are_inverse():
    block = {
        "phase_scaling": {"S1": 0.9},
        "trail_mult": 1.1,
        "signal_thresholds": {"min_ts_for_add": 0.4},
    }
    assert nest_levers(flatten_levers(block)) == block
    assert set(flatten_levers(block)) <= set(REGISTRY)
