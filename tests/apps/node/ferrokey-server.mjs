// Starts and stops a real ferrokey-server for the Node application tests:
// the twin of tests/apps/ferrokey_server.py.
//
// Each server gets an ephemeral port and a data directory of its own, and can
// be SIGKILLed and restarted on the same port and directory so clients
// reconnect to it and the test can check what survived.
//
// The binary is $FERROKEY_SERVER when set, else ferrokey-server under
// $CARGO_TARGET_DIR (or the workspace's target/), debug profile first.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const WORKSPACE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

export function serverBinary() {
  if (process.env.FERROKEY_SERVER) {
    return process.env.FERROKEY_SERVER;
  }
  const target = process.env.CARGO_TARGET_DIR || path.join(WORKSPACE, 'target');
  for (const profile of ['debug', 'release']) {
    const candidate = path.join(target, profile, 'ferrokey-server');
    if (existsSync(candidate)) {
      return candidate;
    }
  }
  throw new Error(
    `no ferrokey-server under ${target}: run \`cargo build --bin ferrokey-server\` or set FERROKEY_SERVER`,
  );
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

// Sends PING over a fresh connection and resolves with the reply's first
// line (enough to tell +PONG from -LOADING), or null if nothing answered.
function ping(port) {
  return new Promise((resolve) => {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    let data = '';
    const finish = (reply) => {
      socket.destroy();
      resolve(reply);
    };
    socket.setTimeout(2000, () => finish(null));
    socket.once('error', () => finish(null));
    socket.once('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      const end = data.indexOf('\r\n');
      if (end >= 0) {
        finish(data.slice(0, end));
      }
    });
    socket.once('end', () => finish(data || null));
  });
}

function exited(child) {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child, timeoutMs) {
  if (exited(child)) {
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * One ferrokey-server process with its own port and data directory.
 *
 * `directives` are extra `--directive value` arguments given after the
 * defaults (`--save "" --appendonly no`); later ones win, as on
 * valkey-server's command line. Use `await FerrokeyServer.start(...)`.
 */
export class FerrokeyServer {
  constructor(directives, port, dir) {
    this.directives = directives;
    this.port = port;
    this.dir = dir;
    this.logPath = path.join(dir, 'ferrokey.log');
    this.process = null;
  }

  static async start(...directives) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferrokey-app-'));
    const server = new FerrokeyServer(directives, await freePort(), dir);
    try {
      await server.start();
    } catch (error) {
      await server.close();
      throw error;
    }
    return server;
  }

  get host() {
    return '127.0.0.1';
  }

  get url() {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** Starts the process on this server's port and waits until PING answers
   * (not -LOADING). The port is kept across restarts so clients reconnect. */
  async start() {
    const argv = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--dir', this.dir,
      '--save', '',
      '--appendonly', 'no',
      ...this.directives,
    ];
    const logFd = openSync(this.logPath, 'a');
    this.process = spawn(serverBinary(), argv, {
      cwd: this.dir,
      stdio: ['ignore', logFd, logFd],
    });
    closeSync(logFd);
    const spawnError = new Promise((_, reject) => this.process.once('error', reject));
    spawnError.catch(() => {});

    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      await Promise.race([sleep(20), spawnError]);
      if (exited(this.process)) {
        throw new Error(
          `ferrokey-server exited with ${this.process.exitCode ?? this.process.signalCode}:\n${this.log()}`,
        );
      }
      const reply = await ping(this.port);
      if (reply && !reply.startsWith('-LOADING')) {
        return;
      }
      if (Date.now() > deadline) {
        await this.kill9();
        throw new Error(`ferrokey-server did not answer on port ${this.port}:\n${this.log()}`);
      }
    }
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  running() {
    return this.process !== null && !exited(this.process);
  }

  /** SIGKILL: no shutdown save, no final fsync; what survives is what was
   * already durable. */
  async kill9() {
    if (this.running()) {
      this.process.kill('SIGKILL');
      await waitForExit(this.process, STOP_TIMEOUT_MS);
    }
  }

  /** SIGTERM, as systemd stops it: a clean shutdown. */
  async stop() {
    if (this.running()) {
      this.process.kill('SIGTERM');
      if (!(await waitForExit(this.process, STOP_TIMEOUT_MS))) {
        await this.kill9();
      }
    }
  }

  /** Kills (SIGKILL by default, else SIGTERM) and starts again on the same
   * port and directory. */
  async restart({ kill = true } = {}) {
    if (kill) {
      await this.kill9();
    } else {
      await this.stop();
    }
    await this.start();
  }

  /** Kills the process and removes its data directory. */
  async close() {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
