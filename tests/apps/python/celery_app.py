"""The Celery application the Celery tests run a real worker process for
(`celery -A celery_app worker`), against the ferrokey-server named by
$CELERY_TEST_REDIS_URL.

Every task counts each of its executions in ferrokey (HINCRBY on its task
id), so the test can check at-least-once delivery across a server crash.
"""

from __future__ import annotations

import os

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from celery_config import ADD_TASK, EXECUTIONS_KEY, FLAKY_MULTIPLY_TASK, STAMP_TASK, TOTAL_TASK, make_app

REDIS_URL = os.environ["CELERY_TEST_REDIS_URL"]

app = make_app(REDIS_URL)

# The tasks' own connection. A command lost to a server restart is sent
# again once the server is back: HINCRBY may then count one execution twice,
# which at-least-once allows; an execution that is not counted at all is
# what the test must never see.
_redis = redis.Redis.from_url(
    REDIS_URL,
    retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=200),
    retry_on_error=[redis.ConnectionError, redis.TimeoutError],
)


def record_execution(task_id: str) -> None:
    _redis.hincrby(EXECUTIONS_KEY, task_id, 1)


@app.task(bind=True, name=ADD_TASK)
def add(self, x: int, y: int) -> int:
    record_execution(self.request.id)
    return x + y


@app.task(bind=True, name=FLAKY_MULTIPLY_TASK, max_retries=5)
def flaky_multiply(self, x: int, y: int, failures: int) -> dict:
    """Fails its first `failures` runs, each time retrying after a
    countdown, then answers x*y and how many retries that took."""
    record_execution(self.request.id)
    if self.request.retries < failures:
        raise self.retry(countdown=1)
    return {"product": x * y, "retries": self.request.retries}


@app.task(bind=True, name=STAMP_TASK)
def stamp(self, label: str) -> dict:
    """Answers its label and the server's clock (Unix seconds) when it ran,
    so the test can check that a task with an ETA did not run before it."""
    record_execution(self.request.id)
    seconds, _microseconds = _redis.time()
    return {"label": label, "ran_at": seconds}


@app.task(bind=True, name=TOTAL_TASK)
def total(self, numbers: list[int]) -> int:
    """A chord's body: sums the results of its header."""
    record_execution(self.request.id)
    return sum(numbers)
