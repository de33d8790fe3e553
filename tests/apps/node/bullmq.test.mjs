// BullMQ (on ioredis) against a real ferrokey-server journalling every write
// (appendonly yes, appendfsync always): BullMQ's Lua scripts (cmsgpack, cjson,
// the events stream, the marker sorted set its workers block on) must run as
// they do on Valkey, and jobs must survive a SIGKILL of the server.
//
// Sizes are CI-sized by default; the long variant:
//   BULLMQ_JOBS=5000 BULLMQ_RESTARTS=5 node --test --test-concurrency=1

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FlowProducer, Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { FerrokeyServer } from './ferrokey-server.mjs';

function intFromEnv(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    return fallback;
  }
  const parsed = Number.parseInt(value, 10);
  if (!Number.isInteger(parsed) || parsed < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${value}`);
  }
  return parsed;
}

const JOBS = intFromEnv('BULLMQ_JOBS', 300);
const RESTARTS = intFromEnv('BULLMQ_RESTARTS', 1);
const DEADLINE_MS = 60_000 + JOBS * 20;
const CLOSE_TIMEOUT_MS = 10_000;

/** Polls `condition` until it returns a truthy value (which is returned) or
 * the deadline passes. */
async function waitFor(what, condition, timeoutMs = DEADLINE_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(50);
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const NO_JOBS = {
  active: 0,
  completed: 0,
  delayed: 0,
  failed: 0,
  paused: 0,
  prioritized: 0,
  waiting: 0,
  'waiting-children': 0,
};

/** The counts of every state, zero unless given. */
function counts(nonZero) {
  return { ...NO_JOBS, ...nonZero };
}

async function jobCounts(queue) {
  return queue.getJobCounts(...Object.keys(NO_JOBS));
}

/**
 * A durable ferrokey plus the BullMQ objects a test opens on it; everything
 * is closed (clients first, then the server) when the test ends.
 */
async function bullmqOn(t) {
  const server = await FerrokeyServer.start('--appendonly', 'yes', '--appendfsync', 'always');
  // Workers must never give up on a command while the server restarts.
  const connection = { host: server.host, port: server.port, maxRetriesPerRequest: null };
  const clients = [];
  const clientErrors = [];
  const opened = (client) => {
    client.on('error', (error) => clientErrors.push(error));
    clients.push(client);
    return client;
  };
  t.after(async () => {
    // Best effort: a test that failed midway may leave a client that cannot
    // close cleanly, and its failure is what should be reported.
    for (const client of clients.reverse()) {
      await withTimeout(client.close(), CLOSE_TIMEOUT_MS, `closing ${client.name}`).catch(() => {});
    }
    await server.close();
  });
  return {
    server,
    clientErrors,
    /** Valkey counts every error reply, including those a Lua script's
     * redis.call raised, in INFO errorstats: BullMQ's scripts hit none. */
    async assertServerAnsweredNoErrors() {
      const client = new Redis({ host: server.host, port: server.port });
      try {
        const errorstats = await client.info('errorstats');
        assert.deepEqual(errorstats.split('\r\n').filter((line) => line.startsWith('errorstat_')), []);
      } finally {
        client.disconnect();
      }
    },
    queue: (name, opts = {}) => opened(new Queue(name, { connection, ...opts })),
    queueEvents: (name) => opened(new QueueEvents(name, { connection })),
    flowProducer: () => opened(new FlowProducer({ connection })),
    worker: (name, processor, opts = {}) => opened(new Worker(name, processor, { connection, ...opts })),
  };
}

test('every added job is processed once and its return value stored', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('numbers');
  await queue.waitUntilReady();
  // BullMQ reads the server's type and version from INFO on connect.
  assert.equal(queue.backend.databaseType, 'valkey');
  assert.equal(queue.backend.redisVersion, '8.0.1');
  const events = bull.queueEvents('numbers');
  await events.waitUntilReady();
  const returnedByEvents = new Map();
  events.on('completed', ({ jobId, returnvalue }) => returnedByEvents.set(jobId, returnvalue));

  const firstHalf = Math.floor(JOBS / 2);
  const added = await queue.addBulk(
    Array.from({ length: firstHalf }, (_, n) => ({ name: 'square', data: { n } })),
  );
  for (let n = firstHalf; n < JOBS; n++) {
    added.push(await queue.add('square', { n }));
  }
  assert.deepEqual(await jobCounts(queue), counts({ waiting: JOBS }));

  const runs = new Map();
  bull.worker(
    'numbers',
    async (job) => {
      runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
      if (job.data.n % 50 === 0) {
        await job.updateProgress({ n: job.data.n });
        await job.log(`squaring ${job.data.n}`);
      }
      return { n: job.data.n, square: job.data.n * job.data.n };
    },
    { concurrency: 4 },
  );

  await waitFor(`${JOBS} completed jobs`, async () => (await queue.getCompletedCount()) === JOBS);
  assert.deepEqual(await jobCounts(queue), counts({ completed: JOBS }));
  assert.equal(await queue.getVersion(), 'bullmq:6.7.0');
  await waitFor(`${JOBS} completed events`, () => returnedByEvents.size === JOBS);

  for (const { id, data } of added) {
    const expected = { n: data.n, square: data.n * data.n };
    const job = await queue.getJob(id);
    assert.equal(await job.getState(), 'completed', `job ${id}`);
    assert.deepEqual(job.returnvalue, expected, `job ${id} return value`);
    assert.deepEqual(returnedByEvents.get(id), expected, `job ${id} completed event`);
    assert.equal(job.attemptsMade, 1, `job ${id} attempts`);
    assert.equal(runs.get(id), 1, `job ${id} runs`);
    if (data.n % 50 === 0) {
      assert.deepEqual(job.progress, { n: data.n }, `job ${id} progress`);
      const { logs, count } = await queue.getJobLogs(id);
      assert.deepEqual({ logs, count }, { logs: [`squaring ${data.n}`], count: 1 });
    }
  }
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('delayed jobs run after their delay, not before', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('later');
  const delays = [0, 300, 800, 1500, 2500];
  const added = [];
  for (const delay of delays) {
    added.push(await queue.add('after', { delay }, { delay }));
  }
  assert.deepEqual(await jobCounts(queue), counts({ waiting: 1, delayed: delays.length - 1 }));

  bull.worker('later', async (job) => `waited ${job.data.delay}`);
  await waitFor('every delayed job completed', async () => (await queue.getCompletedCount()) === delays.length);

  for (const { id, data } of added) {
    const job = await queue.getJob(id);
    assert.equal(job.returnvalue, `waited ${data.delay}`);
    assert.ok(
      job.processedOn - job.timestamp >= data.delay,
      `job ${id} with delay ${data.delay} started ${job.processedOn - job.timestamp} ms after it was added`,
    );
  }
  assert.deepEqual(await jobCounts(queue), counts({ completed: delays.length }));
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('failed attempts are retried with backoff until they succeed or run out', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('flaky');
  const flakyFixed = await queue.add(
    'fails-twice',
    { failures: 2 },
    { attempts: 3, backoff: { type: 'fixed', delay: 200 } },
  );
  const flakyExponential = await queue.add(
    'fails-twice',
    { failures: 2 },
    { attempts: 5, backoff: { type: 'exponential', delay: 100 } },
  );
  const hopeless = await queue.add(
    'always-fails',
    { failures: 99 },
    { attempts: 3, backoff: { type: 'exponential', delay: 50 } },
  );

  const attemptStarts = new Map();
  bull.worker('flaky', async (job) => {
    attemptStarts.set(job.id, [...(attemptStarts.get(job.id) ?? []), Date.now()]);
    if (job.attemptsMade < job.data.failures) {
      throw new Error(`attempt ${job.attemptsMade + 1} of ${job.name} failed`);
    }
    return `succeeded on attempt ${job.attemptsMade + 1}`;
  });

  await waitFor(
    'the retried jobs to finish',
    async () => (await queue.getCompletedCount()) === 2 && (await queue.getFailedCount()) === 1,
  );
  assert.deepEqual(await jobCounts(queue), counts({ completed: 2, failed: 1 }));

  for (const { id } of [flakyFixed, flakyExponential]) {
    const job = await queue.getJob(id);
    assert.equal(await job.getState(), 'completed');
    assert.equal(job.attemptsMade, 3);
    assert.equal(job.returnvalue, 'succeeded on attempt 3');
    assert.equal(job.stacktrace.length, 2, 'one stack trace per failed attempt');
  }
  const failed = await queue.getJob(hopeless.id);
  assert.equal(await failed.getState(), 'failed');
  assert.equal(failed.attemptsMade, 3);
  assert.equal(failed.failedReason, 'attempt 3 of always-fails failed');
  assert.equal(failed.stacktrace.length, 3);

  // The backoff delays the next attempt by at least the configured time:
  // fixed 200 ms each; exponential 100 ms then 200 ms.
  const gaps = (id) => attemptStarts.get(id).slice(1).map((start, i) => start - attemptStarts.get(id)[i]);
  const fixedGaps = gaps(flakyFixed.id);
  assert.ok(fixedGaps.every((gap) => gap >= 200), `fixed backoff gaps ${fixedGaps}`);
  const exponentialGaps = gaps(flakyExponential.id);
  assert.ok(
    exponentialGaps[0] >= 100 && exponentialGaps[1] >= 200,
    `exponential backoff gaps ${exponentialGaps}`,
  );
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('a job scheduler produces repeated runs until removed', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('ticks');
  const runs = [];
  bull.worker('ticks', async (job) => {
    runs.push(job);
    return runs.length;
  });

  await queue.upsertJobScheduler('every-200ms', { every: 200 }, { name: 'tick', data: { source: 'every' } });
  await queue.upsertJobScheduler('limited', { every: 100, limit: 3 }, { name: 'limited', data: {} });
  const schedulers = await queue.getJobSchedulers();
  assert.deepEqual(schedulers.map((s) => s.key).sort(), ['every-200ms', 'limited']);
  assert.equal(schedulers.find((s) => s.key === 'every-200ms').every, 200);

  const everyRuns = () => runs.filter((job) => job.name === 'tick');
  await waitFor('five runs of the scheduler', () => everyRuns().length >= 5);
  const limitedRuns = () => runs.filter((job) => job.name === 'limited');
  await waitFor('the limited scheduler to run its 3 times', () => limitedRuns().length === 3);
  assert.ok(everyRuns().every((job) => job.data.source === 'every' && job.repeatJobKey === 'every-200ms'));
  const runIds = everyRuns().map((job) => job.id);
  assert.equal(new Set(runIds).size, runIds.length, 'each run is a job of its own');

  assert.equal(await queue.removeJobScheduler('every-200ms'), true);
  assert.equal(await queue.getJobScheduler('every-200ms'), undefined);
  // Removing the scheduler also removes its next, still delayed, run; one
  // already due may still finish.
  await waitFor('no run pending', async () => {
    const { delayed, waiting, active } = await jobCounts(queue);
    return delayed + waiting + active === 0;
  });
  const runsAtRemoval = everyRuns().length;
  await sleep(600);
  assert.equal(everyRuns().length, runsAtRemoval, 'no runs after the scheduler was removed');
  assert.equal(limitedRuns().length, 3);
  assert.deepEqual(await jobCounts(queue), counts({ completed: runs.length }));
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('prioritized jobs run lowest priority number first, FIFO within a priority', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('urgent');
  const plan = [
    [5, 'e1'], [1, 'a1'], [3, 'c1'], [5, 'e2'], [1, 'a2'],
    [2, 'b1'], [3, 'c2'], [0, 'unprioritized'], [2, 'b2'], [1, 'a3'],
  ];
  for (const [priority, label] of plan) {
    await queue.add(label, { label }, { priority });
  }
  assert.deepEqual(await jobCounts(queue), counts({ waiting: 1, prioritized: plan.length - 1 }));
  assert.deepEqual(await queue.getCountsPerPriority([0, 1, 2, 3, 5]), { 0: 1, 1: 3, 2: 2, 3: 2, 5: 2 });

  const order = [];
  bull.worker('urgent', async (job) => {
    order.push(job.data.label);
    return job.data.label;
  });
  await waitFor('all prioritized jobs completed', () => order.length === plan.length);
  assert.deepEqual(order, ['unprioritized', 'a1', 'a2', 'a3', 'b1', 'b2', 'c1', 'c2', 'e1', 'e2']);
  await waitFor('all completions recorded', async () => (await queue.getCompletedCount()) === plan.length);
  assert.deepEqual(await jobCounts(queue), counts({ completed: plan.length }));
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('removeOnComplete and removeOnFail remove or trim finished jobs', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('tidy');
  const forgotten = await queue.add('forget', {}, { removeOnComplete: true });
  const kept = [];
  for (let i = 0; i < 8; i++) {
    kept.push(await queue.add('keep-last-3', { i }, { removeOnComplete: 3 }));
  }
  const failedAndRemoved = await queue.add('fail', { fail: true }, { removeOnFail: true });
  const failedAndKept = await queue.add('fail', { fail: true });

  bull.worker('tidy', async (job) => {
    if (job.data.fail) {
      throw new Error('meant to fail');
    }
    return 'done';
  });
  await waitFor('the failed job kept', async () => (await queue.getFailedCount()) === 1);
  await waitFor('every job finished', async () => {
    const { waiting, active } = await jobCounts(queue);
    return waiting === 0 && active === 0;
  });

  assert.equal(await queue.getJob(forgotten.id), undefined);
  assert.equal(await queue.getJob(failedAndRemoved.id), undefined);
  assert.equal((await queue.getJob(failedAndKept.id)).failedReason, 'meant to fail');
  const completed = await queue.getCompleted();
  assert.deepEqual(
    completed.map((job) => job.data.i).sort(),
    [5, 6, 7],
    'only the last 3 completed jobs are kept',
  );
  for (const { id } of kept.slice(0, 5)) {
    assert.equal(await queue.getJob(id), undefined, `job ${id} trimmed`);
  }
  assert.deepEqual(await jobCounts(queue), counts({ completed: 3, failed: 1 }));
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('a paused queue holds its jobs until resumed', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('held');
  const processed = [];
  bull.worker('held', async (job) => {
    processed.push(job.id);
    return job.data.i;
  });
  await queue.pause();
  assert.equal(await queue.isPaused(), true);
  for (let i = 0; i < 20; i++) {
    await queue.add('held', { i });
  }
  // Long enough for a running worker to have taken jobs had the pause not held.
  await sleep(1000);
  assert.deepEqual(processed, []);
  // BullMQ 6 keeps a paused queue's jobs in its wait list.
  assert.deepEqual(await jobCounts(queue), counts({ waiting: 20 }));

  await queue.resume();
  assert.equal(await queue.isPaused(), false);
  await waitFor('the held jobs completed', async () => (await queue.getCompletedCount()) === 20);
  assert.deepEqual(await jobCounts(queue), counts({ completed: 20 }));
  assert.equal(processed.length, 20);
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('a flow runs its children before the parent, which sees their results', async (t) => {
  const bull = await bullmqOn(t);
  const parents = bull.queue('orders');
  const children = bull.queue('order-lines');
  const flows = bull.flowProducer();

  const lines = [
    { sku: 'apple', quantity: 3, price: 2 },
    { sku: 'pear', quantity: 1, price: 5 },
    { sku: 'plum', quantity: 4, price: 1 },
  ];
  const tree = await flows.add({
    name: 'total',
    queueName: 'orders',
    data: { order: 'o-1' },
    children: lines.map((line) => ({
      name: 'line',
      queueName: 'order-lines',
      data: line,
      children: [{ name: 'check-stock', queueName: 'order-lines', data: { sku: line.sku, check: true } }],
    })),
  });
  assert.equal(await tree.job.getState(), 'waiting-children');
  assert.deepEqual(await tree.job.getDependenciesCount(), { processed: 0, unprocessed: 3, failed: 0, ignored: 0 });

  const finishedChildren = [];
  bull.worker('order-lines', async (job) => {
    if (job.data.check) {
      finishedChildren.push(`stock:${job.data.sku}`);
      return { inStock: true };
    }
    const stock = Object.values(await job.getChildrenValues());
    assert.deepEqual(stock, [{ inStock: true }]);
    finishedChildren.push(`line:${job.data.sku}`);
    return job.data.quantity * job.data.price;
  });
  bull.worker('orders', async (job) => {
    assert.equal(finishedChildren.length, 6, 'every child finished before the parent started');
    const subtotals = Object.values(await job.getChildrenValues());
    return { order: job.data.order, total: subtotals.reduce((a, b) => a + b, 0) };
  });

  await waitFor('the parent completed', async () => (await parents.getCompletedCount()) === 1);
  const parent = await parents.getJob(tree.job.id);
  assert.deepEqual(parent.returnvalue, { order: 'o-1', total: 3 * 2 + 5 + 4 });
  assert.deepEqual(await jobCounts(parents), counts({ completed: 1 }));
  assert.deepEqual(await jobCounts(children), counts({ completed: 6 }));
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('a rate-limited worker takes no more jobs than its limit per period', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('throttled');
  const limit = { max: 4, duration: 400 };
  const jobs = 12;
  await queue.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: 'call', data: { i } })));
  bull.worker('throttled', async (job) => job.data.i, { limiter: limit, concurrency: 4 });
  await waitFor('the throttled jobs completed', async () => (await queue.getCompletedCount()) === jobs);
  assert.deepEqual(await jobCounts(queue), counts({ completed: jobs }));
  // At most `max` jobs start per window and a window lasts `duration`, so
  // the jobs need ceil(jobs / max) windows: the last starts at least
  // (windows - 1) * duration after the first (less a few ms: processedOn is
  // the worker's clock just before it asks for the job).
  const starts = (await queue.getCompleted(0, -1)).map((job) => job.processedOn).sort((a, b) => a - b);
  const windows = Math.ceil(jobs / limit.max);
  const span = starts.at(-1) - starts[0];
  assert.ok(span >= (windows - 1) * limit.duration - 50, `${jobs} jobs started within ${span} ms`);
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('locks: a long job keeps its lock, an abandoned job is taken back as stalled', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('locked');
  const lockOptions = { lockDuration: 1000, stalledInterval: 500 };

  // A worker that dies holding a job: it stops renewing the lock.
  const abandoned = await queue.add('abandoned', {});
  const dying = bull.worker('locked', () => new Promise(() => {}), lockOptions);
  await waitFor('the abandoned job active', async () => (await abandoned.getState()) === 'active');
  await dying.close(true);

  const long = await queue.add('long', {});
  const runs = [];
  const stalled = [];
  const survivor = bull.worker(
    'locked',
    async (job) => {
      runs.push(job.name);
      if (job.name === 'long') {
        // Longer than lockDuration: the worker must extend the lock meanwhile.
        await sleep(2500);
      }
      return `${job.name} done`;
    },
    lockOptions,
  );
  survivor.on('stalled', (jobId) => stalled.push(jobId));

  await waitFor('both jobs completed', async () => (await queue.getCompletedCount()) === 2);
  assert.deepEqual(stalled, [abandoned.id]);
  assert.deepEqual(runs.sort(), ['abandoned', 'long'], 'each ran once on the surviving worker');
  assert.equal((await queue.getJob(abandoned.id)).returnvalue, 'abandoned done');
  const longJob = await queue.getJob(long.id);
  assert.equal(longJob.returnvalue, 'long done');
  assert.equal(longJob.attemptsMade, 1);
  assert.deepEqual(await jobCounts(queue), counts({ completed: 2 }));
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('queue management: deduplication, promote, change delay/priority/data, retry, clean, drain, obliterate', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('managed');

  const original = await queue.add('report', { v: 1 }, { deduplication: { id: 'daily' } });
  const duplicate = await queue.add('report', { v: 2 }, { deduplication: { id: 'daily' } });
  assert.equal(duplicate.id, original.id, 'a job with the same deduplication id is not added again');
  assert.equal(await queue.getDeduplicationJobId('daily'), original.id);

  const postponed = await queue.add('postponed', {}, { delay: 60_000 });
  await postponed.changeDelay(120_000);
  assert.equal(await postponed.getState(), 'delayed');
  assert.equal((await queue.getJob(postponed.id)).delay, 120_000);
  await postponed.promote();
  assert.equal(await postponed.getState(), 'waiting');

  const reprioritized = await queue.add('reprioritized', {}, { priority: 10 });
  await reprioritized.changePriority({ priority: 1 });
  assert.equal((await queue.getJob(reprioritized.id)).priority, 1);
  await reprioritized.updateData({ changed: true });
  assert.deepEqual((await queue.getJob(reprioritized.id)).data, { changed: true });

  const flaky = await queue.add('flaky', { fail: true }, { lifo: true });
  assert.deepEqual(
    (await queue.getJobs(['wait', 'prioritized'], 0, -1, true)).map((job) => job.name),
    ['flaky', 'report', 'postponed', 'reprioritized'],
    'the LIFO job heads the wait list',
  );
  assert.deepEqual(await jobCounts(queue), counts({ waiting: 3, prioritized: 1 }));

  await queue.setGlobalConcurrency(2);
  await queue.setGlobalRateLimit(100, 1000);
  const meta = await queue.getMeta();
  assert.deepEqual(
    { concurrency: meta.concurrency, max: meta.max, duration: meta.duration, paused: meta.paused },
    { concurrency: 2, max: 100, duration: 1000, paused: false },
  );

  const worker = bull.worker(
    'managed',
    async (job) => {
      if (job.data.fail) {
        throw new Error('asked to fail');
      }
      return job.name;
    },
    { name: 'inspector', metrics: { maxDataPoints: 60 } },
  );
  await worker.waitUntilReady();
  // Workers are found by the names they gave their connections (CLIENT LIST).
  const workers = await waitFor('the worker listed', async () => {
    const listed = await queue.getWorkers();
    return listed.length > 0 && listed;
  });
  assert.deepEqual(
    workers.map((w) => w.rawname),
    [`bull:${Buffer.from('managed').toString('base64')}:w:inspector`],
  );

  await waitFor('three completed, one failed', async () => {
    const { completed, failed } = await jobCounts(queue);
    return completed === 3 && failed === 1;
  });
  assert.equal((await queue.getJob(flaky.id)).failedReason, 'asked to fail');
  await flaky.updateData({ fail: false });
  await flaky.retry('failed');
  await waitFor('the retried job completed', async () => (await queue.getCompletedCount()) === 4);
  assert.equal((await queue.getJob(flaky.id)).returnvalue, 'flaky');
  assert.deepEqual(await jobCounts(queue), counts({ completed: 4 }));
  assert.equal((await queue.getMetrics('completed')).meta.count, 4, 'completions counted by the metrics');
  await worker.close();

  const cleaned = await queue.clean(0, 100, 'completed');
  assert.deepEqual(cleaned.sort(), [original.id, postponed.id, reprioritized.id, flaky.id].sort());
  assert.equal(await queue.getJob(original.id), undefined);

  await queue.add('undone', {});
  await queue.add('undone-later', {}, { delay: 60_000 });
  await queue.drain(true);
  assert.deepEqual(await jobCounts(queue), NO_JOBS);

  await queue.add('leftover', {});
  await queue.obliterate({ force: true });
  const keys = new Redis({ host: bull.server.host, port: bull.server.port });
  try {
    // Only the global rate limiter's counter outlives obliterate (it expires
    // on its own), on Valkey too.
    const left = (await keys.keys('bull:managed:*')).filter((key) => key !== 'bull:managed:limiter');
    assert.deepEqual(left, []);
  } finally {
    keys.disconnect();
  }
  assert.deepEqual(bull.clientErrors, []);
  await bull.assertServerAnsweredNoErrors();
});

test('jobs survive SIGKILL of the server while a worker runs', async (t) => {
  const bull = await bullmqOn(t);
  const queue = bull.queue('durable');
  const delayedCount = 10;
  const waitingIds = [];
  const delayedJobs = new Map();
  for (let i = 0; i < JOBS; i++) {
    waitingIds.push((await queue.add('work', { n: i }, { jobId: `w${i}` })).id);
  }
  for (let i = 0; i < delayedCount; i++) {
    // Due over the first seconds of the run; the `late` jobs added before
    // each crash below come due after it.
    const delay = 1500 + i * 400;
    const job = await queue.add('work', { n: 100_000 + i }, { jobId: `d${i}`, delay });
    delayedJobs.set(job.id, delay);
  }
  // The first heartbeat is due at once, the scheduler's later ones are delayed.
  await queue.upsertJobScheduler('heartbeat', { every: 300 }, { name: 'heartbeat', data: {} });
  assert.deepEqual(await jobCounts(queue), counts({ waiting: JOBS + 1, delayed: delayedCount }));

  const runs = new Map();
  const heartbeats = [];
  const worker = bull.worker(
    'durable',
    async (job) => {
      if (job.name === 'heartbeat') {
        heartbeats.push(Date.now());
        return 'beat';
      }
      runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
      await sleep(5);
      return { n: job.data.n, double: job.data.n * 2 };
    },
    // A job whose lock was lost to the crash is taken back within seconds.
    { concurrency: 4, lockDuration: 5000, stalledInterval: 2000 },
  );
  const stalled = [];
  worker.on('stalled', (jobId) => stalled.push(jobId));

  let lastRestart = 0;
  for (let restart = 1; restart <= RESTARTS; restart++) {
    const progressMark = Math.floor((JOBS * restart) / (RESTARTS + 1));
    await waitFor(`${progressMark} jobs processed before restart ${restart}`, () => runs.size >= progressMark);
    // Acknowledged just before the crash, due just after it.
    const lateJob = await queue.add('work', { n: 200_000 + restart }, { jobId: `late${restart}`, delay: 1000 });
    delayedJobs.set(lateJob.id, 1000);
    const before = await jobCounts(queue);
    await bull.server.restart();
    lastRestart = Date.now();
    const after = await jobCounts(queue);
    t.diagnostic(`restart ${restart}: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
    assert.ok(after.completed >= before.completed, 'completions acknowledged before the crash survive it');
    assert.notEqual(await queue.getJob(lateJob.id), undefined, 'the delayed job added before the crash survives it');
  }

  const ourIds = [...waitingIds, ...delayedJobs.keys()];
  const unconfirmed = new Set(ourIds);
  await waitFor(`all ${ourIds.length} jobs completed`, async () => {
    const pending = [...unconfirmed];
    const states = await Promise.all(pending.map((id) => queue.getJobState(id)));
    pending.forEach((id, i) => states[i] === 'completed' && unconfirmed.delete(id));
    return unconfirmed.size === 0;
  });
  const heartbeatsSinceRestart = () => heartbeats.filter((at) => at > lastRestart).length;
  await waitFor('two heartbeats after the last restart', () => heartbeatsSinceRestart() >= 2);

  for (const id of ourIds) {
    const job = await queue.getJob(id);
    const n = job.data.n;
    assert.deepEqual(job.returnvalue, { n, double: n * 2 }, `job ${id} return value`);
    assert.ok(runs.get(id) >= 1, `job ${id} ran`);
    if (delayedJobs.has(id)) {
      assert.ok(
        job.processedOn - job.timestamp >= delayedJobs.get(id),
        `delayed job ${id} started ${job.processedOn - job.timestamp} ms after it was added`,
      );
    }
  }
  const rerun = [...runs].filter(([, count]) => count > 1).map(([id]) => id);
  t.diagnostic(`${RESTARTS} restart(s); jobs run again after a crash: ${rerun.join(', ') || 'none'}`);
  assert.ok(rerun.length <= 4 * RESTARTS, `at most the jobs active at a crash run again: ${rerun}`);
  // The crash cuts the clients' connections. A command in flight is resent
  // once ioredis reconnects; when the server had already executed (and
  // journalled) it, a resent moveToFinished finds the lock it released gone.
  // Any other error is an incompatibility.
  t.diagnostic(`client errors: ${bull.clientErrors.map((error) => error.message).join('; ') || 'none'}`);
  t.diagnostic(`jobs taken back as stalled: ${stalled.join(', ') || 'none'}`);
  const socketErrors = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED']);
  const fromCrash = (error) =>
    socketErrors.has(error.code) ||
    /^Connection is closed/.test(error.message) ||
    /^Missing lock for job \S+\. moveToFinished$/.test(error.message);
  assert.deepEqual(bull.clientErrors.filter((error) => !fromCrash(error)), []);

  // With the worker closed (its active jobs finished) the counts hold still:
  // everything completed, only the scheduler's next heartbeat delayed.
  await worker.close();
  const completed = await queue.getCompleted(0, -1);
  const completedWork = completed.filter((job) => job.name === 'work').map((job) => job.id);
  assert.deepEqual(completedWork.sort(), [...ourIds].sort());
  const completedHeartbeats = completed.length - completedWork.length;
  assert.ok(completedHeartbeats >= 2);
  assert.deepEqual(
    await jobCounts(queue),
    counts({ completed: ourIds.length + completedHeartbeats, delayed: 1 }),
  );
  assert.equal((await queue.getJobSchedulers()).length, 1);
});
