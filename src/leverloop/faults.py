"""Fault injection for the crash tests: ``LEVERLOOP_FAULT_KILL_AT=<step>`` SIGKILLs the process
when the loop reaches that step. Unset (always, outside tests) it does nothing."""

from __future__ import annotations

import os
import signal

ENV = "LEVERLOOP_FAULT_KILL_AT"

# The loop's steps in order; "publish" is inside the publish transaction, before its commit.
STEPS = (
    "locked",
    "begun",
    "input-gate",
    "quarantine",
    "dbt",
    "meta",
    "candidate",
    "output-gate",
    "publish",
    "committed",
)


def checkpoint(step: str) -> None:
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
