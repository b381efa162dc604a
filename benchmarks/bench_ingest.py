"""Ingest throughput: a CSV file through `leverloop ingest`, and the simulator's bulk landing path.

    uv run python benchmarks/bench_ingest.py [--rows 200000]

Uses a throwaway database on the embedded server (or LEVERLOOP_DATABASE_URL's server).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from _common import scratch_database

from leverloop.ingest import ingest_file
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.writer import write_outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with scratch_database() as db:
        sim = simulate(SimConfig(seed=1, outcomes=args.rows, days=56))
        t = time.perf_counter()
        result = write_outcomes(db.engine, sim)
        landing = time.perf_counter() - t
        print(
            f"simulator landing: {result.outcomes.landed:,} rows in {landing:.2f} s = {args.rows / landing:,.0f} rows/s"
        )

        scopes = sim.scope_dicts()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "outcomes.csv"
            with open(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(
                    [
                        "outcome_id",
                        "position_id",
                        "module",
                        "pattern_key",
                        "action_category",
                        "scope",
                        "opened_at",
                        "closed_at",
                        "rr",
                    ]
                )
                for i in range(sim.n):
                    arm = sim.arms[sim.arm_index[i]]
                    closed = sim.closed_at(i)
                    writer.writerow(
                        [
                            f"file-{i}",
                            f"p{i}",
                            arm.module,
                            arm.pattern_key,
                            arm.category,
                            str(scopes[i]).replace("'", '"'),
                            closed.isoformat(),
                            closed.isoformat(),
                            sim.rr[i],
                        ]
                    )
            t = time.perf_counter()
            report = ingest_file(db.engine, path)
            elapsed = time.perf_counter() - t
            print(
                f"file ingest (validate + land): {report.landed:,} rows in {elapsed:.2f} s = {report.read / elapsed:,.0f} rows/s"
            )
            t = time.perf_counter()
            again = ingest_file(db.engine, path)
            elapsed = time.perf_counter() - t
            print(
                f"file re-ingest (all duplicates): {again.duplicate:,} rows in {elapsed:.2f} s = {again.read / elapsed:,.0f} rows/s"
            )


if __name__ == "__main__":
    main()
