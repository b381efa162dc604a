"""Input gate at scale: the GX input suites and the SQL quarantine over one large new batch.

    uv run python benchmarks/bench_gates.py [--rows 1000000] [--bad 500]

Lands ``--rows`` simulated outcomes plus ``--bad`` rule-breaking direct inserts as one batch,
then times the GX input checkpoint (computed in PostgreSQL) and the quarantine move. Uses a
throwaway database on the embedded server (or LEVERLOOP_DATABASE_URL's server).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from _common import scratch_database

from leverloop.pipeline.context import Context
from leverloop.quality.gx import validate_inputs, windows_of
from leverloop.quality.rows import quarantine_window
from leverloop.settings import Settings
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.writer import write_outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--bad", type=int, default=500)
    args = parser.parse_args()
    with scratch_database("gates") as db:
        sim = simulate(SimConfig(seed=1, outcomes=args.rows, days=56))
        write_outcomes(db.engine, sim)
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    """
                    insert into raw.trade_outcomes (outcome_id, position_id, module, pattern_key,
                        action_category, scope, opened_at, closed_at, rr)
                    select 'bad-' || g, 'p-' || g, 'pm', 'pm.x', 'entry', '{}',
                           :o - g * interval '1 second', :c, 'NaN'
                      from generate_series(1, :n) g
                    """
                ),
                {"n": args.bad, "o": sim.config.end, "c": sim.config.end},
            )
        with tempfile.TemporaryDirectory() as home:
            settings = Settings(
                database_url=db.url.render_as_string(hide_password=False), home=Path(home)
            )
            ctx = Context(settings=settings, db=db)
            now = datetime.now(UTC)
            t = time.perf_counter()
            import great_expectations  # noqa: F401  (once per process: not part of a gate)

            startup = time.perf_counter() - t
            t = time.perf_counter()
            report = validate_inputs(ctx, "bench", as_of=sim.config.end, now=now)
            gate = time.perf_counter() - t
            t = time.perf_counter()
            with db.engine.begin() as conn:
                moved = {
                    target: quarantine_window(conn, target, lo, hi, now=now, source="bench")
                    for target, (lo, hi) in windows_of(report).items()
                }
            quarantine = time.perf_counter() - t
        rows = args.rows + args.bad
        print(f"import great_expectations: {startup:.2f} s (once per process)")
        print(
            f"GX input gate over {rows:,} new outcomes (+ {args.rows:,} counterfactuals): "
            f"{gate:.2f} s incl. snapshot and Data Docs; blocked={report.blocked}"
        )
        for line in report.reasons() + report.warnings():
            print(f"  {line}")
        print(
            f"SQL quarantine of the batch: {quarantine:.2f} s, moved "
            f"{sum(m.moved for m in moved.values()):,} rows = {rows / quarantine:,.0f} rows/s checked"
        )


if __name__ == "__main__":
    main()
