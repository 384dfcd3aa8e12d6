// A private room is invisible to outsiders (room list, public browse, search) until its
// owner invites them by username; the invitee then sees the invitation and accepts it.
// Each absence is checked beside a positive control (a public room with the same words
// that bob does see), so a slow page cannot pass for an empty one.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import type { Browser } from 'playwright-core';
import { Api, type Session, uniqueName } from './api';
import { type Person, launchBrowser, newPerson, watchProblems } from './browser';
import { Platform } from './platform';
import { POLL, chain, count, createRoomViaUI, loginViaUI, openRoom, roomItem, sendViaUI, textNow, waitForMessage } from './ui';

describe('a private room and an invitation', () => {
    let platform: Platform;
    let browser: Browser;
    let api: Api;
    let alice: Person;
    let bob: Person;
    let A: Session;
    let B: Session;
    const tag = randomBytes(3).toString('hex');
    const secretName = `secret-${tag}`;
    const decoyName = `secret-${tag}-public`;
    const word = `classified${tag}`;
    let secret = '';
    let decoy = '';

    beforeAll(async () => {
        platform = await Platform.start('private');
        api = new Api(platform.baseURL);
        A = await api.register(uniqueName('alice'), undefined, 'Alice');
        B = await api.register(uniqueName('bob'), undefined, 'Bob');
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

    step('both log in through the UI', async () => {
        await loginViaUI(alice.page, A.username);
        await loginViaUI(bob.page, B.username);
    });

    step('alice creates a private room and talks in it; a public decoy shares its words', async () => {
        secret = await createRoomViaUI(alice.page, secretName, 'private');
        await openRoom(alice.page, secret);
        await sendViaUI(alice.page, `the ${word} plans`);
        // The positive control, through the API: a public room bob joins, with the same word.
        decoy = (await api.createRoom(A.access_token, decoyName, 'public')).room_id;
        await api.join(B.access_token, decoy);
        await api.send(A.access_token, decoy, `nothing ${word} here`);
        // Joined elsewhere (the API): the client may only notice on its next poll of the room list.
        await expect.poll(() => count(roomItem(bob.page, decoy)), { ...POLL, timeout: 25_000, message: "the decoy room appears in bob's list" }).toBe(1);
    });

    step('bob does not see it in his room list, in public browse, or in search', async () => {
        expect(await count(roomItem(bob.page, secret))).toBe(0);
        expect((await api.rooms(B.access_token)).map((r) => r.room_id)).not.toContain(secret);

        await bob.page.getByTestId('browse-rooms-button').click();
        await bob.page.getByTestId('public-room-search').fill(`secret-${tag}`);
        await bob.page.locator(`[data-testid="public-room-item"][data-room-id="${decoy}"]`).waitFor({ state: 'visible' });
        expect(await count(bob.page.locator(`[data-testid="public-room-item"][data-room-id="${secret}"]`))).toBe(0);
        expect(await count(bob.page.locator(`[data-testid="public-room-item"][data-room-name="${secretName}"]`))).toBe(0);
        // Close the browse dialog (Escape) before searching messages.
        await bob.page.keyboard.press('Escape');
        await expect.poll(() => count(bob.page.getByTestId('public-room-search')), { ...POLL, message: 'Escape closes the browse dialog' }).toBe(0);

        const input = bob.page.getByTestId('search-input');
        await input.fill(word);
        const decoyHit = bob.page.locator(`[data-testid="search-result"][data-room-id="${decoy}"]`);
        await expect
            .poll(async () => {
                if ((await count(decoyHit)) === 0) await input.press('Enter');
                return count(decoyHit);
            }, { ...POLL, interval: 500, message: 'bob finds the decoy message' })
            .toBe(1);
        expect(await count(bob.page.locator(`[data-testid="search-result"][data-room-id="${secret}"]`))).toBe(0);
        expect(await count(bob.page.getByTestId('search-result'))).toBe(1);
    });

    step('alice invites bob by username; he sees the invitation and accepts it', async () => {
        await alice.page.getByTestId('members-button').click();
        await alice.page.getByTestId('invite-username').fill(B.username);
        await alice.page.getByTestId('invite-submit').click();
        await expect
            .poll(async () => (await textNow(alice.page.getByTestId('form-error'))) ?? 'ok', { ...POLL, timeout: 3_000 })
            .toBe('ok');

        const invite = bob.page.locator(`[data-testid="invite-item"][data-room-id="${secret}"]`);
        try {
            // The client may learn of invitations by polling (every 10 s): wait a little longer.
            await invite.waitFor({ state: 'visible', timeout: 15_000 });
        } catch {
            console.warn('private: the invitation did not show live within 15 s; reloading bob\'s page');
            await bob.page.reload();
            await invite.waitFor({ state: 'visible' });
        }
        expect(await invite.getAttribute('data-room-name')).toBe(secretName);
        await invite.getByTestId('invite-accept').click();
        await roomItem(bob.page, secret).waitFor({ state: 'visible' });
        await expect.poll(() => count(invite), POLL).toBe(0);
        await openRoom(bob.page, secret);
        await waitForMessage(bob.page, `the ${word} plans`, 'bob');
        await sendViaUI(bob.page, 'thanks for the invite');
        await waitForMessage(alice.page, 'thanks for the invite', 'alice');
    });

    step('alice sees bob among the members', async () => {
        const members = alice.page.getByTestId('member-item');
        await expect.poll(async () => (await members.evaluateAll((els) => els.map((e) => e.getAttribute('data-username')))).sort(), POLL).toEqual(
            [A.username, B.username].sort(),
        );
        // alice owns the room: she may remove bob.
        expect(await count(alice.page.locator(`[data-testid="member-item"][data-username="${B.username}"] [data-testid="kick-member"]`))).toBe(1);
    });
});
