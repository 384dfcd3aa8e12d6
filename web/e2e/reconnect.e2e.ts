// The platform restarts mid-conversation: both pages show the offline banner, a third
// person's messages arrive over the REST API while the pages are still reconnecting, and
// once the banner is gone every message is shown exactly once on both sides and new ones
// flow both ways.
//
// While the platform is back but the pages must still be reconnecting, their browser
// contexts are held offline (Chromium's network emulation: no new connection succeeds), so
// the third person's messages certainly land while the pages are disconnected.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import type { Browser } from 'playwright-core';
import { Api, type Session, pool, uniqueName } from './api';
import { type Person, launchBrowser, newPerson, watchProblems } from './browser';
import { Platform } from './platform';
import { POLL, chain, count, loginViaUI, messages, openRoom, sendViaUI, waitForMessage } from './ui';

/** What a page shows while the platform is away: failed loads and socket errors. */
const OUTAGE_ERRORS = [/WebSocket connection to .* failed/i, /Failed to load resource: net::ERR_/i, /ERR_CONNECTION_REFUSED|ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED/i, /status of 50[23]/];

describe('reconnecting after the platform restarts', () => {
    let platform: Platform;
    let browser: Browser;
    let api: Api;
    let alice: Person;
    let bob: Person;
    let A: Session;
    let B: Session;
    let C: Session;
    let room = '';
    let lastPosition = 0;
    const tag = randomBytes(3).toString('hex');
    const offlineTexts = Array.from({ length: 6 }, (_, i) => `carol while you were away ${i + 1}`);

    beforeAll(async () => {
        platform = await Platform.start('reconnect');
        api = new Api(platform.baseURL);
        [A, B, C] = await Promise.all([api.register(uniqueName('alice')), api.register(uniqueName('bob')), api.register(uniqueName('carol'))]);
        room = (await api.createRoom(A.access_token, `ops-${tag}`, 'public')).room_id;
        await api.join(B.access_token, room);
        await api.join(C.access_token, room);
        const seeded = await api.send(C.access_token, room, 'carol says hi before anything happens');
        await api.messages(A.access_token, room, { limit: 1, minPosition: seeded.position });
        browser = await launchBrowser();
        alice = await newPerson(browser, platform, 'alice');
        bob = await newPerson(browser, platform, 'bob');
        await alice.page.goto('/');
        await bob.page.goto('/');
    });
    afterAll(async () => {
        await alice?.close();
        await bob?.close();
        await browser?.close();
        await platform?.teardown();
    });
    watchProblems(() => [alice, bob].filter(Boolean), () => platform);
    const { step } = chain();

    step('alice and bob are talking live', async () => {
        await loginViaUI(alice.page, A.username);
        await loginViaUI(bob.page, B.username);
        await openRoom(alice.page, room);
        await openRoom(bob.page, room);
        await waitForMessage(alice.page, 'carol says hi before anything happens', 'alice');
        await sendViaUI(alice.page, 'before the restart, from alice');
        await waitForMessage(bob.page, 'before the restart, from alice', 'bob');
        await sendViaUI(bob.page, 'before the restart, from bob');
        await waitForMessage(alice.page, 'before the restart, from bob', 'alice');
        expect(await count(alice.page.getByTestId('offline-banner'))).toBe(0);
    });

    step('the platform stops: both pages show the offline banner', async () => {
        for (const p of [alice, bob]) p.tolerate(...OUTAGE_ERRORS);
        await platform.stop();
        for (const p of [alice, bob]) {
            await p.page.getByTestId('offline-banner').waitFor({ state: 'visible' });
        }
    }, 60_000);

    step('it comes back; carol posts over the API while the pages are still reconnecting', async () => {
        for (const p of [alice, bob]) await p.context.setOffline(true);
        await platform.restart();
        const sent = await pool(3, offlineTexts.length, (i) => api.send(C.access_token, room, offlineTexts[i]));
        lastPosition = Math.max(...sent.map((s) => s.position));
        // Still disconnected: the pages could not have had these live.
        for (const p of [alice, bob]) expect(await count(p.page.getByTestId('offline-banner'))).toBe(1);
        for (const p of [alice, bob]) await p.context.setOffline(false);
        for (const p of [alice, bob]) {
            await expect
                .poll(() => count(p.page.getByTestId('offline-banner')), { ...POLL, timeout: 60_000, interval: 250, message: `${p.name}'s offline banner goes away` })
                .toBe(0);
        }
        for (const p of [alice, bob]) p.strict();
    }, 150_000);

    step('every message is shown exactly once on both sides', async () => {
        const expected = (await api.allMessages(A.access_token, room, lastPosition)).filter((m) => m.body !== null);
        expect(expected.map((m) => m.body)).toEqual(expect.arrayContaining(offlineTexts));
        for (const p of [alice, bob]) {
            await expect
                .poll(async () => {
                    const shown = (await messages(p.page)).filter((m) => m.seq !== null);
                    return shown.map((m) => `${m.seq}:${m.body}`);
                }, { ...POLL, timeout: 30_000, message: `${p.name} shows every message once, in order` })
                .toEqual(expected.map((m) => `${m.seq}:${m.body}`));
        }
    });

    step('new messages flow both ways after the reconnect', async () => {
        await sendViaUI(alice.page, 'after the restart, from alice');
        await waitForMessage(bob.page, 'after the restart, from alice', 'bob');
        await sendViaUI(bob.page, 'after the restart, from bob');
        await waitForMessage(alice.page, 'after the restart, from bob', 'alice');
        await api.send(C.access_token, room, 'carol is back live');
        for (const p of [alice, bob]) await waitForMessage(p.page, 'carol is back live', p.name);
        for (const p of [alice, bob]) {
            const seqs = (await messages(p.page)).map((m) => m.seq);
            expect(new Set(seqs).size, `${p.name} shows no message twice`).toBe(seqs.length);
        }
    });
});
