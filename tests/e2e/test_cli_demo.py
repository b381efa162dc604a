"""A new user's path through the CLI, in a fresh folder, as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def leverloop(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEVERLOOP_", "PREFECT_"))}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "leverloop.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_then_config_show_then_an_idle_run(tmp_path: Path):
    demo = leverloop(
        tmp_path,
        "demo",
        "--outcomes",
        "8000",
        "--days",
        "14",
        "--steps",
        "2",
        "--lookback-days",
        "14",
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    out = demo.stdout
    assert "run 1/2" in out and "run 2/2" in out and "published v2" in out
    assert "Strongest learned capital levers" in out and "size_mult" in out
    assert "leverloop config show" in out  # where to look next
    assert (
        tmp_path / ".leverloop" / "pgdata" / "PG_VERSION"
    ).is_file()  # embedded default under the cwd

    shown = leverloop(tmp_path, "config", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    payload = json.loads(shown.stdout)
    assert payload["pattern_strength_overrides"], "the demo learned something"

    idle = leverloop(tmp_path, "run", "--quiet")
    assert idle.returncode == 0, idle.stderr[-3000:]
    assert "no new evidence" in idle.stdout
    history = leverloop(tmp_path, "runs")
    assert history.stdout.count("published") == 2 and "no_new_evidence" in history.stdout

    # the simulated book carries no runtime attribution: nothing to measure, nothing disabled
    measured = leverloop(tmp_path, "monitor", "--quiet")
    assert measured.returncode == 0, measured.stderr[-3000:]
    assert "0 overrides measured" in measured.stdout
