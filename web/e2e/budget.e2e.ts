// Performance budgets, printed and written to test-results/budget.json:
// - the JavaScript a first load of `/` transfers (compressed, as on the wire), logged out
//   and logged in: under 200 KB;
// - scrolling a room of 1,000 messages from the bottom to the top (older pages load as the
//   list reaches the top) and back down, under a Chromium performance trace: no main-thread
//   task of the page's renderer over 100 ms.

import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import { type Session, pool, uniqueName } from './api';
import { stage } from './people';
import { RESULTS_DIR } from './platform';
import { POLL, count, loginViaUI, messageBySeq } from './ui';

const JS_BUDGET_BYTES = 200 * 1024;
const LONG_TASK_LIMIT_MS = 100;
const MESSAGES = 1_000;
const SCROLL_DEADLINE_MS = 120_000;
/**
 * The long-task limit is checked on each task's thread time (CPU time of the renderer's
 * main thread) by default: on a shared 2-core machine, wall-clock task lengths grow with
 * whatever else runs (the platform, the compiler), while thread time measures the page's
 * own work. Both are reported; E2E_LONG_TASKS=wall checks wall-clock time instead.
 */
const WALL_CLOCK = process.env.E2E_LONG_TASKS === 'wall';

interface Transfer {
    url: string;
    type: string;
    mimeType: string;
    bytes: number;
}

/** Records what a page transfers (CDP Network domain); `settled()` waits for quiet. */
async function recordTransfers(context: BrowserContext, page: Page) {
    const cdp: CDPSession = await context.newCDPSession(page);
    const responses = new Map<string, { url: string; type: string; mimeType: string }>();
    const transfers: Transfer[] = [];
    const inflight = new Set<string>();
    let lastActivity = Date.now();
    cdp.on('Network.requestWillBeSent', (e: any) => {
        inflight.add(e.requestId);
        lastActivity = Date.now();
    });
    cdp.on('Network.responseReceived', (e: any) => {
        responses.set(e.requestId, { url: e.response.url, type: e.type, mimeType: e.response.mimeType });
    });
    cdp.on('Network.loadingFinished', (e: any) => {
        inflight.delete(e.requestId);
        lastActivity = Date.now();
        const r = responses.get(e.requestId);
        if (r) transfers.push({ ...r, bytes: e.encodedDataLength });
    });
    cdp.on('Network.loadingFailed', (e: any) => {
        inflight.delete(e.requestId);
        lastActivity = Date.now();
    });
    await cdp.send('Network.enable');
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    return {
        transfers,
        /** Resolves once nothing has been in flight for 750 ms (at most 20 s). */
        async settled(): Promise<void> {
            await expect
                .poll(() => inflight.size === 0 && Date.now() - lastActivity > 750, { timeout: 20_000, interval: 100, message: 'the network goes quiet' })
                .toBe(true);
        },
        scripts(): Transfer[] {
            return transfers.filter((t) => t.type === 'Script' || /javascript|ecmascript/.test(t.mimeType));
        },
    };
}

interface TraceEvent {
    name: string;
    ph: string;
    pid: number;
    tid: number;
    ts: number;
    dur?: number;
    tdur?: number;
    args?: any;
}

/**
 * The main-thread tasks of every renderer main thread in a Chromium trace: wall-clock
 * durations and thread (CPU) durations, in ms.
 */
function mainThreadTasks(trace: Buffer): { durations: number[]; cpu: number[]; threads: number } {
    const events: TraceEvent[] = JSON.parse(trace.toString('utf8')).traceEvents ?? [];
    const main = new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`));
    // Chromium records each task twice, nested (RunTask in devtools.timeline around
    // ThreadControllerImpl::RunTask in toplevel): count one name only.
    const onMain = (name: string) => events.filter((e) => e.name === name && e.ph === 'X' && main.has(`${e.pid}:${e.tid}`));
    const tasks = onMain('RunTask').length ? onMain('RunTask') : onMain('ThreadControllerImpl::RunTask');
    const durations = tasks.map((e) => (e.dur ?? 0) / 1000);
    const cpu = tasks.map((e) => (e.tdur ?? e.dur ?? 0) / 1000);
    return { durations, cpu, threads: main.size };
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

describe('budgets', () => {
    let A: Session;
    let room = '';
    const figures: Record<string, unknown> = {};
    const tag = randomBytes(3).toString('hex');

    const world = stage('budget', {
        seed: async (api) => {
            A = await api.register(uniqueName('alice'), undefined, 'Alice');
        },
    });
    afterAll(() => {
        const path = join(RESULTS_DIR, 'budget.json');
        writeFileSync(path, JSON.stringify({ at: new Date().toISOString(), ...figures }, null, 2) + '\n');
        console.log(`budget: figures written to ${path}:\n${JSON.stringify(figures, null, 2)}`);
    });

    /** Once the load has settled: its bytes in `figures.first_load_<state>`, printed; the JavaScript's bytes and files. */
    async function firstLoad(rec: Awaited<ReturnType<typeof recordTransfers>>, state: 'logged out' | 'logged in') {
        await rec.settled();
        const scripts = rec.scripts();
        const js = scripts.reduce((s, t) => s + t.bytes, 0);
        const all = rec.transfers.reduce((s, t) => s + t.bytes, 0);
        figures[`first_load_${state.replace(' ', '_')}`] = { js_bytes: js, all_bytes: all, scripts: scripts.map((t) => ({ url: new URL(t.url).pathname, bytes: t.bytes })) };
        console.log(`budget: first load ${state}: JavaScript ${kb(js)} in ${scripts.length} file(s), everything ${kb(all)}`);
        return { js, scripts: scripts.length };
    }

    let loggedIn: Awaited<ReturnType<BrowserContext['storageState']>> | undefined;

    test('first load of / (logged out): JavaScript transferred < 200 KB', async () => {
        const p = await world.person('visitor');
        const rec = await recordTransfers(p.context, p.page);
        await p.page.goto('/');
        await p.page.getByTestId('auth-username').waitFor({ state: 'visible' });
        const { js, scripts } = await firstLoad(rec, 'logged out');
        expect(scripts, 'at least one script loaded').toBeGreaterThan(0);
        expect(js, `JavaScript transferred on a first load (logged out), budget ${kb(JS_BUDGET_BYTES)}`).toBeLessThan(JS_BUDGET_BYTES);

        await loginViaUI(p.page, A.username);
        loggedIn = await p.context.storageState();
        await p.close();
    });

    test('first load of / (logged in): JavaScript transferred < 200 KB', async () => {
        expect(loggedIn, 'needs the logged-out test to log in').toBeDefined();
        const p = await world.person('returning', { storageState: loggedIn });
        const rec = await recordTransfers(p.context, p.page);
        await p.page.goto('/');
        await p.page.getByTestId('room-list').waitFor({ state: 'attached' });
        await expect.poll(async () => (await p.page.getByTestId('me').textContent()) ?? '', POLL).toContain(A.username);
        const { js } = await firstLoad(rec, 'logged in');
        expect(js, `JavaScript transferred on a first load (logged in), budget ${kb(JS_BUDGET_BYTES)}`).toBeLessThan(JS_BUDGET_BYTES);
        await p.close();
    });

    test(`a room of ${MESSAGES} messages scrolls top to bottom with no main-thread task over ${LONG_TASK_LIMIT_MS} ms`, async () => {
        // Seed through the REST API, a few requests at a time.
        room = (await world.api.createRoom(A.access_token, `history-${tag}`, 'public')).room_id;
        const seedStart = Date.now();
        const words = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore'.split(' ');
        const sent = await pool(6, MESSAGES, (i) => {
            const n = 3 + ((i * 7) % 40);
            const body = `#${i + 1} ` + Array.from({ length: n }, (_, k) => words[(i + k) % words.length]).join(' ') + (i % 25 === 0 ? '\nsecond line\nthird line' : '');
            return world.api.send(A.access_token, room, body);
        });
        const lastPosition = Math.max(...sent.map((s) => s.position));
        const lastSeq = Math.max(...sent.map((s) => s.seq));
        await world.api.messages(A.access_token, room, { limit: 1, minPosition: lastPosition });
        figures.seed = { messages: MESSAGES, seconds: (Date.now() - seedStart) / 1000 };
        console.log(`budget: seeded ${MESSAGES} messages in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

        expect(loggedIn, 'needs the logged-out test to log in').toBeDefined();
        const p = await world.person('scroller', { storageState: loggedIn });
        const { page } = p;
        const openStart = Date.now();
        await page.goto(`/#/rooms/${room}`);
        await page.locator(`[data-testid="room-view"][data-room-id="${room}"]`).waitFor({ state: 'visible' });
        await messageBySeq(page, lastSeq).waitFor({ state: 'visible' });
        const openMs = Date.now() - openStart;
        const list = page.getByTestId('message-list');
        const box = await list.boundingBox();
        expect(box, 'message-list is on screen').toBeTruthy();
        await page.mouse.move(box!.x + box!.width / 2, box!.y + box!.height / 2);

        const frame = () => page.evaluate(() => new Promise<void>((r) => requestAnimationFrame(() => r())));
        // Distances to the top and the bottom, for a plain list and for a column-reverse one
        // (whose scrollTop is 0 at the bottom and negative above).
        const scrollState = () =>
            list.evaluate((el) => {
                const range = el.scrollHeight - el.clientHeight;
                const reversed = getComputedStyle(el).flexDirection === 'column-reverse';
                const fromTop = reversed ? range + el.scrollTop : el.scrollTop;
                return { top: fromTop, bottomGap: range - fromTop };
            });
        const oldestShown = async () => Math.min(...(await page.getByTestId('message').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-seq') || Infinity)))));

        await world.browser.startTracing(page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'toplevel'] });
        const scrollStart = Date.now();
        let wheelsUp = 0;
        let wheelsDown = 0;
        let traced: Buffer;
        try {
            // Up, the way a person flicks a wheel, until the first message is there and the top reached.
            const upDeadline = Date.now() + SCROLL_DEADLINE_MS;
            for (;;) {
                const atTop = (await scrollState()).top <= 1;
                if (atTop && (await count(messageBySeq(page, 1))) > 0) break;
                if (Date.now() > upDeadline) {
                    throw new Error(`scrolling up did not reach message 1 within ${SCROLL_DEADLINE_MS / 1000} s (oldest shown: seq ${await oldestShown()}); does the list load older pages when scrolled to the top?`);
                }
                await page.mouse.wheel(0, -1200);
                wheelsUp += 1;
                await frame();
            }
            // And back down to the newest.
            const downDeadline = Date.now() + SCROLL_DEADLINE_MS;
            for (;;) {
                if ((await scrollState()).bottomGap <= 2 && (await count(messageBySeq(page, lastSeq))) > 0) break;
                if (Date.now() > downDeadline) throw new Error(`scrolling down did not reach message ${lastSeq} within ${SCROLL_DEADLINE_MS / 1000} s`);
                await page.mouse.wheel(0, 1200);
                wheelsDown += 1;
                await frame();
            }
        } finally {
            traced = await world.browser.stopTracing();
        }
        const scrollMs = Date.now() - scrollStart;
        writeFileSync(join(RESULTS_DIR, 'scroll-trace.json'), traced);
        const { durations, cpu, threads } = mainThreadTasks(traced);
        expect(durations.length, 'the trace has main-thread tasks (RunTask on CrRendererMain)').toBeGreaterThan(0);
        const longest = Math.max(...durations);
        const longestCpu = Math.max(...cpu);
        const over = (xs: number[], ms: number) => xs.filter((d) => d > ms).length;
        figures.scroll = {
            messages: MESSAGES,
            open_room_ms: openMs,
            scroll_ms: scrollMs,
            wheel_steps_up: wheelsUp,
            wheel_steps_down: wheelsDown,
            renderer_main_threads: threads,
            tasks: durations.length,
            longest_task_ms: Number(longest.toFixed(1)),
            tasks_over_50ms: over(durations, 50),
            tasks_over_100ms: over(durations, LONG_TASK_LIMIT_MS),
            longest_task_cpu_ms: Number(longestCpu.toFixed(1)),
            tasks_over_50ms_cpu: over(cpu, 50),
            tasks_over_100ms_cpu: over(cpu, LONG_TASK_LIMIT_MS),
            asserted_on: WALL_CLOCK ? 'wall' : 'cpu',
            load_average: loadavg().map((l) => Number(l.toFixed(2))),
        };
        console.log(
            `budget: ${MESSAGES} messages: opened in ${openMs} ms; scrolled up (${wheelsUp} wheel steps) and down (${wheelsDown}) in ${(scrollMs / 1000).toFixed(1)} s; ` +
                `${durations.length} main-thread tasks; longest ${longest.toFixed(1)} ms wall-clock (${over(durations, 50)} over 50 ms, ${over(durations, LONG_TASK_LIMIT_MS)} over ${LONG_TASK_LIMIT_MS} ms), ` +
                `longest ${longestCpu.toFixed(1)} ms of thread time (${over(cpu, 50)} over 50 ms, ${over(cpu, LONG_TASK_LIMIT_MS)} over ${LONG_TASK_LIMIT_MS} ms); load average ${loadavg()[0].toFixed(2)}`,
        );
        if (WALL_CLOCK) {
            expect(longest, `longest main-thread task while scrolling, wall-clock (limit ${LONG_TASK_LIMIT_MS} ms)`).toBeLessThanOrEqual(LONG_TASK_LIMIT_MS);
        } else {
            expect(longestCpu, `longest main-thread task while scrolling, thread time (limit ${LONG_TASK_LIMIT_MS} ms)`).toBeLessThanOrEqual(LONG_TASK_LIMIT_MS);
        }
    }, 300_000);

    test('scrolled up in that room, a new message shows the new-messages pill, which brings the list down', async () => {
        expect(room, 'needs the 1,000-message room').toBeTruthy();
        const p = await world.person('reader', { storageState: loggedIn });
        const { page } = p;
        await page.goto(`/#/rooms/${room}`);
        const list = page.getByTestId('message-list');
        await list.waitFor({ state: 'visible' });
        await expect.poll(() => count(page.getByTestId('message')), POLL).toBeGreaterThan(10);
        const box = (await list.boundingBox())!;
        await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
        for (let i = 0; i < 4; i++) await page.mouse.wheel(0, -600);
        const B = await world.api.register(uniqueName('bob'));
        await world.api.join(B.access_token, room);
        const sent = await world.api.send(B.access_token, room, 'a new message below');
        const pill = page.getByTestId('new-messages-pill');
        await pill.waitFor({ state: 'visible' });
        await pill.click();
        await messageBySeq(page, sent.seq).waitFor({ state: 'visible' });
        await expect.poll(() => count(pill), POLL).toBe(0);
    });
});
