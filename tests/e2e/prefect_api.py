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


def wait_for_paused_run(ctx, *, timeout: float, alive=lambda: True) -> str:
    """The flow run id of the loop run paused for an operator's approval, once Prefect says so.

    Polls the pending approval request and the run's state; fails the test after ``timeout``
    seconds or as soon as ``alive()`` turns false.
    """
    import time

    import sqlalchemy as sa
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        with ctx.engine.connect() as conn:
            flow_run_id = conn.execute(
                sa.text("select flow_run_id from leverloop.approvals where decision is null")
            ).scalar()
        if flow_run_id:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run_id).state
            if state is not None and state.is_paused():
                return str(flow_run_id)
        time.sleep(0.5)
    raise AssertionError("the run never paused for approval")
