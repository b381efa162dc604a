"""Scopes: the situation an action happened in (regime, bucket, A_mode, chain, ...).

A scope is a flat mapping of dimension name to string value. A *scope subset* (a cell of the
scope lattice) keeps only some dimensions; the empty scope ``{}`` matches everything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Scope = dict[str, str]
ScopeKey = tuple[tuple[str, str], ...]


class ScopeError(ValueError):
    pass


def normalize_scope(value: Any) -> Scope:
    """Parse a scope from JSON text or a mapping; scalar values become strings.

    Raises ScopeError for anything that is not a flat object of scalars.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ScopeError(f"scope is not valid JSON ({exc.msg} at char {exc.pos})") from exc
    if isinstance(value, list) and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in value):
        value = dict(value)  # Parquet map columns arrive as key/value pairs
    if not isinstance(value, Mapping):
        raise ScopeError(f"scope must be a JSON object, got {type(value).__name__}")
    out: Scope = {}
    for key, val in value.items():
        if not isinstance(key, str) or not key.strip():
            raise ScopeError(f"scope keys must be non-empty strings, got {key!r}")
        if val is None:
            continue
        if isinstance(val, bool):
            out[key] = "true" if val else "false"
        elif isinstance(val, (str, int, float)):
            out[key] = str(val)
        else:
            raise ScopeError(f"scope value for {key!r} must be a scalar, got {type(val).__name__}")
    return out


def scope_key(scope: Mapping[str, str]) -> ScopeKey:
    """A hashable, order-independent key for a scope."""
    return tuple(sorted(scope.items()))


def scope_label(scope: Mapping[str, str]) -> str:
    """Human-readable form: ``bucket=micro, regime=dip`` (``*`` for the empty scope)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(scope.items())) or "*"


def canonical_json(scope: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(scope.items())), separators=(",", ":"), ensure_ascii=False)


def is_subscope(sub: Mapping[str, str], scope: Mapping[str, str]) -> bool:
    """True when every dimension of ``sub`` is present in ``scope`` with the same value."""
    return all(scope.get(k) == v for k, v in sub.items())


def scope_lattice(dimensions: list[str] | tuple[str, ...], max_depth: int) -> list[tuple[str, ...]]:
    """Every subset of ``dimensions`` with at most ``max_depth`` members, smallest first."""
    from itertools import combinations

    depth = max(0, min(max_depth, len(dimensions)))
    return [combo for size in range(depth + 1) for combo in combinations(dimensions, size)]
