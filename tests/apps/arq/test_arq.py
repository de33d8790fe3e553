"""arq 0.28 on ferrokey: jobs run by a real arq Worker (burst mode, in the
test's event loop), their results, Retry with a deferral, deferred jobs,
job uniqueness by id, and queued jobs surviving a SIGKILL of the server
(appendfsync always).

ARQ_JOBS sets how many jobs the crash test queues (1,000 unless set).
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone

import pytest
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings
from arq.constants import default_queue_name, expires_extra_ms, job_key_prefix, result_key_prefix
from arq.jobs import Job, JobStatus
from arq.worker import Worker

import arq_tasks

ARQ_JOBS = int(os.environ.get("ARQ_JOBS", "1000"))
RESULT_TTL_SECONDS = 3600


def settings(server) -> RedisSettings:
    return RedisSettings(host="127.0.0.1", port=server.port)


async def run_burst_worker(server, timeout: float = 90) -> Worker:
    """Runs a worker until the queue is empty, deferred and retried jobs
    included (a burst worker waits for those to come due)."""
    worker = Worker(
        functions=arq_tasks.FUNCTIONS,
        redis_settings=settings(server),
        burst=True,
        handle_signals=False,
        poll_delay=0.1,
        keep_result=RESULT_TTL_SECONDS,
    )
    try:
        await asyncio.wait_for(worker.async_run(), timeout)
    finally:
        await worker.close()
    return worker


async def executions(redis: ArqRedis, job: Job) -> int:
    return int(await redis.hget(arq_tasks.EXECUTIONS_KEY, job.job_id) or 0)


def test_results_retries_deferral_and_uniqueness(server):
    async def scenario() -> None:
        redis = await create_pool(settings(server))
        sum_job = await redis.enqueue_job("add", 2, 3)
        retried = await redis.enqueue_job("retry_then_succeed", 2)
        failing = await redis.enqueue_job("always_fail")

        # The server's clock in whole seconds, at or before the deferrals.
        server_now, _ = await redis.time()
        deferred_by = await redis.enqueue_job("server_time", "defer_by", _defer_by=2)
        run_at = server_now + 3
        deferred_until = await redis.enqueue_job(
            "server_time", "defer_until", _defer_until=datetime.fromtimestamp(run_at, tz=timezone.utc)
        )
        assert await deferred_by.status() == JobStatus.deferred
        assert await deferred_until.status() == JobStatus.deferred

        unique = await redis.enqueue_job("add", 10, 20, _job_id="unique-job")
        assert unique is not None
        assert await redis.enqueue_job("add", 1, 1, _job_id="unique-job") is None

        worker = await run_burst_worker(server)
        assert (worker.jobs_complete, worker.jobs_failed) == (5, 1)
        assert worker.jobs_retried == 2

        assert await sum_job.result(timeout=5) == 5
        assert await retried.result(timeout=5) == {"succeeded_on_try": 3}
        assert (await retried.result_info()).job_try == 3
        assert await executions(redis, retried) == 3

        with pytest.raises(ValueError, match="this job always fails"):
            await failing.result(timeout=5)
        assert (await failing.result_info()).success is False
        assert await executions(redis, failing) == 1

        by_result = await deferred_by.result(timeout=5)
        assert by_result["label"] == "defer_by"
        assert by_result["ran_at"] >= server_now + 2
        until_result = await deferred_until.result(timeout=5)
        assert until_result["label"] == "defer_until"
        assert until_result["ran_at"] >= run_at

        assert await unique.result(timeout=5) == 30
        assert await executions(redis, unique) == 1
        # The id stays taken while its result is kept.
        assert 0 < await redis.ttl(result_key_prefix + "unique-job") <= RESULT_TTL_SECONDS
        assert await redis.enqueue_job("add", 1, 1, _job_id="unique-job") is None
        assert await redis.zcard(default_queue_name) == 0
        await redis.aclose()

    asyncio.run(scenario())


def test_jobs_enqueued_before_a_crash_run_after_it(durable_server):
    async def enqueue() -> tuple[list[str], str, int]:
        redis = await create_pool(settings(durable_server))
        job_ids = [(await redis.enqueue_job("add", n, n)).job_id for n in range(ARQ_JOBS)]
        server_now, _ = await redis.time()
        deferred = await redis.enqueue_job("server_time", "deferred before the crash", _defer_by=3)
        assert await redis.zcard(default_queue_name) == ARQ_JOBS + 1
        await redis.aclose()
        return job_ids, deferred.job_id, server_now

    async def work_after_restart(job_ids: list[str], deferred_id: str, server_now: int) -> None:
        redis = await create_pool(settings(durable_server))
        assert await redis.zcard(default_queue_name) == ARQ_JOBS + 1
        # Job keys expire a day after they were due; that deadline came back
        # from the AOF.
        assert 0 < await redis.pttl(job_key_prefix + job_ids[0]) <= expires_extra_ms
        # A queued job's id is still taken after the restart.
        assert await redis.enqueue_job("add", 0, 0, _job_id=job_ids[0]) is None

        worker = await run_burst_worker(durable_server, timeout=60 + ARQ_JOBS * 0.1)
        assert (worker.jobs_complete, worker.jobs_failed) == (ARQ_JOBS + 1, 0)

        results = [await Job(job_id, redis).result(timeout=5) for job_id in job_ids]
        wrong = [(n, result) for n, result in enumerate(results) if result != 2 * n]
        assert not wrong, f"{len(wrong)} of {ARQ_JOBS} jobs with a wrong result, e.g. {wrong[:5]}"
        runs = await redis.hgetall(arq_tasks.EXECUTIONS_KEY)
        assert all(int(runs.get(job_id.encode(), 0)) == 1 for job_id in job_ids), "every job ran exactly once"

        deferred = await Job(deferred_id, redis).result(timeout=5)
        assert deferred["label"] == "deferred before the crash"
        assert deferred["ran_at"] >= server_now + 3
        await redis.aclose()

    job_ids, deferred_id, server_now = asyncio.run(enqueue())
    durable_server.kill9()
    durable_server.start()
    asyncio.run(work_after_restart(job_ids, deferred_id, server_now))
