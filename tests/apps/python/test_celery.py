"""Celery 5.7 with both its Redis broker and its Redis result backend on
ferrokey, run by a real `celery worker` process (prefork pool).

The main test enqueues CELERY_TASKS tasks (10,000 unless set; e.g.
CELERY_TASKS=100000 for the long variant) while the worker runs them,
SIGKILLs ferrokey once a third have run and restarts it on the same port and
directory (appendfsync always), and checks that every task still ends in
SUCCESS with the right value, each having run at least once. The crash is
timed so that it does not fall in the one gap kombu's Redis transport has
(see the test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis

from celery import chord, group, states
from celery.result import AsyncResult
from celery_config import (
    ADD_TASK,
    EXECUTIONS_KEY,
    FLAKY_MULTIPLY_TASK,
    RESULT_EXPIRES_SECONDS,
    STAMP_TASK,
    TOTAL_TASK,
    VISIBILITY_TIMEOUT_SECONDS,
    WORKER_PREFETCH_MULTIPLIER,
    make_app,
)

HERE = Path(__file__).resolve().parent
# kombu's Redis transport keeps each delivered, unacknowledged message here.
UNACKED_KEY = "unacked"
CELERY_TASKS = int(os.environ.get("CELERY_TASKS", "10000"))
WORKER_CONCURRENCY = 2
PREFETCH_COUNT = WORKER_CONCURRENCY * WORKER_PREFETCH_MULTIPLIER


class CeleryWorker:
    """`celery -A celery_app worker` as a subprocess of the test, logging to
    a file in the server's directory."""

    def __init__(self, redis_url: str, log_path: Path):
        self.log_path = log_path
        log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A", "celery_app", "worker",
                "--pool", "prefork",
                "--concurrency", str(WORKER_CONCURRENCY),
                "--loglevel", "INFO",
                # No other workers to talk to: skip the broadcast chatter.
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=HERE,
            env={**os.environ, "CELERY_TEST_REDIS_URL": redis_url},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.paused_pool: list[int] = []

    def pause_pool(self) -> None:
        """SIGSTOPs the prefork pool's processes (the worker's children)."""
        pid = self.process.pid
        self.paused_pool = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
        assert len(self.paused_pool) == WORKER_CONCURRENCY, f"pool processes: {self.paused_pool}"
        for child in self.paused_pool:
            os.kill(child, signal.SIGSTOP)

    def resume_pool(self) -> None:
        for child in self.paused_pool:
            os.kill(child, signal.SIGCONT)
        self.paused_pool = []

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"celery worker exited with {self.process.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Warm shutdown (SIGTERM); SIGKILL if it does not finish."""
        self.resume_pool()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def celery_on_durable_server(durable_server):
    worker = CeleryWorker(durable_server.url, durable_server.dir / "celery-worker.log")
    app = make_app(durable_server.url)
    yield durable_server, app, worker
    worker.stop()
    app.close()


def wait_for_results(results: list[AsyncResult], deadline: float, worker: CeleryWorker) -> list[AsyncResult]:
    """Polls the result backend until every result is ready or the deadline
    passes; returns those still not ready. A ready result is cached by its
    AsyncResult, so each round asks the backend only about the others."""
    pending = results
    while pending and time.monotonic() < deadline:
        worker.check_alive()
        pending = [r for r in pending if r.state not in states.READY_STATES]
        if pending:
            time.sleep(0.5)
    return pending


def test_every_task_survives_a_server_crash_mid_run(celery_on_durable_server):
    server, app, worker = celery_on_durable_server
    client = redis.Redis.from_url(server.url)
    total = CELERY_TASKS
    results: list[AsyncResult] = []
    producer_errors: list[BaseException] = []

    def produce() -> None:
        try:
            for n in range(total):
                results.append(app.send_task(ADD_TASK, args=(n, 2 * n)))
        except BaseException as exc:  # reported by the test thread
            producer_errors.append(exc)

    producer = threading.Thread(target=produce, name="celery-producer")
    producer.start()

    # Crash the server once a third of the tasks have run, while the
    # producer is (normally) still sending and the worker still working.
    crash_at = total // 3
    deadline = time.monotonic() + 120 + total * 0.05
    while client.hlen(EXECUTIONS_KEY) < crash_at:
        worker.check_alive()
        assert time.monotonic() < deadline, (
            f"only {client.hlen(EXECUTIONS_KEY)} of {total} tasks ran before the crash point\n"
            f"{worker.log_tail()}"
        )
        time.sleep(0.05)
    # kombu's Redis transport takes a message with BRPOP and only then
    # records it in its `unacked` hash: a crash between the two loses that
    # message whatever the server does (it happens with Redis and Valkey
    # alike). So the crash comes when the worker holds no message in that
    # gap: its pool is stopped mid-run, and the consumer has filled its
    # prefetch window, all of it recorded in `unacked`, and sends no BRPOP
    # until a slot frees. Those messages are then redelivered after the
    # visibility timeout; the producer and the result writes still meet
    # the crash at any point.
    worker.pause_pool()
    while client.hlen(UNACKED_KEY) < PREFETCH_COUNT:
        worker.check_alive()
        assert time.monotonic() < deadline, f"the worker never filled its prefetch window\n{worker.log_tail()}"
        time.sleep(0.02)
    enqueued_at_crash = len(results)
    server.kill9()
    client.close()
    server.start()
    worker.resume_pool()

    producer.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not producer.is_alive(), f"the producer had sent {len(results)} of {total} tasks at the deadline"
    assert not producer_errors, f"sending failed: {producer_errors[0]!r}"
    assert len(results) == total

    pending = wait_for_results(results, deadline, worker)
    assert not pending, (
        f"{len(pending)} of {total} tasks not finished by the deadline "
        f"(e.g. {pending[0].id}); crash after {enqueued_at_crash} were sent\n{worker.log_tail()}"
    )

    wrong = [(n, r.state, r.result) for n, r in enumerate(results) if r.state != states.SUCCESS or r.result != 3 * n]
    assert not wrong, f"{len(wrong)} tasks with a wrong outcome, e.g. {wrong[:5]}"

    client = redis.Redis.from_url(server.url)
    executions = {k.decode(): int(v) for k, v in client.hgetall(EXECUTIONS_KEY).items()}
    never_ran = [r.id for r in results if executions.get(r.id, 0) < 1]
    assert not never_ran, f"{len(never_ran)} tasks have a result but no recorded execution, e.g. {never_ran[:5]}"
    # The first result was stored before the crash; its expiry came back
    # from the AOF with it.
    assert 0 < client.ttl(f"celery-task-meta-{results[0].id}") <= RESULT_EXPIRES_SECONDS
    ran_more_than_once = sum(1 for r in results if executions[r.id] > 1)
    print(
        f"celery: {total} tasks, crash after {crash_at} had run and {enqueued_at_crash} were sent; "
        f"{ran_more_than_once} ran more than once (visibility timeout {VISIBILITY_TIMEOUT_SECONDS} s)"
    )


def test_retries_eta_group_and_chord(celery_on_durable_server):
    """Results here are awaited with AsyncResult.get(), which listens on the
    result backend's pub/sub channel for each task."""
    server, app, worker = celery_on_durable_server
    client = redis.Redis.from_url(server.url)

    retried = app.send_task(FLAKY_MULTIPLY_TASK, args=(6, 7, 2))
    never_retried = app.send_task(FLAKY_MULTIPLY_TASK, args=(3, 5, 0))
    # The server's clock in whole seconds, at or before the sends below.
    server_now, _ = client.time()
    delayed = app.send_task(STAMP_TASK, args=("countdown",), countdown=3)
    eta = server_now + 4
    scheduled = app.send_task(STAMP_TASK, args=("eta",), eta=datetime.fromtimestamp(eta, tz=timezone.utc))
    added = group(app.signature(ADD_TASK, args=(n, n)) for n in range(10)).apply_async()
    summed = chord(app.signature(ADD_TASK, args=(n, 1)) for n in range(10))(app.signature(TOTAL_TASK))

    timeout = 60
    worker.check_alive()
    assert retried.get(timeout=timeout) == {"product": 42, "retries": 2}
    assert never_retried.get(timeout=timeout) == {"product": 15, "retries": 0}
    # Each retry is the same task id run again: 2 failed runs + the good one.
    assert int(client.hget(EXECUTIONS_KEY, retried.id)) == 3
    assert int(client.hget(EXECUTIONS_KEY, never_retried.id)) == 1

    countdown_result = delayed.get(timeout=timeout)
    assert countdown_result["label"] == "countdown"
    assert countdown_result["ran_at"] >= server_now + 3
    eta_result = scheduled.get(timeout=timeout)
    assert eta_result["label"] == "eta"
    assert eta_result["ran_at"] >= eta

    assert added.get(timeout=timeout) == [2 * n for n in range(10)]
    assert summed.get(timeout=timeout) == sum(n + 1 for n in range(10))
    assert int(client.hget(EXECUTIONS_KEY, summed.id)) == 1

    # Remote control: a broadcast on the pidbox fanout exchange (pub/sub),
    # answered on a reply queue (a list).
    [pong] = app.control.ping(timeout=timeout, limit=1)
    [(worker_name, reply)] = pong.items()
    assert reply == {"ok": "pong"}
    registered = app.control.inspect(destination=[worker_name], timeout=timeout).registered()
    assert set(registered[worker_name]) >= {ADD_TASK, FLAKY_MULTIPLY_TASK, STAMP_TASK, TOTAL_TASK}
