"""Persistence of the v5 meta-learning: daily series in, fits out (half-lives, factors, weights)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from leverloop.learning.refit import MetaFit
from leverloop.learning.regime_weights import FACTORS
from leverloop.learning.series import DailySeries, PatternKey, build_series


def load_series(conn: sa.Connection) -> dict[tuple[PatternKey, str], DailySeries]:
    """The daily series of ``marts.pattern_daily_series`` as the last dbt build left it."""
    rows = conn.execute(
        sa.text(
            "select module, pattern_key, action_category, regime, day, n, sum_rr, sum_rr2, "
            "sum_hold_hours, segment_n, segment_sum_rr, segment_sum_rr2, segment_sum_hold_hours "
            "from marts.pattern_daily_series"
        )
    ).mappings()
    series, _ = build_series(rows)
    return series


def current_global_weights(conn: sa.Connection) -> dict[str, float]:
    """The newest all-regime weight of each factor, averaged over the action categories."""
    rows = conn.execute(
        sa.text(
            """
            select factor, avg(weight) as weight from (
                select distinct on (action_category, factor) action_category, factor, weight
                  from leverloop.factor_weights where regime = '*'
                 order by action_category, factor, version desc
            ) newest group by factor
            """
        )
    ).all()
    found = {r.factor: float(r.weight) for r in rows}
    return {f: found.get(f, 0.0) for f in FACTORS}


def save(conn: sa.Connection, run_id: str, as_of: datetime, meta: MetaFit) -> int | None:
    """Persist one refit inside the run's commit. Returns the new factor_weights version, if any."""
    halflives = [
        {
            "run": run_id,
            "as_of": as_of,
            "module": h.key[0],
            "pattern": h.key[1],
            "category": h.key[2],
            "status": h.fit.status,
            "hl": h.fit.half_life_days,
            "lo": h.fit.ci_low_days,
            "hi": h.fit.ci_high_days,
            "amp": h.fit.amplitude,
            "amp_z": h.fit.amplitude_z,
            "n_days": h.fit.n_days,
            "applied": h.applied_hours,
            "persistence": h.persistence,
        }
        for h in meta.halflives.values()
    ]
    if halflives:
        conn.execute(
            sa.text(
                """
                insert into leverloop.pattern_halflives (run_id, as_of, module, pattern_key,
                    action_category, status, half_life_days, ci_low_days, ci_high_days, amplitude,
                    amplitude_z, n_days, applied_halflife_hours, persistence)
                values (:run, :as_of, :module, :pattern, :category, :status, :hl, :lo, :hi, :amp,
                    :amp_z, :n_days, :applied, :persistence)
                """
            ),
            halflives,
        )
    factors = [
        {
            "run": run_id,
            "as_of": as_of,
            "module": m.key[0],
            "pattern": m.key[1],
            "category": m.key[2],
            "factor": m.factor_id,
            "loading": m.loading,
            "size": m.factor_size,
        }
        for m in meta.factors
    ]
    if factors:
        conn.execute(
            sa.text(
                """
                insert into leverloop.pattern_factors (run_id, as_of, module, pattern_key,
                    action_category, factor_id, loading, factor_size)
                values (:run, :as_of, :module, :pattern, :category, :factor, :loading, :size)
                """
            ),
            factors,
        )
    if not meta.weights:
        return None
    version = conn.execute(
        sa.text("select coalesce(max(version), 0) + 1 from leverloop.factor_weights")
    ).scalar_one()
    conn.execute(
        sa.text(
            """
            insert into leverloop.factor_weights (version, regime, action_category, factor, weight,
                confidence, method, run_id, n_pairs, folds)
            values (:version, :regime, :category, :factor, :weight, :confidence, :method, :run,
                :n_pairs, :folds)
            """
        ),
        [
            {
                "version": version,
                "regime": fit.regime,
                "category": fit.category,
                "factor": factor,
                "weight": weight,
                "confidence": fit.confidence,
                "method": "v5.1 refit: next-week R/R delta, time-series CV",
                "run": run_id,
                "n_pairs": fit.n_pairs,
                "folds": fit.folds,
            }
            for fit in meta.weights
            for factor, weight in fit.weights.items()
        ],
    )
    return version


def latest_halflives(conn: sa.Connection) -> list[sa.Row]:
    return conn.execute(
        sa.text(
            """
            select * from leverloop.pattern_halflives
             where run_id = (select run_id from leverloop.pattern_halflives order by as_of desc limit 1)
             order by module, pattern_key, action_category
            """
        )
    ).all()


def latest_factors(conn: sa.Connection) -> list[sa.Row]:
    return conn.execute(
        sa.text(
            """
            select * from leverloop.pattern_factors
             where run_id = (select run_id from leverloop.pattern_factors order by as_of desc limit 1)
             order by factor_id, module, pattern_key, action_category
            """
        )
    ).all()


def latest_weights(conn: sa.Connection) -> list[sa.Row]:
    return conn.execute(
        sa.text(
            """
            select * from leverloop.factor_weights
             where version = (select max(version) from leverloop.factor_weights)
             order by regime, action_category, factor
            """
        )
    ).all()
