"""How the Celery tests configure Celery against ferrokey: one function,
used by the worker's application (celery_app.py) and by the test process,
which only sends tasks by name and reads their results.

Broker and result backend are both the same ferrokey-server.
"""

from __future__ import annotations

from celery import Celery

# How long an unacknowledged message stays invisible before a worker puts it
# back on its queue. Short, so that messages the worker held when the server
# was killed are delivered again well within the tests' deadlines.
VISIBILITY_TIMEOUT_SECONDS = 15

# Messages a worker takes ahead of its pool, per pool process (Celery's
# default, made explicit because the crash test counts on it).
WORKER_PREFETCH_MULTIPLIER = 4

RESULT_EXPIRES_SECONDS = 24 * 3600

# Where every task counts its executions: HINCRBY executions <task id> 1.
EXECUTIONS_KEY = "executions"

ADD_TASK = "tests.add"
FLAKY_MULTIPLY_TASK = "tests.flaky_multiply"
STAMP_TASK = "tests.stamp"
TOTAL_TASK = "tests.total"


def make_app(redis_url: str) -> Celery:
    app = Celery("ferrokey-tests", broker=redis_url, backend=redis_url)
    app.conf.update(
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
            # Look for messages past their visibility timeout every second
            # (kombu's default sweep runs every 100 s).
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # A producer that loses the server mid-publish tries again until it
        # is back (a debug build restarting from its AOF takes seconds).
        task_publish_retry_policy={
            "max_retries": 200,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        worker_prefetch_multiplier=WORKER_PREFETCH_MULTIPLIER,
        result_expires=RESULT_EXPIRES_SECONDS,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    return app
