"""Prefect API helpers for the end-to-end tests."""

from __future__ import annotations

import asyncio


def artifact_keys(keys: set[str]) -> set[str]:
    """Which of ``keys`` the Prefect API holds artifacts for (filtered server-side: the session's
    server holds far more artifacts than one page of an unfiltered listing)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> set[str]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=sorted(keys)))
            )
        return {a.key for a in found if a.key}

    return asyncio.run(read())
