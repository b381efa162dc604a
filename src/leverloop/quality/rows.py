"""The input contract's row rules in SQL, and the move of breaking rows into quarantine.

Producers may insert straight into ``raw.trade_outcomes`` / ``raw.counterfactuals``, past the
Python validation of ``leverloop ingest``. Before dbt reads a new batch, ``quarantine_window``
moves every row of the batch that ``domain/outcomes.py`` would reject from raw into
``leverloop.quarantine`` with the same reason code, in one transaction (nothing is lost and
nothing is counted twice, whatever happens to the process).

The rules are written once more here, in SQL, because checks run in the database; they take
their constants (categories, modules, R/R range, text limits, future tolerance, delay range)
from ``domain/outcomes.py`` and follow its order, so the first broken rule names the reason.
``tests/integration/test_quarantine.py`` checks, for generated rows, that this classification
equals ``validate_outcome``/``validate_counterfactual_row`` on the same rows read back.

Where the column types make a Python rule impossible to break (``holdout`` is a boolean,
``pm_config_version`` a bigint), there is no SQL rule. One deliberate difference: a ``scope``
or ``applied_overrides`` stored as a JSON *string* (double-encoded JSON) is rejected here as
``invalid_scope`` / ``invalid_applied_overrides`` unless blank; the Python path would try to
parse the string. The file path never stores one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from leverloop.domain.outcomes import (
    ACTION_CATEGORIES,
    COUNTERFACTUAL_COLUMNS,
    FUTURE_TOLERANCE,
    MAX_DELAY_BARS,
    MAX_TEXT,
    MODULES,
    OUTCOME_COLUMNS,
    RR_MAX,
    RR_MIN,
)
from leverloop.store.landing import Target

_CF_RR = ("could_enter_better_rr", "could_exit_better_rr")
_CF_DELAYS = ("best_entry_delay_bars", "best_exit_delay_bars")


@dataclass(frozen=True)
class Rule:
    code: str
    broken: str  # SQL predicate over the row alias ``r``; true when the row breaks the rule
    reason: str  # SQL text expression: the readable reason


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _trimmed(col: str) -> str:
    return rf"regexp_replace(r.{col}, '^\s+|\s+$', '', 'g')"


def _text_rules(col: str, code: str) -> list[Rule]:
    """``_text``: present, at most MAX_TEXT characters, no whitespace inside (after trimming)."""
    return [
        Rule(code, rf"r.{col} is null or r.{col} ~ '^\s*$'", _lit(f"{col} is missing")),
        Rule(
            code,
            # whitespace inside the trimmed text, or too long once trimmed (cheap tests first)
            f"r.{col} ~ '\\S\\s+\\S' or (length(r.{col}) > {MAX_TEXT} "
            f"and length({_trimmed(col)}) > {MAX_TEXT})",
            f"{_lit(col + ' ')} || quote_literal(left({_trimmed(col)}, 40)) || "
            + _lit(f" must be at most {MAX_TEXT} characters without spaces"),
        ),
    ]


def _one_of(col: str, code: str, values: tuple[str, ...]) -> Rule:
    allowed = ", ".join(_lit(v) for v in values)
    return Rule(
        code,
        f"case when r.{col} in ({allowed}) then false "
        f"else coalesce(lower({_trimmed(col)}), '') not in ({allowed}) end",
        f"{_lit(col + ' ')} || coalesce(quote_literal(r.{col}), 'None') || "
        + _lit(f" is not one of {', '.join(values)}"),
    )


def _not_finite(col: str) -> str:
    return f"r.{col} in ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)"


def _number_rules(col: str, code: str, *, non_negative: bool = False) -> list[Rule]:
    rules = [Rule(code, _not_finite(col), f"{_lit(col + ' is not finite (')} || r.{col} || ')'")]
    if non_negative:
        rules.append(Rule(code, f"r.{col} < 0", f"{_lit(col + ' ')} || r.{col} || ' is negative'"))
    return rules


_BLANK_STRING = r"(jsonb_typeof({c}) = 'string' and ({c} #>> '{{}}') !~ '^\s*$')"

# normalize_scope: a flat object of scalars with non-empty keys, or a list of [key, value]
# pairs (how Parquet map columns arrive), or nothing.
_SCOPE_BROKEN = f"""
case jsonb_typeof(r.scope)
    when 'object' then exists (
        select 1 from jsonb_each(r.scope) e
         where e.key ~ '^\\s*$' or jsonb_typeof(e.value) in ('object', 'array'))
    when 'array' then exists (
        select 1 from jsonb_array_elements(r.scope) e
         where case when jsonb_typeof(e) <> 'array' then true
                    when jsonb_array_length(e) <> 2 then true
                    when jsonb_typeof(e -> 0) <> 'string' then true
                    when (e ->> 0) ~ '^\\s*$' then true
                    else jsonb_typeof(e -> 1) in ('object', 'array') end)
    when 'string' then {_BLANK_STRING.format(c="r.scope")}
    when 'null' then false
    else r.scope is not null
end
"""

OUTCOME_RULES: tuple[Rule, ...] = (
    *_text_rules("outcome_id", "missing_outcome_id"),
    *_text_rules("position_id", "missing_position_id"),
    _one_of("module", "invalid_module", MODULES),
    *_text_rules("pattern_key", "missing_pattern_key"),
    _one_of("action_category", "invalid_action_category", ACTION_CATEGORIES),
    Rule(
        "invalid_scope",
        _SCOPE_BROKEN,
        "'scope must be a flat JSON object of scalars with non-empty keys, got ' || "
        "left(r.scope::text, 80)",
    ),
    *(
        Rule("invalid_timestamp", f"r.{c} is null or not isfinite(r.{c})", _lit(f"{c} is missing"))
        for c in ("opened_at", "closed_at")
    ),
    Rule(
        "closed_before_opened",
        "r.closed_at < r.opened_at",
        "'closed_at ' || r.closed_at || ' is before opened_at ' || r.opened_at",
    ),
    Rule(
        "closed_in_future",
        "r.closed_at > cast(:now as timestamptz) + cast(:future_tolerance as interval)",
        "'closed_at ' || r.closed_at || ' is in the future'",
    ),
    Rule("rr_not_finite", "r.rr is null", "'rr is missing'"),
    Rule("rr_not_finite", _not_finite("rr"), "'rr is not finite (' || r.rr || ')'"),
    Rule(
        "rr_out_of_range",
        f"r.rr < {RR_MIN} or r.rr > {RR_MAX}",
        f"'rr ' || r.rr || {_lit(f' outside [{RR_MIN}, {RR_MAX}]')}",
    ),
    *_number_rules("hold_hours", "invalid_number", non_negative=True),
    *_number_rules("size_fraction", "invalid_number", non_negative=True),
    *_number_rules("return_pct", "invalid_number"),
    *_number_rules("max_drawdown_pct", "invalid_number"),
    Rule(
        "invalid_applied_overrides",
        "jsonb_typeof(r.applied_overrides) in ('number', 'boolean') or "
        + _BLANK_STRING.format(c="r.applied_overrides"),
        "'applied_overrides must be a JSON object or array, got ' || "
        "left(r.applied_overrides::text, 80)",
    ),
)


def _counterfactual_rules() -> list[Rule]:
    rules = _text_rules("outcome_id", "missing_outcome_id")
    for col in COUNTERFACTUAL_COLUMNS:
        if col in _CF_DELAYS:
            rules.append(
                Rule(
                    "invalid_counterfactual",
                    f"r.{col} < 0 or r.{col} > {MAX_DELAY_BARS}",
                    f"{_lit(col + ' ')} || r.{col} || {_lit(f' outside [0, {MAX_DELAY_BARS}]')}",
                )
            )
            continue
        rules += _number_rules(col, "invalid_counterfactual")
        if col in _CF_RR:
            rules.append(
                Rule(
                    "invalid_counterfactual",
                    f"r.{col} < 0 or r.{col} > {RR_MAX}",
                    f"{_lit(col + ' ')} || r.{col} || {_lit(f' outside [0, {RR_MAX}]')}",
                )
            )
    return rules


COUNTERFACTUAL_RULES: tuple[Rule, ...] = tuple(_counterfactual_rules())
RULES: dict[Target, tuple[Rule, ...]] = {
    "trade_outcomes": OUTCOME_RULES,
    "counterfactuals": COUNTERFACTUAL_RULES,
}
PAYLOAD_COLUMNS: dict[Target, tuple[str, ...]] = {
    "trade_outcomes": OUTCOME_COLUMNS,
    "counterfactuals": ("outcome_id", *COUNTERFACTUAL_COLUMNS),
}


def classify_sql(target: Target) -> tuple[str, str]:
    """SQL expressions (reason code, reason) over alias ``r``: NULL when the row is valid."""
    rules = RULES[target]
    code = "case " + " ".join(f"when {r.broken} then {_lit(r.code)}" for r in rules) + " end"
    reason = "case " + " ".join(f"when {r.broken} then {r.reason}" for r in rules) + " end"
    return code, reason


def _params(now: datetime) -> dict[str, object]:
    return {"now": now, "future_tolerance": f"{int(FUTURE_TOLERANCE.total_seconds())} seconds"}


def classify_window(
    conn: sa.Connection, target: Target, lo_seq: int, hi_seq: int, *, now: datetime
) -> dict[str, str]:
    """``outcome_id -> reason code`` for the rows of the window that break the contract."""
    code, _ = classify_sql(target)
    rows = conn.execute(
        sa.text(
            f"select r.outcome_id, {code} as code from raw.{target} r "
            "where r.ingest_seq > :lo and r.ingest_seq <= :hi"
        ),
        {"lo": lo_seq, "hi": hi_seq, **_params(now)},
    )
    return {oid: c for oid, c in rows if c is not None}


@dataclass(frozen=True)
class QuarantineResult:
    target: Target
    moved: int
    reasons: dict[str, int]


def quarantine_window(
    conn: sa.Connection,
    target: Target,
    lo_seq: int,
    hi_seq: int,
    *,
    now: datetime,
    source: str,
) -> QuarantineResult:
    """Move the window's rule-breaking rows from ``raw.<target>`` into quarantine.

    Runs in the caller's transaction: the delete and the insert commit together. A row already
    quarantined for the same reason with the same content (a producer re-sending it) is
    removed from raw and kept once in quarantine.
    """
    code, reason = classify_sql(target)
    payload = ", ".join(f"{_lit(c)}, m.{c}" for c in PAYLOAD_COLUMNS[target])
    rows = conn.execute(
        sa.text(
            f"""
            with checked as (
                select r.outcome_id, {code} as code, {reason} as reason
                  from raw.{target} r
                 where r.ingest_seq > :lo and r.ingest_seq <= :hi
            ), moved as (
                delete from raw.{target} t using checked c
                 where t.outcome_id = c.outcome_id and c.code is not null
                returning t.*, c.code, c.reason
            ), stored as (
                insert into leverloop.quarantine
                    (batch_id, source, target_table, outcome_id, reason_code, reason, payload,
                     fingerprint)
                select m.batch_id, :source, :target, m.outcome_id, m.code, m.reason, p.payload,
                       md5(:target || chr(31) || m.code || chr(31) || p.payload::text)
                  from moved m
                 cross join lateral (select jsonb_build_object({payload}) as payload) p
                on conflict (fingerprint) do nothing
            )
            select code, count(*) from moved group by code
            """
        ),
        {"lo": lo_seq, "hi": hi_seq, "source": source, "target": target, **_params(now)},
    ).all()
    reasons = {c: int(n) for c, n in rows}
    return QuarantineResult(target=target, moved=sum(reasons.values()), reasons=reasons)
