"""The functions the RQ tests enqueue; the `rq worker` process imports them
from here. Each counts its executions in the server it runs against
(HINCRBY executions <job id> 1), so the tests can tell how often it ran."""

from __future__ import annotations

from rq import get_current_job

EXECUTIONS_KEY = "executions"
# The labels of log_step jobs, in the order they ran.
STEP_LOG_KEY = "steps"


def _record_execution() -> int:
    """Counts this run of the current job; answers how many runs it had."""
    job = get_current_job()
    return job.connection.hincrby(EXECUTIONS_KEY, job.id, 1)


def add(x: int, y: int) -> int:
    _record_execution()
    return x + y


def fail_then_succeed(failures: int) -> str:
    """Raises on its first `failures` runs, then succeeds."""
    run = _record_execution()
    if run <= failures:
        raise RuntimeError(f"planned failure {run} of {failures}")
    return f"succeeded on run {run}"


def always_fail() -> None:
    _record_execution()
    raise ValueError("this job always fails")


def log_step(label: str) -> str:
    _record_execution()
    get_current_job().connection.rpush(STEP_LOG_KEY, label)
    return label


def server_time(label: str) -> dict:
    """Answers its label and the server's clock (Unix seconds) when it ran,
    so a test can check a scheduled job did not run early."""
    _record_execution()
    seconds, _microseconds = get_current_job().connection.time()
    return {"label": label, "ran_at": seconds}
