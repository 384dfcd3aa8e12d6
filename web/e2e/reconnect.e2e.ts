// The platform restarts mid-conversation: both pages show the offline banner, a third
// person's messages arrive over the REST API while the pages are still reconnecting, and
// once the banner is gone every message is shown exactly once on both sides and new ones
// flow both ways.
//
// While the platform is back but the pages must still be reconnecting, their browser
// contexts are held offline (Chromium's network emulation: no new connection succeeds), so
// the third person's messages certainly land while the pages are disconnected.

import { randomBytes } from 'node:crypto';
import { describe, expect } from 'vitest';
import { type Session, pool, uniqueName } from './api';
import { twoPeople } from './people';
import { POLL, chain, count, loginViaUI, messages, openRoom, sendViaUI, waitForMessage } from './ui';

/** What a page shows while the platform is away: failed loads and socket errors. */
const OUTAGE_ERRORS = [/WebSocket connection to .* failed/i, /Failed to load resource: net::ERR_/i, /ERR_CONNECTION_REFUSED|ERR_INTERNET_DISCONNECTED|ERR_NETWORK_CHANGED/i, /status of 50[23]/];

describe('reconnecting after the platform restarts', () => {
    let A: Session;
    let B: Session;
    let C: Session;
    let room = '';
    let lastPosition = 0;
    const tag = randomBytes(3).toString('hex');
    const offlineTexts = Array.from({ length: 6 }, (_, i) => `carol while you were away ${i + 1}`);

    const world = twoPeople('reconnect', {
        seed: async (api) => {
            [A, B, C] = await Promise.all([api.register(uniqueName('alice')), api.register(uniqueName('bob')), api.register(uniqueName('carol'))]);
            room = (await api.createRoom(A.access_token, `ops-${tag}`, 'public')).room_id;
            await api.join(B.access_token, room);
            await api.join(C.access_token, room);
            const seeded = await api.send(C.access_token, room, 'carol says hi before anything happens');
            await api.messages(A.access_token, room, { limit: 1, minPosition: seeded.position });
        },
    });
    const { step } = chain();

    step('alice and bob are talking live', async () => {
        await loginViaUI(world.alice.page, A.username);
        await loginViaUI(world.bob.page, B.username);
        await openRoom(world.alice.page, room);
        await openRoom(world.bob.page, room);
        await waitForMessage(world.alice.page, 'carol says hi before anything happens', 'alice');
        await sendViaUI(world.alice.page, 'before the restart, from alice');
        await waitForMessage(world.bob.page, 'before the restart, from alice', 'bob');
        await sendViaUI(world.bob.page, 'before the restart, from bob');
        await waitForMessage(world.alice.page, 'before the restart, from bob', 'alice');
        expect(await count(world.alice.page.getByTestId('offline-banner'))).toBe(0);
    });

    step('the platform stops: both pages show the offline banner', async () => {
        for (const p of world.both) p.tolerate(...OUTAGE_ERRORS);
        await world.platform.stop();
        for (const p of world.both) {
            await p.page.getByTestId('offline-banner').waitFor({ state: 'visible' });
        }
    }, 60_000);

    step('it comes back; carol posts over the API while the pages are still reconnecting', async () => {
        for (const p of world.both) await p.context.setOffline(true);
        await world.platform.restart();
        const sent = await pool(3, offlineTexts.length, (i) => world.api.send(C.access_token, room, offlineTexts[i]));
        lastPosition = Math.max(...sent.map((s) => s.position));
        // Still disconnected: the pages could not have had these live.
        for (const p of world.both) expect(await count(p.page.getByTestId('offline-banner'))).toBe(1);
        for (const p of world.both) await p.context.setOffline(false);
        for (const p of world.both) {
            await expect
                .poll(() => count(p.page.getByTestId('offline-banner')), { ...POLL, timeout: 60_000, interval: 250, message: `${p.name}'s offline banner goes away` })
                .toBe(0);
        }
        for (const p of world.both) p.strict();
    }, 150_000);

    step('every message is shown exactly once on both sides', async () => {
        const expected = (await world.api.allMessages(A.access_token, room, lastPosition)).filter((m) => m.body !== null);
        expect(expected.map((m) => m.body)).toEqual(expect.arrayContaining(offlineTexts));
        for (const p of world.both) {
            await expect
                .poll(async () => {
                    const shown = (await messages(p.page)).filter((m) => m.seq !== null);
                    return shown.map((m) => `${m.seq}:${m.body}`);
                }, { ...POLL, timeout: 30_000, message: `${p.name} shows every message once, in order` })
                .toEqual(expected.map((m) => `${m.seq}:${m.body}`));
        }
    });

    step('new messages flow both ways after the reconnect', async () => {
        await sendViaUI(world.alice.page, 'after the restart, from alice');
        await waitForMessage(world.bob.page, 'after the restart, from alice', 'bob');
        await sendViaUI(world.bob.page, 'after the restart, from bob');
        await waitForMessage(world.alice.page, 'after the restart, from bob', 'alice');
        await world.api.send(C.access_token, room, 'carol is back live');
        for (const p of world.both) await waitForMessage(p.page, 'carol is back live', p.name);
        for (const p of world.both) {
            const seqs = (await messages(p.page)).map((m) => m.seq);
            expect(new Set(seqs).size, `${p.name} shows no message twice`).toBe(seqs.length);
        }
    });
});
