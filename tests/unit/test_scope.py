from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leverloop.domain.scope import (
    ScopeError,
    is_subscope,
    normalize_scope,
    scope_key,
    scope_label,
    scope_lattice,
)


def test_normalize_scope_accepts_json_and_mappings():
    assert normalize_scope('{"regime": "dip", "n": 3, "hot": true, "x": null}') == {
        "regime": "dip",
        "n": "3",
        "hot": "true",
    }
    assert normalize_scope(None) == {}
    assert normalize_scope([("a", "b")]) == {"a": "b"}  # parquet map
    with pytest.raises(ScopeError):
        normalize_scope('"text"')


def test_key_and_label_ignore_order():
    a, b = {"regime": "dip", "bucket": "micro"}, {"bucket": "micro", "regime": "dip"}
    assert scope_key(a) == scope_key(b)
    assert scope_label(a) == "bucket=micro, regime=dip"
    assert scope_label({}) == "*"
    assert is_subscope({"regime": "dip"}, a) and not is_subscope({"regime": "up"}, a)


@given(st.lists(st.text(min_size=1, max_size=5), unique=True, max_size=6), st.integers(0, 6))
def test_lattice_has_every_small_subset_once(dims, depth):
    lattice = scope_lattice(dims, depth)
    expected = sum(comb(len(dims), k) for k in range(min(depth, len(dims)) + 1))
    assert len(lattice) == expected == len(set(lattice))
    assert all(len(s) <= depth for s in lattice)
