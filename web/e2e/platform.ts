// A real chat platform for one test file: the single-node binary (CHAT_BIN) with its own
// port, database, JetStream stream, subject prefix, data directory and JWT secret, so test
// files never see each other's data and leave nothing behind.
//
//   const platform = await Platform.start('chat');
//   ... platform.baseURL ...
//   await platform.stop();     // SIGTERM, SIGKILL after 10 s
//   await platform.restart();  // same port, database and stream
//   await platform.teardown(); // kill, DROP DATABASE, delete the stream, remove the data dir
//
// Names embed the test process's pid (chat_e2e_<pid>_<hex>, E2E_<PID>_<HEX>), so the global
// setup can remove what a killed earlier run left behind without touching a live run's.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

export const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS_DIR = join(WEB_DIR, 'test-results');
export const DIST_DIR = process.env.E2E_WEB_DIST ? resolve(process.env.E2E_WEB_DIST) : join(WEB_DIR, 'dist');

/** PostgreSQL server (without a database name) and NATS, overridable for unusual set-ups. */
const PG_BASE = (process.env.E2E_PG_BASE_URL ?? 'postgres://postgres@127.0.0.1:5432').replace(/\/+$/, '');
const NATS_URL = process.env.E2E_NATS_URL ?? process.env.APP_NATS_URL ?? 'nats://127.0.0.1:4222';

const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

// Every platform this process started, killed when it is told to stop (a signal skips
// 'exit' handlers); the setpriv parent-death signal covers SIGKILL.
const live = new Set<Platform>();
let signalsHandled = false;
function handleSignals(): void {
    if (signalsHandled) return;
    signalsHandled = true;
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
        process.once(signal, () => {
            for (const p of live) p.kill();
            process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const)[signal]);
        });
    }
}

const DB_PREFIX = 'chat_e2e_';
const STREAM_PREFIX = 'E2E_';
const TMP_PREFIX = 'chat-e2e-';

/** The platform binary, from CHAT_BIN; a clear error when it is not set or not there. */
export function chatBin(): string {
    const bin = process.env.CHAT_BIN;
    if (!bin) {
        throw new Error(
            'CHAT_BIN is not set: build the platform (cargo build -p platform --bin chat) and run the browser tests ' +
                'with CHAT_BIN=<target dir>/debug/chat, or use `bash scripts/web.sh e2e`, which does both.',
        );
    }
    if (!existsSync(bin)) throw new Error(`CHAT_BIN=${bin} does not exist: build it with cargo build -p platform --bin chat`);
    return bin;
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export async function freePort(): Promise<number> {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    server.close();
    await once(server, 'close');
    if (!port) throw new Error('could not find a free port');
    return port;
}

function hex(bytes: number): string {
    return randomBytes(bytes).toString('hex');
}

function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
    return new Promise((resolvePromise, reject) => {
        execFile(cmd, args, { timeout: timeoutMs, env: { ...process.env, PGCONNECT_TIMEOUT: '5' } }, (err, stdout, stderr) => {
            if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
            else resolvePromise(stdout);
        });
    });
}

/** Runs one SQL statement as user postgres on the maintenance database. */
function psql(sql: string): Promise<string> {
    return run('psql', ['-w', '-X', '-q', '-At', '-d', `${PG_BASE}/postgres`, '-c', sql]);
}

function pidAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
}

/** The last `lines` lines of a file ('' when it cannot be read). */
export function tail(path: string, lines = 60): string {
    try {
        const text = readFileSync(path, 'utf8');
        return text.split('\n').slice(-lines - 1).join('\n');
    } catch {
        return '';
    }
}

export class Platform {
    readonly name: string;
    readonly id: string;
    readonly port: number;
    readonly baseURL: string;
    readonly database: string;
    readonly databaseURL: string;
    readonly stream: string;
    readonly subjectPrefix: string;
    readonly dataDir: string;
    readonly logPath: string;
    private readonly env: NodeJS.ProcessEnv;
    private child: ChildProcess | undefined;
    private exited: Promise<void> | undefined;
    private starts = 0;
    private tornDown = false;
    private readonly onExit = () => this.child?.kill('SIGKILL');

    private constructor(name: string, port: number, extraEnv: Record<string, string>) {
        this.name = name;
        const pid = process.pid;
        const h = hex(4);
        this.id = `${pid}_${h}`;
        this.port = port;
        this.baseURL = `http://127.0.0.1:${port}`;
        this.database = `${DB_PREFIX}${pid}_${h}`;
        this.databaseURL = `${PG_BASE}/${this.database}`;
        this.stream = `${STREAM_PREFIX}${pid}_${h.toUpperCase()}`;
        this.subjectPrefix = `e2e${pid}x${h}`;
        this.dataDir = mkdtempSync(join(tmpdir(), `${TMP_PREFIX}${pid}-`));
        mkdirSync(join(RESULTS_DIR, 'logs'), { recursive: true });
        this.logPath = join(RESULTS_DIR, 'logs', `platform-${name}-${this.id}.log`);
        const webDir = DIST_DIR;
        this.env = {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            APP_LISTEN: `127.0.0.1:${port}`,
            APP_DATABASE_URL: this.databaseURL,
            APP_NATS_URL: NATS_URL,
            APP_STREAM_NAME: this.stream,
            APP_SUBJECT_PREFIX: this.subjectPrefix,
            APP_DATA_DIR: this.dataDir,
            APP_JWT_SECRET: hex(32),
            // Every test registers people from this one address, faster than a person
            // would; the limits have tests of their own (command-api/tests/api/rate_limits.rs).
            APP_RATE_LIMIT_ENABLED: 'false',
            APP_WEB_DIR: webDir,
            RUST_LOG: process.env.E2E_RUST_LOG ?? 'warn',
            RUST_BACKTRACE: '1',
            NO_COLOR: '1',
            ...extraEnv,
        };
    }

    /** Starts a platform and waits for it to be ready; cleans up and throws if it is not. */
    static async start(name: string, extraEnv: Record<string, string> = {}): Promise<Platform> {
        const bin = chatBin();
        if (!existsSync(join(DIST_DIR, 'index.html'))) {
            throw new Error(`${DIST_DIR}/index.html is missing: build the client first (bash scripts/web.sh build)`);
        }
        const platform = new Platform(name, await freePort(), extraEnv);
        try {
            await platform.launch(bin);
        } catch (e) {
            await platform.teardown().catch(() => {});
            throw e;
        }
        return platform;
    }

    /** SIGKILL now, without waiting (for signal handlers). */
    kill(): void {
        this.child?.kill('SIGKILL');
    }

    get running(): boolean {
        return this.child !== undefined;
    }

    private async launch(bin: string): Promise<void> {
        if (this.child) throw new Error('the platform is already running');
        this.starts += 1;
        const fd = openSync(this.logPath, 'a');
        let child: ChildProcess;
        try {
            // setpriv --pdeathsig: the kernel kills the platform if this test process dies
            // without cleaning up (SIGKILL, a crash), so no server outlives its test run.
            const [cmd, args] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin]] : [bin, []];
            child = spawn(cmd, args, { env: this.env, stdio: ['ignore', fd, fd] });
        } finally {
            closeSync(fd);
        }
        this.child = child;
        handleSignals();
        live.add(this);
        process.on('exit', this.onExit);
        let exitInfo: string | undefined;
        this.exited = new Promise<void>((r) => {
            child.once('exit', (code, signal) => {
                exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
                r();
            });
            child.once('error', (err) => {
                exitInfo = `spawn error: ${err.message}`;
                r();
            });
        });
        const deadline = Date.now() + READY_TIMEOUT_MS;
        let last = 'no answer yet';
        while (Date.now() < deadline) {
            if (exitInfo) {
                this.child = undefined;
                live.delete(this);
                process.off('exit', this.onExit);
                throw new Error(`the platform (${bin}) exited before it was ready (${exitInfo}); its log ${this.logPath} ends with:\n${tail(this.logPath)}`);
            }
            try {
                const res = await fetch(`${this.baseURL}/readyz`, { signal: AbortSignal.timeout(2_000) });
                if (res.status === 200) return;
                last = `GET /readyz answered ${res.status}: ${(await res.text()).slice(0, 300)}`;
            } catch (e) {
                last = `GET /readyz: ${(e as Error).message}`;
            }
            await sleep(150);
        }
        await this.stop().catch(() => {});
        throw new Error(`the platform was not ready within ${READY_TIMEOUT_MS / 1000} s (${last}); its log ${this.logPath} ends with:\n${tail(this.logPath)}`);
    }

    /** SIGTERM, then SIGKILL after 10 s; resolves once the process is gone. */
    async stop(): Promise<void> {
        const child = this.child;
        if (!child) return;
        const exited = this.exited!;
        child.kill('SIGTERM');
        const graceful = await Promise.race([exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
        if (!graceful) {
            child.kill('SIGKILL');
            const killed = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
            if (!killed) throw new Error(`the platform (pid ${child.pid}) did not die after SIGKILL`);
        }
        this.child = undefined;
        live.delete(this);
        process.off('exit', this.onExit);
    }

    /** Stops (if running) and starts again on the same port, database and stream. */
    async restart(): Promise<void> {
        await this.stop();
        await this.launch(chatBin());
    }

    /** The end of the platform's log, for failure reports. */
    logTail(lines = 60): string {
        return tail(this.logPath, lines);
    }

    /** Kills the platform and removes its database, stream and data directory. */
    async teardown(): Promise<void> {
        if (this.tornDown) return;
        this.tornDown = true;
        const errors: string[] = [];
        await this.stop().catch((e) => errors.push(String(e)));
        await dropDatabase(this.database).catch((e) => errors.push(String(e)));
        await deleteStreams([this.stream]).catch((e) => errors.push(String(e)));
        try {
            rmSync(this.dataDir, { recursive: true, force: true });
        } catch (e) {
            errors.push(`removing ${this.dataDir}: ${e}`);
        }
        if (errors.length) throw new Error(`platform teardown: ${errors.join('; ')}`);
    }
}

async function dropDatabase(name: string): Promise<void> {
    if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`refusing to drop database ${name}`);
    await psql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

async function withJetStream<T>(f: (jsm: Awaited<ReturnType<typeof jetstreamManager>>) => Promise<T>): Promise<T> {
    const nc = await connect({ servers: NATS_URL, timeout: 5_000, reconnect: false, name: 'chat-e2e' });
    try {
        const jsm = await jetstreamManager(nc, { timeout: 10_000 });
        return await f(jsm);
    } finally {
        await nc.close();
    }
}

async function deleteStreams(names: string[]): Promise<void> {
    if (!names.length) return;
    await withJetStream(async (jsm) => {
        for (const name of names) {
            try {
                await jsm.streams.delete(name);
            } catch (e) {
                // A platform that never got as far as creating its stream leaves none.
                if (!/not found/i.test(String((e as Error).message))) throw e;
            }
        }
    });
}

/** Removes databases, streams and data directories of e2e runs whose process is gone. */
export async function cleanStale(): Promise<string[]> {
    const removed: string[] = [];
    const deadPid = (s: string | undefined) => {
        const pid = Number(s);
        return Number.isInteger(pid) && pid > 0 && !pidAlive(pid);
    };
    try {
        const dbs = (await psql(`SELECT datname FROM pg_database WHERE datname LIKE '${DB_PREFIX}%'`)).split('\n').filter(Boolean);
        for (const db of dbs) {
            const m = /^chat_e2e_(\d+)_[0-9a-f]+$/.exec(db);
            if (m && deadPid(m[1])) {
                await dropDatabase(db);
                removed.push(`database ${db}`);
            }
        }
    } catch (e) {
        removed.push(`(could not list databases: ${(e as Error).message.split('\n')[0]})`);
    }
    try {
        await withJetStream(async (jsm) => {
            const stale: string[] = [];
            for await (const name of jsm.streams.names()) {
                const m = /^E2E_(\d+)_[0-9A-F]+$/.exec(name);
                if (m && deadPid(m[1])) stale.push(name);
            }
            for (const name of stale) {
                await jsm.streams.delete(name);
                removed.push(`stream ${name}`);
            }
        });
    } catch (e) {
        removed.push(`(could not list streams: ${(e as Error).message})`);
    }
    for (const entry of readdirSync(tmpdir())) {
        const m = /^chat-e2e-(\d+)-/.exec(entry);
        if (m && deadPid(m[1])) {
            const path = join(tmpdir(), entry);
            try {
                if (statSync(path).isDirectory()) {
                    rmSync(path, { recursive: true, force: true });
                    removed.push(`directory ${path}`);
                }
            } catch {
                // gone already
            }
        }
    }
    return removed;
}
