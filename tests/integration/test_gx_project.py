"""The committed GX project is exactly what ``quality/project.py`` generates from the contract."""

from __future__ import annotations

import json
from pathlib import Path

from leverloop.domain.outcomes import ACTION_CATEGORIES, MODULES, RR_MAX, RR_MIN
from leverloop.quality.project import write_project
from leverloop.store.database import Database

COMMITTED = Path(__file__).resolve().parents[2] / "expectations" / "gx"


def _files(gx_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(gx_dir)): p.read_text()
        for p in sorted(gx_dir.rglob("*"))
        if p.is_file() and "uncommitted" not in p.parts
    }


def test_committed_project_matches_the_generator(database: Database, tmp_path: Path):
    generated = write_project(tmp_path, database, tmp_path / "runtime")
    assert _files(generated) == _files(COMMITTED), (
        "expectations/gx drifted from leverloop.quality.project: "
        "run `uv run python -m leverloop.quality.project` and commit the result"
    )
    assert not (generated / "uncommitted").exists()


def test_the_suites_carry_the_contract_constants_and_no_machine_paths():
    suite = json.loads((COMMITTED / "expectations" / "input_trade_outcomes.json").read_text())
    by_check = {e["meta"]["check"]: e for e in suite["expectations"]}
    assert by_check["rr_range"]["kwargs"] | {"mostly": 0} == {
        "column": "rr",
        "min_value": RR_MIN,
        "max_value": RR_MAX,
        "mostly": 0,
    }
    assert by_check["accepted_action_category"]["kwargs"]["value_set"] == list(ACTION_CATEGORIES)
    assert by_check["accepted_module"]["kwargs"]["value_set"] == list(MODULES)
    for check in ("volume_vs_trailing_average", "duplicated_day", "rr_range", "not_in_future"):
        assert by_check[check]["severity"] == "critical"
    types = {e["meta"]["check"]: e["kwargs"].get("type_") for e in suite["expectations"]}
    assert types["schema_type_rr"] == "DOUBLE PRECISION"
    config = (COMMITTED / "great_expectations.yml").read_text()
    assert "${LEVERLOOP_GX_DATABASE_URL}" in config and "${LEVERLOOP_GX_RUNTIME_DIR}" in config
    assert "/tmp" not in config and "uncommitted/validations" not in config
