"""The input contract for closed trade outcomes and their counterfactuals (ARCHITECTURE.md §3).

``validate_outcome`` turns one loosely typed input row (CSV strings or Parquet values) into a
normalised row, or a ``Rejection`` with a stable reason code and a readable message. It is
pure: the caller supplies ``now`` for the not-in-the-future rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from leverloop.domain.scope import ScopeError, normalize_scope

ACTION_CATEGORIES: tuple[str, ...] = ("entry", "add", "trim", "exit")
MODULES: tuple[str, ...] = ("pm", "dm")
RR_MIN, RR_MAX = -20.0, 100.0
MAX_DELAY_BARS = 10_000
FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_TEXT = 256

OUTCOME_REQUIRED: tuple[str, ...] = (
    "outcome_id",
    "position_id",
    "module",
    "pattern_key",
    "action_category",
    "scope",
    "opened_at",
    "closed_at",
    "rr",
)
OUTCOME_OPTIONAL: tuple[str, ...] = (
    "return_pct",
    "max_drawdown_pct",
    "hold_hours",
    "size_fraction",
    "pm_config_version",
    "applied_overrides",
    "holdout",
)
OUTCOME_COLUMNS: tuple[str, ...] = OUTCOME_REQUIRED + OUTCOME_OPTIONAL

COUNTERFACTUAL_COLUMNS: tuple[str, ...] = (
    "could_enter_better_rr",
    "best_entry_delay_bars",
    "could_exit_better_rr",
    "best_exit_delay_bars",
    "better_entry_ts",
    "better_entry_ox",
    "better_entry_dx",
    "better_entry_edx",
    "better_exit_ts",
    "better_exit_ox",
    "better_exit_dx",
    "better_exit_edx",
)
_CF_RR = ("could_enter_better_rr", "could_exit_better_rr")
_CF_DELAYS = ("best_entry_delay_bars", "best_exit_delay_bars")

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n", ""}


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str


class _Reject(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.rejection = Rejection(code, message)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(row: Mapping[str, Any], name: str, code: str) -> str:
    value = row.get(name)
    if _blank(value):
        raise _Reject(code, f"{name} is missing")
    text = str(value).strip()
    if len(text) > MAX_TEXT or any(ch.isspace() for ch in text):
        raise _Reject(
            code, f"{name} {text[:40]!r} must be at most {MAX_TEXT} characters without spaces"
        )
    return text


def _float(value: Any, name: str, code: str, *, required: bool) -> float | None:
    if _blank(value):
        if required:
            raise _Reject(code, f"{name} is missing")
        return None
    if isinstance(value, bool):
        raise _Reject(code, f"{name} must be a number, got a boolean")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Reject(code, f"{name} {str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number):
        raise _Reject(code, f"{name} is not finite ({number})")
    return number


def _int(value: Any, name: str, code: str) -> int | None:
    number = _float(value, name, code, required=False)
    if number is None:
        return None
    if number != int(number):
        raise _Reject(code, f"{name} {number} is not an integer")
    return int(number)


def parse_timestamp(value: Any) -> datetime:
    """Parse ISO-8601 text or a datetime; naive values are taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value.strip())
    else:
        raise ValueError(f"unsupported timestamp type {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _timestamp(row: Mapping[str, Any], name: str) -> datetime:
    value = row.get(name)
    if _blank(value):
        raise _Reject("invalid_timestamp", f"{name} is missing")
    try:
        return parse_timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise _Reject(
            "invalid_timestamp", f"{name} {str(value)[:40]!r} is not an ISO-8601 timestamp"
        ) from None


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Reject("invalid_holdout", f"{name} {str(value)[:20]!r} is not a boolean")


def _json_value(value: Any, name: str) -> Any:
    import json

    if _blank(value):
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise _Reject("invalid_applied_overrides", f"{name} is not valid JSON") from None
    if isinstance(value, (list, dict)):
        return value
    raise _Reject("invalid_applied_overrides", f"{name} must be JSON, got {type(value).__name__}")


def validate_counterfactual(row: Mapping[str, Any]) -> dict[str, Any]:
    """Normalise the counterfactual columns of a row (all optional, but each must be valid)."""
    out: dict[str, Any] = {}
    for name in COUNTERFACTUAL_COLUMNS:
        value = row.get(name)
        if name in _CF_DELAYS:
            delay = _int(value, name, "invalid_counterfactual")
            if delay is not None and not 0 <= delay <= MAX_DELAY_BARS:
                raise _Reject(
                    "invalid_counterfactual", f"{name} {delay} outside [0, {MAX_DELAY_BARS}]"
                )
            out[name] = delay
        else:
            number = _float(value, name, "invalid_counterfactual", required=False)
            if name in _CF_RR and number is not None and not 0.0 <= number <= RR_MAX:
                raise _Reject("invalid_counterfactual", f"{name} {number} outside [0, {RR_MAX}]")
            out[name] = number
    return out


def validate_outcome(row: Mapping[str, Any], *, now: datetime) -> dict[str, Any] | Rejection:
    """Check one outcome row against the contract; return the normalised row or a Rejection."""
    try:
        outcome_id = _text(row, "outcome_id", "missing_outcome_id")
        position_id = _text(row, "position_id", "missing_position_id")
        module = str(row.get("module") or "").strip().lower()
        if module not in MODULES:
            raise _Reject(
                "invalid_module", f"module {row.get('module')!r} is not one of {', '.join(MODULES)}"
            )
        pattern_key = _text(row, "pattern_key", "missing_pattern_key")
        category = str(row.get("action_category") or "").strip().lower()
        if category not in ACTION_CATEGORIES:
            raise _Reject(
                "invalid_action_category",
                f"action_category {row.get('action_category')!r} is not one of {', '.join(ACTION_CATEGORIES)}",
            )
        try:
            scope = normalize_scope(row.get("scope"))
        except ScopeError as exc:
            raise _Reject("invalid_scope", str(exc)) from None
        opened_at = _timestamp(row, "opened_at")
        closed_at = _timestamp(row, "closed_at")
        if closed_at < opened_at:
            raise _Reject(
                "closed_before_opened",
                f"closed_at {closed_at.isoformat()} is before opened_at {opened_at.isoformat()}",
            )
        if closed_at > now + FUTURE_TOLERANCE:
            raise _Reject("closed_in_future", f"closed_at {closed_at.isoformat()} is in the future")
        rr = _float(row.get("rr"), "rr", "rr_not_finite", required=True)
        assert rr is not None
        if not RR_MIN <= rr <= RR_MAX:
            raise _Reject("rr_out_of_range", f"rr {rr} outside [{RR_MIN}, {RR_MAX}]")
        hold_hours = _float(row.get("hold_hours"), "hold_hours", "invalid_number", required=False)
        if hold_hours is None:
            hold_hours = (closed_at - opened_at).total_seconds() / 3600.0
        elif hold_hours < 0:
            raise _Reject("invalid_number", f"hold_hours {hold_hours} is negative")
        size_fraction = _float(
            row.get("size_fraction"), "size_fraction", "invalid_number", required=False
        )
        if size_fraction is not None and size_fraction < 0:
            raise _Reject("invalid_number", f"size_fraction {size_fraction} is negative")
        version = _int(
            row.get("pm_config_version"), "pm_config_version", "invalid_pm_config_version"
        )
        return {
            "outcome_id": outcome_id,
            "position_id": position_id,
            "module": module,
            "pattern_key": pattern_key,
            "action_category": category,
            "scope": scope,
            "opened_at": opened_at,
            "closed_at": closed_at,
            "rr": rr,
            "return_pct": _float(
                row.get("return_pct"), "return_pct", "invalid_number", required=False
            ),
            "max_drawdown_pct": _float(
                row.get("max_drawdown_pct"), "max_drawdown_pct", "invalid_number", required=False
            ),
            "hold_hours": hold_hours,
            "size_fraction": size_fraction,
            "pm_config_version": version,
            "applied_overrides": _json_value(row.get("applied_overrides"), "applied_overrides"),
            "holdout": _bool(row.get("holdout"), "holdout"),
        }
    except _Reject as rej:
        return rej.rejection


def validate_counterfactual_row(row: Mapping[str, Any]) -> dict[str, Any] | Rejection:
    """A row of a counterfactuals file: ``outcome_id`` plus the counterfactual columns."""
    try:
        outcome_id = _text(row, "outcome_id", "missing_outcome_id")
        return {"outcome_id": outcome_id, **validate_counterfactual(row)}
    except _Reject as rej:
        return rej.rejection


def counterfactual_part(row: Mapping[str, Any]) -> dict[str, Any] | Rejection | None:
    """The counterfactual columns carried on an outcome row, if any are filled."""
    if all(_blank(row.get(name)) for name in COUNTERFACTUAL_COLUMNS):
        return None
    return validate_counterfactual_row(row)
