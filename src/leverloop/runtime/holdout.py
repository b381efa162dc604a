"""The measurement holdout: a deterministic, hashed fraction of positions that gets no overrides.

A position's bucket is a keyed BLAKE2b hash of its id mapped to [0, 1): the same in every
process, on every machine and after every restart (unlike Python's ``hash()``, which is
salted per process). Positions with ``bucket < fraction`` are held out. Changing the salt
draws a new, independent holdout; every PM process must use the same fraction and salt.
"""

from __future__ import annotations

import hashlib

DEFAULT_FRACTION = 0.10
DEFAULT_SALT = "leverloop-holdout-v1"
_SCALE = float(1 << 64)


def holdout_bucket(position_id: str, salt: str = DEFAULT_SALT) -> float:
    """A uniform number in [0, 1) fixed by the position id and the salt."""
    digest = hashlib.blake2b(
        position_id.encode("utf-8", "surrogatepass"), digest_size=8, key=salt.encode()
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


def is_holdout(
    position_id: str, fraction: float = DEFAULT_FRACTION, salt: str = DEFAULT_SALT
) -> bool:
    return holdout_bucket(position_id, salt) < fraction
