"""Cadence invariance on a simulated month: hourly vs daily loop runs over the same outcomes.

The marts measure evidence over whole UTC days up to ``as_of``, so every run within one day
sees the same marts. This experiment builds them once per simulated day (real dbt on a scratch
database) and runs the lever engine over them twice: once per day, and once per hour (24 runs
on each day's marts), each cadence carrying its own lever state and lessons forward exactly as
the loop does. It prints how far apart the two cadences end, per lever.

    uv run python benchmarks/bench_cadence.py [--days 30] [--outcomes 32000]
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from _common import scratch_database

from leverloop.domain.engine import EnginePolicy, run_engine
from leverloop.domain.levers import REGISTRY, LeverKind
from leverloop.pipeline.context import Context
from leverloop.pipeline.dbt import DbtVars, build_marts
from leverloop.settings import get_settings
from leverloop.simulator import SimConfig, simulate
from leverloop.simulator.writer import write_outcomes
from leverloop.store import levers


class Cadence:
    def __init__(self, name: str, start) -> None:
        self.name, self.states, self.lessons, self.previous = name, [], {}, start
        self.seconds = 0.0

    def step(self, evidence, counterfactuals, at) -> None:
        began = time.perf_counter()
        result = run_engine(
            evidence,
            counterfactuals,
            self.states,
            self.lessons,
            as_of=at,
            previous_as_of=self.previous,
            policy=EnginePolicy(),
        )
        self.states, self.lessons, self.previous = result.states, result.lessons, at
        self.seconds += time.perf_counter() - began

    def levers(self) -> dict[tuple[str, str], float]:
        return {(s.lesson_id, s.lever): s.value for s in self.states}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--outcomes", type=int, default=32_000)
    parser.add_argument("--lookback-days", type=int, default=28)
    args = parser.parse_args()

    config = SimConfig(outcomes=args.outcomes, days=args.days)
    sim = simulate(config)
    with scratch_database("cadence") as db:
        ctx = Context(settings=get_settings(), db=db)
        write_outcomes(ctx.engine, sim)
        first = config.start + timedelta(days=7)  # a week of history before the first run
        start = first - timedelta(days=1)  # both cadences integrate from here
        daily, hourly = Cadence("daily", start), Cadence("hourly", start)
        dbt_seconds, day = 0.0, first
        while day <= config.end:
            began = time.perf_counter()
            build_marts(ctx, DbtVars(as_of=day, lookback_days=args.lookback_days))
            dbt_seconds += time.perf_counter() - began
            with ctx.engine.connect() as conn:
                evidence = levers.load_edge_evidence(conn)
                counterfactuals = levers.load_counterfactual_evidence(conn)
            daily.step(evidence, counterfactuals, day)
            for hour in range(24 if day < config.end else 1):
                at = day + timedelta(hours=hour)
                if at > hourly.previous:
                    hourly.step(evidence, counterfactuals, at)
            day += timedelta(days=1)

    a, b = daily.levers(), hourly.levers()
    common = a.keys() & b.keys()
    gaps = sorted(((abs(a[k] - b[k]), k) for k in common), reverse=True)
    only = (a.keys() ^ b.keys()) - common
    near_neutral_only = [k for k in only if abs((a.get(k) or b.get(k)) - 1.0) < 0.02]
    print(f"simulated month: {args.days} days, {args.outcomes:,} outcomes, runs from day 7")
    print(f"dbt builds: {args.days - 6}, {dbt_seconds:.1f} s in all")
    print(
        f"engine: daily {daily.seconds:.1f} s over {args.days - 6} runs, "
        f"hourly {hourly.seconds:.1f} s over {(args.days - 7) * 24 + 1} runs"
    )
    print(f"levers in state: daily {len(a)}, hourly {len(b)}, in both {len(common)}")
    print(
        f"levers in one cadence only: {len(only)} ({len(near_neutral_only)} of them within 0.02 of neutral)"
    )
    if gaps:
        values = [g for g, _ in gaps]
        print(
            f"|daily - hourly| over common levers: max {values[0]:.4f}, "
            f"p99 {values[int(0.01 * len(values))]:.4f}, mean {sum(values) / len(values):.5f}"
        )
        by_kind: dict[str, list[float]] = {}
        published_bar_gaps = []
        for gap, (lesson, lever) in gaps:
            kind = REGISTRY[lever].kind.value
            by_kind.setdefault(kind, []).append(gap)
            if REGISTRY[lever].kind is LeverKind.BARS:
                published = REGISTRY[lever].clamp
                published_bar_gaps.append(
                    abs(published(a[(lesson, lever)]) - published(b[(lesson, lever)]))
                )
        for kind, values in sorted(by_kind.items()):
            print(
                f"  {kind:11} {len(values):4} levers: max |gap| {max(values):.4f}, mean {sum(values) / len(values):.5f}"
            )
        if published_bar_gaps:
            differ = sum(1 for g in published_bar_gaps if g > 0)
            print(
                f"  bar levers as published (whole bars): {differ} of {len(published_bar_gaps)} differ"
            )
        for gap, (lesson, lever) in gaps[:5]:
            print(
                f"  {gap:.4f}  {lever:28} {lesson}  daily {a[(lesson, lever)]:.4f} hourly {b[(lesson, lever)]:.4f}"
            )


if __name__ == "__main__":
    main()
