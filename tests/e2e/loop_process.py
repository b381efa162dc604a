"""Learning-loop runs in child processes, for the crash and concurrency tests.

Children are forked from a fork server that has imported Prefect, dbt, GX and the flow once,
so a run in a child costs what the run costs, not the ~10 s of imports. Prefect reads its
settings at import: ``PREFECT_API_URL`` (the test server) must be in the environment when
the fork server starts (at the first child of the session).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from datetime import datetime
from pathlib import Path
from typing import Any

PRELOAD = [
    "great_expectations",
    "dbt.cli.main",
    "prefect_dbt",
    "flows.learning_loop",
    "tests.e2e.loop_process",
]


def context() -> mp.context.ForkServerContext:
    assert os.environ.get("PREFECT_API_URL"), "set PREFECT_API_URL before the fork server starts"
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _child(env: dict[str, str], as_of: str, gates: str, wait: float, out: str) -> None:
    os.environ.update(env)
    from flows.learning_loop import learning_loop
    from leverloop.domain.gates import GatePolicy

    result = learning_loop(
        as_of=datetime.fromisoformat(as_of),
        lookback_days=14,
        gates=GatePolicy.model_validate_json(gates),
        lock_wait_seconds=wait,
    )
    Path(out).write_text(json.dumps(result, default=str))


def start(
    ctx: mp.context.ForkServerContext,
    *,
    env: dict[str, str],
    as_of: datetime,
    gates: Any,
    out: Path,
    wait: float = 300.0,
) -> mp.process.BaseProcess:
    process = ctx.Process(
        target=_child, args=(env, as_of.isoformat(), gates.model_dump_json(), wait, str(out))
    )
    process.start()
    return process


def result(out: Path) -> dict[str, Any] | None:
    return json.loads(out.read_text()) if out.exists() else None
