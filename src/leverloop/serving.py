"""``leverloop serve``: serve the deployments declared in ``prefect.yaml`` from this process.

prefect.yaml stays the single declaration of deployments (name, entrypoint, parameters,
schedule, concurrency); this reads it and serves each one with ``prefect.serve`` so the
schedules fire on the configured server and operators can trigger runs from the UI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from leverloop.errors import ConfigurationError


def load_deployments(path: Path) -> list[dict[str, Any]]:
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: cannot read prefect.yaml ({exc})") from exc
    deployments = (document or {}).get("deployments") or []
    if not deployments:
        raise ConfigurationError(f"{path}: declares no deployments")
    return deployments


def _flow_from_entrypoint(root: Path, entrypoint: str) -> Any:
    from prefect.flows import load_flow_from_entrypoint

    file_part, _, name = entrypoint.partition(":")
    return load_flow_from_entrypoint(f"{root / file_part}:{name}")


def serve_deployments(path: Path) -> None:
    from prefect import serve

    root = path.parent
    served = []
    for spec in load_deployments(path):
        flow = _flow_from_entrypoint(root, spec["entrypoint"])
        crons = [
            s["cron"] for s in spec.get("schedules") or [] if s.get("active", True) and "cron" in s
        ]
        served.append(
            flow.to_deployment(
                name=spec["name"],
                description=spec.get("description"),
                tags=spec.get("tags"),
                parameters=spec.get("parameters") or {},
                cron=crons or None,
                concurrency_limit=spec.get("concurrency_limit"),
            )
        )
    serve(*served)
