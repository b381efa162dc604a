"""A cap on the combined exposure of one latent factor (v5.3).

Near-duplicate patterns fire on the same trades: each one's edge is the same evidence counted
again. Left alone, a group of three duplicates would each earn the full nudge and triple the
position's tilt. So, per (factor, scope, lever), the members' targets (in lever space, where
neutral is 0 and nudges add) are scaled by one common factor so that their sum is no larger in
magnitude than the largest single member's: the group together moves the PM as much as one
pattern with that edge would, and the members keep their relative weights.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def cap_exposure(
    targets: Mapping[K, float], groups: Mapping[K, Hashable]
) -> tuple[dict[K, float], dict[K, float]]:
    """Scaled targets and each key's scale (1.0 when uncapped). Keys without a group pass through.

    Non-finite targets count as no evidence (0) and never make a group's scale non-finite.
    """
    members: dict[Hashable, list[K]] = {}
    for key, group in groups.items():
        if key in targets:
            members.setdefault(group, []).append(key)
    out = {k: (v if v == v and abs(v) != float("inf") else 0.0) for k, v in targets.items()}
    scales = dict.fromkeys(targets, 1.0)
    for keys in members.values():
        if len(keys) < 2:
            continue
        total = sum(out[k] for k in keys)
        largest = max(abs(out[k]) for k in keys)
        if abs(total) > largest > 0.0:
            scale = largest / abs(total)
            for k in keys:
                out[k] *= scale
                scales[k] = scale
    return out, scales
