"""The hot path: ``apply_pattern_overrides`` and the DM ``alloc_multiplier`` over a compiled index.

A ``Runtime`` holds one compiled config version (``OverrideIndex``) behind a single reference.
Readers take that reference once per call, so a decision sees one version from start to end;
a new version is swapped in by one assignment (under a lock only writers take), and never
replaces a newer one. Nothing on the hot path does I/O: telemetry is appended to a bounded
in-memory buffer that a background writer drains.

Nothing here raises into the caller: any error returns the caller's input untouched (the
very object passed in) and is counted in ``errors``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

from leverloop.domain.pm_config import PmConfig
from leverloop.runtime.holdout import DEFAULT_FRACTION, DEFAULT_SALT, holdout_bucket
from leverloop.runtime.index import EMPTY_INDEX, CompiledOverride, OverrideIndex, compile_config
from leverloop.runtime.telemetry import TelemetryBuffer

log = logging.getLogger("leverloop.runtime")

_HOLDOUT_CACHE_LIMIT = 200_000
_ERROR_LOG_EVERY = 1000
_now = time.time


class DmDecision(NamedTuple):
    multiplier: float
    learning: dict[str, Any]


def _learning(version: int | None, holdout: bool, overrides: tuple) -> dict[str, Any]:
    return {"pm_config_version": version, "holdout": holdout, "overrides": overrides}


def outcome_fields(learning: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the PM writes into its outcome row for a decision (ARCHITECTURE.md section 3).

    ``learning`` is the ``"learning"`` block of a result (or ``DmDecision.learning``); for a
    holdout decision ``applied_overrides`` lists the overrides that were withheld
    (``"applied": false``), which is what lets monitoring compare like with like.
    """
    if not learning:
        return {"pm_config_version": None, "holdout": False, "applied_overrides": None}
    holdout = bool(learning.get("holdout"))
    overrides = learning.get("overrides") or ()
    return {
        "pm_config_version": learning.get("pm_config_version"),
        "holdout": holdout,
        "applied_overrides": [{**ov.as_json(), "applied": not holdout} for ov in overrides] or None,
    }


def _merge_tuning(current: Any, override: CompiledOverride) -> dict[str, Any]:
    """The action's tuning block with the override's tuning levers on top (groups merged)."""
    if current is None:
        tuning: dict[str, Any] = {}
    elif type(current) is dict or isinstance(current, Mapping):
        tuning = dict(current)
    else:
        raise TypeError(f"action['tuning'] must be a mapping, got {type(current).__name__}")
    tuning.update(override.tuning_values)
    for name, values in override.tuning_groups:
        group = tuning.get(name)
        merged = dict(group) if isinstance(group, Mapping) else {}
        merged.update(values)
        tuning[name] = merged
    return tuning


class Runtime:
    """One PM process's view of the published config: compiled index, holdout, counters."""

    def __init__(
        self,
        *,
        holdout_fraction: float = DEFAULT_FRACTION,
        holdout_salt: str = DEFAULT_SALT,
        telemetry: TelemetryBuffer | None = None,
    ) -> None:
        self._index: OverrideIndex = EMPTY_INDEX
        self._swap = threading.Condition(threading.Lock())
        self._count_lock = threading.Lock()
        self.telemetry = telemetry
        self.errors = 0
        self.last_error: str | None = None
        self.installed: deque[int] = deque(maxlen=1000)  # versions swapped in, in order
        self.set_holdout(holdout_fraction, holdout_salt)

    # ------------------------------------------------------------------ configuration

    def set_holdout(self, fraction: float, salt: str = DEFAULT_SALT) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"holdout fraction must be within [0, 1], got {fraction}")
        if not 0 < len(salt.encode()) <= 64:
            raise ValueError("holdout salt must be 1 to 64 bytes")
        self._holdout_fraction, self._holdout_salt = float(fraction), salt
        self._holdout_cache: dict[Any, bool] = {}

    @property
    def holdout_fraction(self) -> float:
        return self._holdout_fraction

    @property
    def index(self) -> OverrideIndex:
        return self._index

    @property
    def version(self) -> int | None:
        return self._index.version

    def install(self, config: PmConfig, version: int, content_hash: str | None = None) -> bool:
        """Compile and swap in ``version``; False (nothing changes) unless it is newer."""
        current = self._index.version
        if current is not None and version <= current:
            return False
        return self.install_index(compile_config(config, version, content_hash))

    def install_index(self, index: OverrideIndex) -> bool:
        if index.version is None:
            raise ValueError("an installed index needs a version")
        with self._swap:
            current = self._index.version
            if current is not None and index.version <= current:
                return False
            self._index = index  # the swap: one reference assignment
            self.installed.append(index.version)
            self._swap.notify_all()
        log.info("pm_config v%s active (%d overrides)", index.version, index.overrides)
        return True

    def wait_for_version(self, version: int, timeout: float) -> bool:
        """Block until a version >= ``version`` is active (for tools and tests, not the PM)."""
        with self._swap:
            return self._swap.wait_for(
                lambda: (self._index.version or 0) >= version, timeout=timeout
            )

    def stats(self) -> dict[str, Any]:
        index = self._index
        out: dict[str, Any] = {
            "version": index.version,
            "content_hash": index.content_hash,
            "overrides": index.overrides,
            "enabled": index.enabled,
            "errors": self.errors,
            "last_error": self.last_error,
            "holdout_fraction": self._holdout_fraction,
        }
        if self.telemetry is not None:
            out["telemetry_buffered"] = len(self.telemetry)
            out["telemetry_dropped"] = self.telemetry.dropped
        return out

    # ------------------------------------------------------------------ hot path

    def _is_holdout(self, position_id: Any) -> bool:
        cache = self._holdout_cache
        held = cache.get(position_id)
        if held is None:
            if len(cache) >= _HOLDOUT_CACHE_LIMIT:
                cache.clear()
            held = holdout_bucket(str(position_id), self._holdout_salt) < self._holdout_fraction
            cache[position_id] = held
        return held

    def _error(self, where: str, exc: Exception) -> None:
        with self._count_lock:
            self.errors += 1
            count = self.errors
        self.last_error = f"{where}: {type(exc).__name__}: {exc}"
        if count == 1 or count % _ERROR_LOG_EVERY == 0:
            log.warning("%s (error %d; the input was returned unchanged)", self.last_error, count)

    def apply_pattern_overrides(
        self, action: Mapping[str, Any], context: Mapping[str, Any], action_category: str
    ) -> Mapping[str, Any]:
        """A new action with the overrides of this decision applied, plus its ``learning`` block.

        ``size_fraction`` / ``entry_aggression`` / ``exit_aggression`` are scaled by the capital
        levers of the winning strength override, the tuning levers of the winning tuning
        override are merged into a copy of ``tuning``; held-out positions get neither. The
        contract is spelled out in the README ("Runtime integration").
        """
        try:
            index = self._index
            get = context.get
            out = dict(action)
            position_id = get("position_id")
            holdout = False
            if position_id is not None:
                holdout = self._holdout_cache.get(position_id)
                if holdout is None:
                    holdout = self._is_holdout(position_id)
            matched: tuple[CompiledOverride, ...] = ()
            if index.enabled and (index.regimes is None or get("regime") in index.regimes):
                cell = index.pm.get((get("pattern_key"), action_category))
                if cell is not None:
                    found = cell.memo.get(tuple(map(get, cell.dims)))
                    strength, tuning, matched = found or cell.resolve(get)
                    if matched and not holdout:
                        if strength is not None:
                            for name, mult in strength.scales:
                                value = out.get(name)
                                if type(value) is float or type(value) is int:
                                    out[name] = value * mult
                        if tuning is not None:
                            out["tuning"] = _merge_tuning(out.get("tuning"), tuning)
                    if matched and self.telemetry is not None:
                        self.telemetry.record(
                            (
                                _now(),
                                dict(context),
                                action_category,
                                index.version,
                                matched,
                                holdout,
                            )
                        )
            out["learning"] = {
                "pm_config_version": index.version,
                "holdout": holdout,
                "overrides": matched,
            }
            return out
        except Exception as exc:
            self._error("apply_pattern_overrides", exc)
            return action

    def decide_dm_alloc(
        self, context: Mapping[str, Any], action_category: str = "entry"
    ) -> DmDecision:
        """The DM ``alloc_multiplier`` for a decision (1.0 when none applies), with its learning block."""
        try:
            index = self._index
            get = context.get
            position_id = get("position_id")
            holdout = position_id is not None and self._is_holdout(position_id)
            hit = None
            if index.enabled and (index.regimes is None or get("regime") in index.regimes):
                cell = index.dm.get((get("pattern_key"), action_category))
                if cell is not None:
                    hit = cell.resolve(get)[0]
            if hit is None:
                return DmDecision(1.0, _learning(index.version, holdout, ()))
            if self.telemetry is not None:
                self.telemetry.record(
                    (_now(), dict(context), action_category, index.version, (hit,), holdout)
                )
            multiplier = 1.0 if holdout else hit.alloc_multiplier
            return DmDecision(multiplier, _learning(index.version, holdout, (hit,)))
        except Exception as exc:
            self._error("decide_dm_alloc", exc)
            return DmDecision(1.0, _learning(None, False, ()))

    def apply_dm_alloc_multiplier(
        self, coefficient: float, context: Mapping[str, Any], action_category: str = "entry"
    ) -> float:
        """The last step of the DM coefficient pipeline: ``coefficient * alloc_multiplier``."""
        multiplier = self.decide_dm_alloc(context, action_category).multiplier
        if multiplier == 1.0:
            return coefficient
        try:
            return coefficient * multiplier
        except Exception as exc:
            self._error("apply_dm_alloc_multiplier", exc)
            return coefficient
