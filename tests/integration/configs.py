"""pm_config fixtures shared by the integration tests."""

from __future__ import annotations

from leverloop.domain.pm_config import PmConfig


def one_lever_config(size: float) -> PmConfig:
    """A config with a single size_mult override of ``size``."""
    return PmConfig.model_validate(
        {
            "pattern_strength_overrides": [
                {
                    "pattern_key": "pm.a",
                    "action_category": "entry",
                    "scope": {},
                    "levers": {"size_mult": size},
                    "lesson": {"id": "ls_a", "strength": 0.4, "decay_halflife_hours": 720},
                }
            ]
        }
    )
