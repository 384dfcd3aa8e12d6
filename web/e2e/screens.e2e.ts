// Screenshots of the main screens in both colour schemes, at desktop width and at phone
// width (390×844), written to test-results/screenshots/ as artefacts; plus the checks a
// person would make looking at them: the dark theme is dark, the phone layout does not
// scroll sideways, the screens have their parts.

import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import type { Page } from 'playwright-core';
import { type Session, uniqueName } from './api';
import { DESKTOP, PHONE, screenshot } from './browser';
import { stage } from './people';
import { POLL, count, loginViaUI, messageBySeq, openRoom, waitForMessage } from './ui';

/** Relative luminance (0 black – 1 white) of the page's background. */
async function backgroundLuminance(page: Page): Promise<number> {
    return page.evaluate(() => {
        const parse = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
        let el: Element | null = document.querySelector('[data-testid="room-list"]') ?? document.body;
        // The first element up the tree with an opaque background.
        while (el) {
            const [r, g, b, a = 1] = parse(getComputedStyle(el).backgroundColor);
            if (a > 0.5) return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
            el = el.parentElement;
        }
        return 1; // the canvas default is white
    });
}

async function noSidewaysScroll(page: Page): Promise<void> {
    const widths = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
    expect(widths.scroll, 'the page does not scroll sideways').toBeLessThanOrEqual(widths.client + 1);
}

describe('screenshots of the main screens in both themes', () => {
    let A: Session;
    let B: Session;
    let room = '';
    let lastSeq = 0;
    const tag = randomBytes(3).toString('hex');
    const luminance: Record<string, number> = {};

    const world = stage('screens', {
        seed: async (api) => {
            A = await api.register(uniqueName('alice'), undefined, 'Alice Liddell');
            B = await api.register(uniqueName('bob'), undefined, 'Bob Marley');
            room = (await api.createRoom(A.access_token, `design-review`, 'public', 'Weekly design review')).room_id;
            await api.join(B.access_token, room);
            const other = (await api.createRoom(A.access_token, `random-${tag}`, 'public', 'Off topic')).room_id;
            await api.join(B.access_token, other);
            await api.send(B.access_token, other, 'anyone up for lunch?');
            const bobId = await api.userId(A.access_token, B.username);
            await api.call('POST', '/v1/direct', { token: A.access_token, body: { user_id: bobId } });
            const lines: [Session, string][] = [
                [A, 'Morning! The new header mock-ups are in the shared folder.'],
                [B, 'Looks great. Should the search box stay in the header on phones?'],
                [A, 'I think so, collapsed into an icon below 600px.'],
                [B, 'Agreed. What about the dark theme contrast for the unread badges?'],
                [A, 'Checked it: 7.1:1 against the sidebar background.'],
                [B, 'Perfect, shipping the search results screen next 🚀'],
            ];
            let first = '';
            for (const [who, body] of lines) {
                const sent = await api.send(who.access_token, room, body);
                first ||= sent.message_id;
                lastSeq = sent.seq;
            }
            await api.call('PUT', `/v1/rooms/${room}/messages/${first}/reactions/${encodeURIComponent('👍')}`, { token: B.access_token });
            const reply = await api.send(B.access_token, room, 'Thanks, I will review them after lunch.', { reply_to: first });
            lastSeq = reply.seq;
            await api.messages(A.access_token, room, { limit: 1, minPosition: reply.position });
        },
    });

    for (const theme of ['light', 'dark'] as const) {
        test(`${theme}: login, room list and room, search (desktop)`, async () => {
            const p = await world.person(`alice-${theme}`, { colorScheme: theme, viewport: DESKTOP });
            await p.page.goto('/');
            await p.page.getByTestId('auth-username').waitFor({ state: 'visible' });
            await screenshot(p.page, `login-${theme}-desktop`);

            await loginViaUI(p.page, A.username);
            await openRoom(p.page, room);
            await waitForMessage(p.page, 'Thanks, I will review them after lunch.', p.name);
            await messageBySeq(p.page, lastSeq).scrollIntoViewIfNeeded();
            await expect.poll(() => count(p.page.getByTestId('room-item')), POLL).toBe(3);
            luminance[theme] = await backgroundLuminance(p.page);
            await screenshot(p.page, `room-${theme}-desktop`);

            await p.page.getByTestId('search-input').fill('search');
            const results = p.page.getByTestId('search-result');
            await expect
                .poll(async () => {
                    if ((await count(results)) === 0) await p.page.getByTestId('search-input').press('Enter');
                    return count(results);
                }, { ...POLL, interval: 500, message: 'search results' })
                .toBeGreaterThan(0);
            await screenshot(p.page, `search-${theme}-desktop`);
            await p.close();
        });

        test(`${theme}: login and room at phone width (390×844)`, async () => {
            const p = await world.person(`bob-${theme}-phone`, { colorScheme: theme, viewport: PHONE });
            await p.page.goto('/');
            await p.page.getByTestId('auth-username').waitFor({ state: 'visible' });
            await noSidewaysScroll(p.page);
            await screenshot(p.page, `login-${theme}-phone`);
            await loginViaUI(p.page, B.username);
            await noSidewaysScroll(p.page);
            await screenshot(p.page, `rooms-${theme}-phone`);
            // On a phone the room list may cover the room: open the room by its address.
            await p.page.goto(`/#/rooms/${room}`);
            await p.page.locator(`[data-testid="room-view"][data-room-id="${room}"]`).waitFor({ state: 'visible' });
            await waitForMessage(p.page, 'Thanks, I will review them after lunch.', p.name);
            await p.page.getByTestId('composer').waitFor({ state: 'visible' });
            await noSidewaysScroll(p.page);
            await screenshot(p.page, `room-${theme}-phone`);
            await p.close();
        });
    }

    test('the dark theme is dark and the light one light', () => {
        expect(luminance.light, 'light background luminance').toBeGreaterThan(0.6);
        expect(luminance.dark, 'dark background luminance').toBeLessThan(0.35);
    });
});
