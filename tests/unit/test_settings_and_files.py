"""Settings parsing and the deployment files (docker-compose.yml, prefect.yaml) stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from leverloop.errors import ConfigurationError
from leverloop.serving import load_deployments
from leverloop.store.database import parse_database_url

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://u:p@db:5433/x",
        "postgres://u@h/x",
        "postgresql+psycopg2://u@h/x",
        "postgresql://postgres@/x?host=/tmp/s",
    ],
)
def test_database_urls_are_normalised_to_psycopg(raw):
    url = parse_database_url(raw)
    assert url.drivername == "postgresql+psycopg"
    assert url.database == "x"


@pytest.mark.parametrize("raw", ["not a url", "mysql://u@h/x", "postgresql://u@h"])
def test_bad_database_urls_name_the_setting(raw):
    with pytest.raises(ConfigurationError, match="LEVERLOOP_DATABASE_URL"):
        parse_database_url(raw)


def test_docker_compose_declares_postgres_prefect_server_and_worker():
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    assert {"postgres", "prefect-server", "worker"} <= set(services)
    worker_env = services["worker"]["environment"]
    assert worker_env["PREFECT_API_URL"].startswith("http://prefect-server:4200")
    assert worker_env["LEVERLOOP_DATABASE_URL"].startswith("postgresql://")
    assert "postgres" in services["worker"]["depends_on"]
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        env = service.get("environment") or {}
        if "prefect" in str(service.get("command", "")) or name in ("prefect-server", "worker"):
            assert str(env.get("PREFECT_SERVER_ANALYTICS_ENABLED")).lower() == "false", name


def test_prefect_yaml_declares_the_hourly_loop_and_its_entrypoint_exists():
    deployments = load_deployments(REPO / "prefect.yaml")
    loop = next(d for d in deployments if d["name"] == "learning-loop-hourly")
    file_part, _, name = loop["entrypoint"].partition(":")
    assert (REPO / file_part).is_file()
    assert f"def {name}(" in (REPO / file_part).read_text()
    assert loop["schedules"][0]["cron"] == "0 * * * *"
    assert loop["concurrency_limit"] == 1


def test_prefect_yaml_schedules_override_monitoring_daily():
    deployments = load_deployments(REPO / "prefect.yaml")
    monitoring = next(d for d in deployments if d["name"] == "override-monitoring-daily")
    file_part, _, name = monitoring["entrypoint"].partition(":")
    assert f"def {name}(" in (REPO / file_part).read_text()
    assert monitoring["schedules"][0]["cron"] == "30 0 * * *"
    assert monitoring["concurrency_limit"] == 1
