"""The PM side: hot-path latency, publish-to-visible latency, and a naive per-decision query.

    uv run python benchmarks/bench_runtime.py [--overrides 10000] [--calls 200000]

1. ``apply_pattern_overrides`` with N overrides loaded (telemetry on): p50/p99 per call, timed
   one call at a time with ``perf_counter_ns`` (the timer's own cost is printed), and calls/s
   of one core in a plain loop.
2. Publish-to-visible through NOTIFY: ``store.configs.publish`` commits a new version; the time
   from just before the commit until the watcher has swapped it in, after one warm-up publish
   (a small config, and the N-override one with 1% or most of its entries changed).
3. The same decisions made by one SQL query each against the published config (what a naive
   integration would do), on one prepared connection, and the ratio to the hot path.

Uses a throwaway database on the embedded server (or LEVERLOOP_DATABASE_URL's server).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from itertools import combinations
from typing import Any

import psycopg
from _common import scratch_database

from leverloop.domain.levers import LEVERS, Family, LeverKind
from leverloop.domain.pm_config import PmConfig
from leverloop.runtime import ConfigWatcher, Runtime, TelemetryBuffer, TelemetryWriter
from leverloop.store import configs
from leverloop.store.database import Database

DIMENSIONS = {
    "regime": ("trend_up", "chop", "dip", "recover"),
    "bucket": ("micro", "small", "mid", "large"),
    "A_mode": ("normal", "aggressive", "patient"),
    "chain": ("sol", "eth", "base", "bsc"),
}
CATEGORIES = ("entry", "add", "trim", "exit")
SCOPE_DIMS = [c for k in range(3) for c in combinations(DIMENSIONS, k)]


def _levers(rng: random.Random, family: Family, category: str) -> dict[str, Any]:
    fitting = [lv for lv in LEVERS if lv.family is family and lv.applies_to(category)]
    block: dict[str, Any] = {}
    for lv in rng.sample(fitting, k=min(len(fitting), rng.randint(1, 3))):
        value: Any = (
            rng.randint(int(lv.low), int(lv.high))
            if lv.kind is LeverKind.BARS
            else round(rng.uniform(lv.low, lv.high), 4)
        )
        head, _, tail = lv.path.partition(".")
        if tail:
            block.setdefault(head, {})[tail] = value
        else:
            block[head] = value
    return block


def synthetic_config(n: int, seed: int = 1, size_shift: float = 0.0) -> PmConfig:
    """``n`` overrides over patterns x categories x scopes of up to 2 dimensions."""
    rng = random.Random(seed)
    patterns = [f"pm.bench.p{k:03d}" for k in range(max(1, n // 150))]
    seen: set[tuple] = set()
    sections: dict[str, list[dict]] = {"pattern_strength_overrides": [], "pattern_overrides": []}
    while len(seen) < n:
        section = rng.choice(("pattern_strength_overrides",) * 2 + ("pattern_overrides",))
        pattern, category = rng.choice(patterns), rng.choice(CATEGORIES)
        dims = rng.choice(SCOPE_DIMS)
        scope = {d: rng.choice(DIMENSIONS[d]) for d in dims}
        key = (section, pattern, category, tuple(sorted(scope.items())))
        if key in seen:
            continue
        seen.add(key)
        family = Family.CAPITAL if section == "pattern_strength_overrides" else Family.TUNING
        levers = _levers(rng, family, category)
        if "size_mult" in levers:
            levers["size_mult"] = round(min(1.5, max(0.5, levers["size_mult"] + size_shift)), 4)
        sections[section].append(
            {
                "pattern_key": pattern,
                "action_category": category,
                "scope": scope,
                "levers": levers,
                "lesson": {
                    "id": f"ls_{len(seen):06d}",
                    "strength": round(rng.random(), 3),
                    "decay_halflife_hours": 720,
                },
            }
        )
    return PmConfig.model_validate(sections)


def with_changed_levers(config: PmConfig, share: float, k: int) -> PmConfig:
    """``config`` with the size_mult of a ``share`` of its strength overrides nudged (round k)."""
    payload = config.model_dump(mode="json", exclude_none=True)
    entries = payload["pattern_strength_overrides"]
    step = max(1, int(1 / share))
    for entry in entries[k % step :: step]:
        levers = entry["levers"]
        levers["size_mult"] = round(0.5 + (levers.get("size_mult", 1.0) + 0.01 * (k + 1)) % 1.0, 4)
    return PmConfig.model_validate(payload)


def decisions(config: PmConfig, count: int, seed: int = 2) -> list[tuple[dict, dict, str]]:
    rng = random.Random(seed)
    patterns = sorted({e.pattern_key for e in config.overrides()})
    out = []
    for _ in range(count):
        context: dict[str, Any] = {d: rng.choice(v) for d, v in DIMENSIONS.items()}
        context["pattern_key"] = rng.choice(patterns) if rng.random() < 0.9 else "pm.unknown"
        context["position_id"] = f"pos{rng.randrange(5000)}"
        context["module"] = "pm"
        action = {"size_fraction": 0.05, "entry_aggression": 1.0, "tuning": {"trail_mult": 1.0}}
        out.append((action, context, rng.choice(CATEGORIES)))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_hot_path(config: PmConfig, calls: int, chunk: int = 10_000) -> tuple[float, list]:
    """Per-call latency and calls/s with telemetry on; the buffer is drained between chunks
    (untimed), as the writer thread does every second."""
    buffer = TelemetryBuffer(capacity=chunk + 1)
    runtime = Runtime(telemetry=buffer)
    t = time.perf_counter()
    runtime.install(config, 1)
    compile_ms = (time.perf_counter() - t) * 1e3
    work = decisions(config, calls)
    apply = runtime.apply_pattern_overrides
    clock = time.perf_counter_ns
    for action, context, category in work[:chunk]:  # warm up as a live PM would be
        apply(action, context, category)
    drained: list = buffer.drain(chunk)
    timings = []
    for begin in range(0, calls, chunk):
        for action, context, category in work[begin : begin + chunk]:
            t0 = clock()
            apply(action, context, category)
            timings.append(clock() - t0)
        drained = buffer.drain(chunk)
    matched = len(drained)
    timer = []
    for _ in range(20_000):
        t0 = clock()
        timer.append(clock() - t0)
    elapsed = cpu = 0.0
    for begin in range(0, calls, chunk):
        t, c = time.perf_counter(), time.process_time()
        for action, context, category in work[begin : begin + chunk]:
            apply(action, context, category)
        elapsed += time.perf_counter() - t
        cpu += time.process_time() - c
        buffer.drain(chunk)
    us = [x / 1000 for x in timings]
    print(
        f"hot path, {config_size(config):,} overrides (compiled in {compile_ms:.0f} ms), "
        f"{calls:,} calls, {matched / min(chunk, calls):.0%} matched an override, telemetry on:"
    )
    print(
        f"  p50 {pct(us, 0.50):.2f} us   p99 {pct(us, 0.99):.2f} us   p99.9 {pct(us, 0.999):.2f} us"
        f"   (timer overhead p50 {statistics.median(timer) / 1000:.2f} us, included)"
    )
    print(
        f"  {calls / elapsed:,.0f} calls/s on one core (plain loop); mean CPU time per call "
        f"{cpu / calls * 1e6:.2f} us (not inflated by waiting for a core)"
    )
    assert runtime.errors == 0 and buffer.dropped == 0
    return pct(us, 0.50), drained


def bench_telemetry_writer(db: Database, items: list) -> None:
    buffer = TelemetryBuffer(capacity=len(items) + 1)
    for item in items:
        buffer.record(item)
    writer = TelemetryWriter(buffer, db.libpq_dsn())
    t = time.perf_counter()
    rows = writer.flush()
    elapsed = time.perf_counter() - t
    writer.stop()
    print(
        f"telemetry writer: {rows:,} rows (COPY, batches of {writer.batch_size:,}) in {elapsed:.2f} s "
        f"= {rows / elapsed:,.0f} rows/s"
    )


def config_size(config: PmConfig) -> int:
    return len(config.pattern_strength_overrides) + len(config.pattern_overrides)


def bench_publish_to_visible(db: Database, config_of, rounds: int, label: str) -> None:
    runtime = Runtime()
    with tempfile.TemporaryDirectory() as home:
        watcher = ConfigWatcher(runtime, db.libpq_dsn(), home=home, poll_interval=5.0).start()
        try:
            assert watcher.wait_ready(10)
            latencies = []
            for k in range(rounds + 1):  # the first publish warms the watcher up: not counted
                config = config_of(k)
                with db.engine.begin() as conn:
                    version = configs.publish(conn, config, run_id="bench")
                    t0 = time.perf_counter()
                assert version is not None
                if not runtime.wait_for_version(version, timeout=30):
                    raise SystemExit(f"v{version} never became visible")
                if k:
                    latencies.append((time.perf_counter() - t0) * 1e3)
        finally:
            watcher.stop()
    print(
        f"publish-to-visible, {label}, {rounds} publishes: p50 {pct(latencies, 0.5):.1f} ms   "
        f"p99 {pct(latencies, 0.99):.1f} ms   max {max(latencies):.1f} ms   "
        f"(notifications {watcher.notifications}, poll every 5 s)"
    )


NAIVE_SQL = """
select distinct on (section) section, e
  from leverloop.pm_config_current c
  join leverloop.pm_config_versions v using (version)
 cross join lateral (
       select 'strength' as section, x as e
         from jsonb_array_elements(v.payload -> 'pattern_strength_overrides') x
       union all
       select 'tuning', x from jsonb_array_elements(v.payload -> 'pattern_overrides') x
 ) o
 where e ->> 'pattern_key' = %(pattern)s and e ->> 'action_category' = %(category)s
   and %(context)s::jsonb @> (e -> 'scope')
   and coalesce((e -> 'lesson' ->> 'enabled')::boolean, true)
 order by section, (select count(*) from jsonb_object_keys(e -> 'scope')) desc,
          (e -> 'lesson' ->> 'strength')::float desc, (e -> 'scope')::text
"""


def bench_naive(db: Database, config: PmConfig, count: int, hot_p50_us: float) -> None:
    with db.engine.begin() as conn:
        configs.publish(conn, config, run_id="bench-naive")
    work = decisions(config, count, seed=3)
    timings = []
    with psycopg.connect(db.libpq_dsn(), autocommit=True) as conn:
        for _, context, category in work:
            scope = {k: v for k, v in context.items() if k not in ("pattern_key", "position_id")}
            t0 = time.perf_counter_ns()
            conn.execute(
                NAIVE_SQL,
                {
                    "pattern": context["pattern_key"],
                    "category": category,
                    "context": json.dumps(scope),
                },
                prepare=True,
            ).fetchall()
            timings.append((time.perf_counter_ns() - t0) / 1000)
    p50 = pct(timings, 0.5)
    print(
        f"naive per-decision query, {config_size(config):,} overrides, {count} decisions: "
        f"p50 {p50 / 1000:.2f} ms   p99 {pct(timings, 0.99) / 1000:.2f} ms   "
        f"-> {p50 / hot_p50_us:,.0f}x the hot path's p50"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--overrides", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--publishes", type=int, default=40)
    parser.add_argument("--naive-decisions", type=int, default=300)
    args = parser.parse_args()

    big = synthetic_config(args.overrides)
    hot_p50, telemetry_items = bench_hot_path(big, args.calls)

    with scratch_database("runtime") as db:
        bench_telemetry_writer(db, telemetry_items)
        bench_publish_to_visible(
            db,
            lambda k: synthetic_config(200, seed=5, size_shift=0.001 * (k + 1)),
            args.publishes,
            "200 overrides",
        )
        rounds = max(5, args.publishes // 4)
        bench_publish_to_visible(
            db,
            lambda k: with_changed_levers(big, 0.01, k),
            rounds,
            f"{args.overrides:,} overrides, 1% of them changed each time",
        )
        bench_publish_to_visible(
            db,
            lambda k: synthetic_config(args.overrides, seed=1, size_shift=0.001 * (k + 1)),
            rounds,
            f"{args.overrides:,} overrides, most of them changed each time",
        )
        bench_naive(db, big, args.naive_decisions, hot_p50)


if __name__ == "__main__":
    main()
