"""The functions the arq tests' worker runs. Each counts its executions in
the server (HINCRBY executions <job id> 1), so the tests can tell how often
a job ran."""

from __future__ import annotations

from typing import Any

from arq import Retry
from arq.worker import func

EXECUTIONS_KEY = "executions"

Context = dict[str, Any]


async def _record_execution(ctx: Context) -> None:
    await ctx["redis"].hincrby(EXECUTIONS_KEY, ctx["job_id"], 1)


async def add(ctx: Context, x: int, y: int) -> int:
    await _record_execution(ctx)
    return x + y


async def retry_then_succeed(ctx: Context, failures: int) -> dict:
    """Asks to be run again, one second later, on its first `failures`
    tries; answers the try that succeeded."""
    await _record_execution(ctx)
    if ctx["job_try"] <= failures:
        raise Retry(defer=1)
    return {"succeeded_on_try": ctx["job_try"]}


async def always_fail(ctx: Context) -> None:
    await _record_execution(ctx)
    raise ValueError("this job always fails")


async def server_time(ctx: Context, label: str) -> dict:
    """Answers its label and the server's clock (Unix seconds) when it ran,
    so a test can check a deferred job did not run early."""
    await _record_execution(ctx)
    seconds, _microseconds = await ctx["redis"].time()
    return {"label": label, "ran_at": seconds}


FUNCTIONS = [add, func(retry_then_succeed, max_tries=5), always_fail, server_time]
