"""RQ 3.0 on ferrokey: jobs run by real `rq worker --burst --with-scheduler`
processes, their results, retries, the failed job registry, scheduled jobs,
dependencies, and queued and scheduled jobs surviving a SIGKILL of the
server (appendfsync always).

RQ_JOBS sets how many jobs the crash test queues (500 unless set).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import redis
from rq import Queue, Retry
from rq.defaults import DEFAULT_RESULT_TTL
from rq.job import Dependency, Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.results import Result

import rq_jobs

HERE = Path(__file__).resolve().parent
RQ_JOBS = int(os.environ.get("RQ_JOBS", "500"))
QUEUE_NAME = "default"
DONE = (JobStatus.FINISHED, JobStatus.FAILED)


def run_burst_worker(url: str, log_path: Path, timeout: float) -> None:
    """One `rq worker --burst --with-scheduler`: it moves scheduled jobs that
    are due onto the queue, works until the queue is empty, and exits."""
    with open(log_path, "ab") as log:
        finished = subprocess.run(
            [
                str(Path(sys.executable).with_name("rq")), "worker",
                "--burst", "--with-scheduler",
                "--url", url,
                "--path", str(HERE),
                QUEUE_NAME,
            ],
            cwd=HERE,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    assert finished.returncode == 0, f"rq worker exited with {finished.returncode}:\n{log_path.read_text()[-4000:]}"


def work_until_done(url: str, log_path: Path, jobs: list[Job], timeout: float = 90) -> None:
    """Runs burst workers until every job has finished or failed for good.
    Retries and scheduled jobs come back on the queue later, so one burst
    may not be enough."""
    deadline = time.monotonic() + timeout
    while True:
        run_burst_worker(url, log_path, timeout=max(1.0, deadline - time.monotonic()))
        statuses = [job.get_status(refresh=True) for job in jobs]
        if all(status in DONE for status in statuses):
            return
        waiting = [(job.id, status) for job, status in zip(jobs, statuses) if status not in DONE]
        assert time.monotonic() < deadline, f"{len(waiting)} jobs not done by the deadline, e.g. {waiting[:5]}"
        time.sleep(0.5)


def executions(client: redis.Redis, job: Job) -> int:
    return int(client.hget(rq_jobs.EXECUTIONS_KEY, job.id) or 0)


def test_results_retries_failures_schedules_and_dependencies(server):
    client = redis.Redis.from_url(server.url)
    queue = Queue(QUEUE_NAME, connection=client)
    worker_log = server.dir / "rq-worker.log"

    sum_job = queue.enqueue(rq_jobs.add, 2, 3)
    retried = queue.enqueue(rq_jobs.fail_then_succeed, 2, retry=Retry(max=3, interval=1))
    doomed = queue.enqueue(rq_jobs.always_fail, retry=Retry(max=1))
    parent = queue.enqueue(rq_jobs.log_step, "parent")
    child = queue.enqueue(rq_jobs.log_step, "child", depends_on=parent)
    after_failure = queue.enqueue(rq_jobs.log_step, "after failure", depends_on=Dependency(doomed, allow_failure=True))
    blocked_by_failure = queue.enqueue(rq_jobs.log_step, "never", depends_on=doomed)
    assert child.get_status() == JobStatus.DEFERRED

    # Server clock in whole seconds, at or before the two schedules.
    server_now, _ = client.time()
    in_two_seconds = queue.enqueue_in(timedelta(seconds=2), rq_jobs.server_time, "enqueue_in")
    at_time = server_now + 3
    at_job = queue.enqueue_at(datetime.fromtimestamp(at_time, tz=timezone.utc), rq_jobs.server_time, "enqueue_at")
    scheduled = ScheduledJobRegistry(queue=queue)
    assert set(scheduled.get_job_ids()) == {in_two_seconds.id, at_job.id}
    assert in_two_seconds.get_status() == JobStatus.SCHEDULED

    work_until_done(
        server.url, worker_log, [sum_job, retried, doomed, parent, child, after_failure, in_two_seconds, at_job]
    )

    assert sum_job.return_value() == 5
    assert sum_job.latest_result().type == Result.Type.SUCCESSFUL

    assert retried.get_status() == JobStatus.FINISHED
    assert retried.return_value() == "succeeded on run 3"
    assert executions(client, retried) == 3

    # One retry allowed, so two runs, then the failed job registry.
    assert doomed.get_status() == JobStatus.FAILED
    assert executions(client, doomed) == 2
    assert doomed.id in FailedJobRegistry(queue=queue).get_job_ids()
    failure = doomed.latest_result()
    assert failure.type == Result.Type.FAILED
    assert "ValueError: this job always fails" in failure.exc_string

    assert client.lrange(rq_jobs.STEP_LOG_KEY, 0, -1) == [b"parent", b"child", b"after failure"]
    assert child.return_value() == "child"
    # A plain dependency on a failed job never becomes runnable.
    assert blocked_by_failure.get_status() == JobStatus.DEFERRED
    assert executions(client, blocked_by_failure) == 0

    assert in_two_seconds.return_value()["label"] == "enqueue_in"
    assert in_two_seconds.return_value()["ran_at"] >= server_now + 2
    assert at_job.return_value()["label"] == "enqueue_at"
    assert at_job.return_value()["ran_at"] >= at_time
    assert scheduled.count == 0
    for job in (sum_job, parent, child, after_failure, in_two_seconds, at_job):
        assert executions(client, job) == 1, job.id


def test_queued_and_scheduled_jobs_survive_a_server_crash(durable_server):
    client = redis.Redis.from_url(durable_server.url)
    queue = Queue(QUEUE_NAME, connection=client)

    jobs = [queue.enqueue(rq_jobs.add, n, n) for n in range(RQ_JOBS)]
    last = queue.enqueue(rq_jobs.log_step, "after all", depends_on=jobs[-1])
    server_now, _ = client.time()
    scheduled = queue.enqueue_in(timedelta(seconds=3), rq_jobs.server_time, "scheduled before the crash")
    assert queue.count == RQ_JOBS

    durable_server.kill9()
    client.close()
    durable_server.start()

    client = redis.Redis.from_url(durable_server.url)
    queue = Queue(QUEUE_NAME, connection=client)
    assert queue.count == RQ_JOBS
    assert ScheduledJobRegistry(queue=queue).get_job_ids() == [scheduled.id]
    assert client.ttl(jobs[0].key) == -1, "a queued job's hash has no expiry"

    work_until_done(
        durable_server.url, durable_server.dir / "rq-worker.log", [*jobs, last, scheduled], timeout=60 + RQ_JOBS * 0.2
    )

    wrong = [(n, job.get_status(), job.return_value()) for n, job in enumerate(jobs) if job.return_value() != 2 * n]
    assert not wrong, f"{len(wrong)} of {RQ_JOBS} jobs with a wrong result, e.g. {wrong[:5]}"
    runs = {key.decode(): int(value) for key, value in client.hgetall(rq_jobs.EXECUTIONS_KEY).items()}
    assert all(runs.get(job.id) == 1 for job in jobs), "every job ran exactly once"
    assert last.return_value() == "after all"
    assert scheduled.return_value()["ran_at"] >= server_now + 3
    assert queue.count == 0
    # Finished jobs are kept for RQ's default result_ttl.
    assert 0 < client.ttl(jobs[0].key) <= DEFAULT_RESULT_TTL
