"""The embedded default and the one-line errors a misconfigured user sees (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPEN = (
    "from leverloop.settings import Settings; from leverloop.store.database import open_database; "
    "import sys; db = open_database(Settings(home=sys.argv[1])); print(db.url.query['host'], db.url.database)"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVERLOOP_")}
    env.update(extra)
    return env


def test_two_processes_starting_the_embedded_server_at_once_share_it(tmp_path: Path):
    home = tmp_path / "home"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN, str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    first, second = (out.strip() for out, _ in outputs)
    assert first == second and first.endswith(" leverloop")
    assert (home / "pgdata" / "PG_VERSION").is_file()
    # a third process later reuses the running server
    again = subprocess.run(
        [sys.executable, "-c", OPEN, str(home)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert again.returncode == 0 and again.stdout.strip() == first


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql://postgres@127.0.0.1:1/nowhere", "cannot connect"),
        ("this is not a url", "cannot parse"),
        ("mysql://root@localhost/x", "is not PostgreSQL"),
    ],
)
def test_bad_database_url_is_one_line_naming_the_setting(url: str, fragment: str, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "leverloop.cli", "db", "current"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(LEVERLOOP_DATABASE_URL=url, LEVERLOOP_PROJECT_DIR=str(REPO)),
        timeout=60,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "LEVERLOOP_DATABASE_URL" in lines[0] and fragment in lines[0]
    assert "Traceback" not in result.stderr
