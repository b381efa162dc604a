"""Capital levers from edge: the lever map's update rule with an explicit equilibrium.

The map's rule, per update: ``mult_new = clamp(mult_old * (1 + k * sign(edge) * f(|edge|, confidence)), min, max)``.
Written in log space with time made explicit (see ``dynamics.py``) it is the relaxation

    d ln(mult) / dt = lambda * (target - ln(mult)),    lambda = ln 2 / half_life

whose per-day nudge is ``k * sign(edge) * f`` with ``f = tanh(|edge| * confidence * persistence / edge_scale)``
in [0, 1] (``|edge|`` taken at its lower confidence bound, ``|edge| - edge_sd``) and
``k = lambda * 24h * ln(bound)``: a steady edge settles the multiplier at
``exp(target)``, ``target = sign(edge) * ln(bound) * f``, strictly inside the lever's bounds, and
with no fresh evidence (``f = 0``) the lever decays back to 1.0 with the same half-life. An
edge of 0.1 R at full confidence settles ``size_mult`` near 1.13, 0.3 R near 1.35; a noise-level
edge of 0.03 R moves it by about 0.04.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from leverloop.domain.levers import Lever


@dataclass(frozen=True)
class CapitalPolicy:
    edge_scale: float = 0.3  # |edge| (R) at which f reaches tanh(1) = 0.76 of the bound
    lcb_sd: float = 1.0  # size by the edge minus this many posterior sds
    default_halflife_hours: float = 720.0  # until v5.2 fits one per pattern
    publish_epsilon: float = 0.005  # capital levers closer than this to 1.0 are not published


def evidence_strength(
    edge: float, confidence: float, persistence: float, policy: CapitalPolicy, edge_sd: float = 0.0
) -> float:
    """``f(|edge|, confidence)`` in [0, 1], sized by the edge's lower confidence bound
    ``|edge| - lcb_sd * edge_sd``: an edge barely distinguishable from noise hardly moves a
    lever, a well-measured one moves it fully. NaN/inf inputs give 0 (no evidence)."""
    if not all(math.isfinite(x) for x in (edge, confidence, persistence, edge_sd)):
        return 0.0
    conf = min(1.0, max(0.0, confidence))
    lower = max(0.0, abs(edge) - policy.lcb_sd * max(edge_sd, 0.0))
    return math.tanh(lower * conf * max(persistence, 0.0) / policy.edge_scale)


def target(lever: Lever, edge: float, strength: float) -> float:
    """Equilibrium of ``ln(mult)`` for this evidence (0 = neutral)."""
    if strength <= 0.0 or not math.isfinite(edge) or edge == 0.0:
        return 0.0
    bound = lever.high if edge > 0 else lever.low
    return math.log(bound) * min(1.0, strength)


def k_per_day(lever: Lever, halflife_hours: float) -> float:
    """The map's ``k`` implied by the half-life: the largest relative nudge per day."""
    return (math.log(2.0) / halflife_hours) * 24.0 * math.log(lever.high)
